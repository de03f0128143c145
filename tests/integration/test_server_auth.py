"""`batchform server --auth`: SigV4 with a configured key passes; anything else is a 403."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from tests.integration.test_server_api import ECHO
from tests.serverproc import Server, running_server

KEY, SECRET = "AKIDBATCHFORMTEST", "s3cr3t/with+chars"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("auth-home")
    with running_server(home, "--auth", env={"BATCHFORM_AUTH_KEYS": f"{KEY}:{SECRET}"}) as s:
        yield s


def test_signed_with_the_right_key_is_served(server: Server) -> None:
    sm = server.client(key=KEY, secret=SECRET)
    sm.create_model(ModelName="signed", PrimaryContainer={"Image": str(ECHO)})
    assert sm.describe_model(ModelName="signed")["ModelName"] == "signed"


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (KEY, "wrong-secret", "InvalidSignatureException"),
        ("AKIDUNKNOWN", SECRET, "UnrecognizedClientException"),
    ],
)
def test_wrong_credentials_are_refused_without_changing_anything(
    server: Server, key: str, secret: str, code: str
) -> None:
    sm = server.client(key=key, secret=secret)
    with pytest.raises(ClientError) as raised:
        sm.create_model(ModelName=f"refused-{code[:5].lower()}", PrimaryContainer={"Image": "x"})
    error = raised.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    good = server.client(key=KEY, secret=SECRET)
    names = [m["ModelName"] for m in good.list_models(NameContains="refused")["Models"]]
    assert names == []


def test_unsigned_requests_are_refused(server: Server) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server.url + "/",
        data=b"{}",
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 403
    assert b"MissingAuthenticationTokenException" in raised.value.read()


def test_the_aws_cli_and_batchform_jobs_sign_their_requests(server: Server) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    created = _aws(
        env,
        "create-model",
        "--endpoint-url",
        server.url,
        "--model-name",
        "by-cli",
        "--primary-container",
        f"Image={ECHO}",
    )
    assert created.returncode == 0, created.stderr
    assert orjson.loads(created.stdout)["ModelArn"].endswith(":model/by-cli")
    listed = _aws(env, "list-models", "--endpoint-url", server.url, "--name-contains", "by-cli")
    assert listed.returncode == 0, listed.stderr
    models: Any = orjson.loads(listed.stdout)["Models"]
    assert [model["ModelName"] for model in models] == ["by-cli"]
    jobs = subprocess.run(
        [_batchform(), "jobs", "--endpoint-url", server.url, "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert jobs.returncode == 0, jobs.stderr


def _aws(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "aws"), "sagemaker", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _batchform() -> str:
    return str(Path(sys.executable).parent / "batchform")
