"""Validation parity over the wire: every invalid request of the table, sent by boto3.

botocore drops members its model does not know before sending, so requests with unknown
fields go as raw JSON 1.1 instead, as a hand-written client would send them.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from tests.serverproc import Server, running_server
from tests.validation_cases import CASES, ValidationCase


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("validation-home")) as running:
        yield running


@pytest.fixture(scope="module")
def sm(server: Server) -> Any:
    return server.client()


@pytest.mark.parametrize("case", [pytest.param(case, id=case.case_id) for case in CASES])
def test_invalid_request_gets_sagemakers_error(
    server: Server, sm: Any, case: ValidationCase
) -> None:
    if "unknown" in case.case_id:
        code, status, message = _raw(server, case)
    else:
        code, status, message = _boto(sm, case)
    assert (code, status) == (case.error_code, 400)
    assert case.field in message, message
    assert case.rule in message, message


def _boto(sm: Any, case: ValidationCase) -> tuple[str, int, str]:
    operation = getattr(sm, re.sub(r"(?<!^)(?=[A-Z])", "_", case.operation).lower())
    with pytest.raises(ClientError) as raised:
        operation(**case.body)
    error = raised.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def _raw(server: Server, case: ValidationCase) -> tuple[str, int, str]:
    request = urllib.request.Request(
        server.url + "/",
        data=orjson.dumps(case.body),
        headers={
            "X-Amz-Target": f"SageMaker.{case.operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    error = orjson.loads(raised.value.read())
    return error["__type"], raised.value.code, error["message"]
