"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pgserver import running_postgres
from tests.s3server import moto_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of an S3-compatible server on loopback, shared by the session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A Ray cluster of three nodes on loopback (tests/raycluster.py), shared by the
    session's Ray tests; this process is its driver."""
    pytest.importorskip("ray")
    from tests.raycluster import simulated_cluster

    with simulated_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL of an empty database on a real PostgreSQL server on loopback.

    One server for the session: starting a cluster costs about a second. Tests that need
    isolation should use their own tables or schemas.
    """
    folder: Path = tmp_path_factory.mktemp("postgres")
    with running_postgres(folder) as url:
        yield url


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point every AWS client (here and in child processes) at the loopback server."""
    settings = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # A developer's own ~/.aws profile must not leak into the tests.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    _forget_s3_filesystems()
    yield s3_server
    _forget_s3_filesystems()


def _forget_s3_filesystems() -> None:
    # fsspec reuses filesystem instances; a fresh one reads the endpoint and keys above.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_client(s3_env: str) -> Any:
    """A boto3 S3 client for the loopback server, to arrange and inspect objects."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket; yields 's3://<bucket>'."""
    name = f"batchform-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return f"s3://{name}"
