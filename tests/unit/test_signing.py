"""SigV4 signing for batchform's own client: the bytes botocore would sign, and verified.

Also `SignedRequest`, which puts headers in the form the canonical request is built from.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from batchform.server.signing import SignedRequest, sign
from batchform.server.sigv4 import AuthError, verify

KEY_ID = "AKIDBATCHFORMTEST01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:8089"


def test_sign_matches_botocore_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: moment)
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListModels"}
    body = b'{"MaxResults": 5}'
    expected = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers=headers)
    SigV4Auth(Credentials(KEY_ID, SECRET), "sagemaker", "us-west-2").add_auth(expected)

    signed = sign(
        "POST", ENDPOINT + "/", headers, body, KEY_ID, SECRET, "us-west-2", "sagemaker", moment
    )

    assert signed["Authorization"] == expected.headers["Authorization"]
    assert signed["X-Amz-Date"] == "20260304T050607Z"


def test_what_sign_produces_is_verified() -> None:
    url = ENDPOINT + "/endpoints/my%20endpoint/invocations?a=b%2Fc"
    signed = sign("POST", url, {"Content-Type": "text/csv"}, b"1,2", KEY_ID, SECRET, "r", "logs")
    request = SignedRequest(
        "POST", "/endpoints/my%20endpoint/invocations", "a=b%2Fc", signed, b"1,2"
    )

    assert verify(request, {KEY_ID: SECRET}) == KEY_ID
    with pytest.raises(AuthError) as refused:
        verify(dataclasses.replace(request, body=b"1,3"), {KEY_ID: SECRET})
    assert refused.value.code == "InvalidSignatureException"


# --- SignedRequest ------------------------------------------------------------------


def test_headers_are_found_by_any_case() -> None:
    request = SignedRequest("POST", "/", "", {"X-Amz-Target": "SageMaker.ListEndpoints"}, b"")

    assert request.headers["x-amz-target"] == request.headers["X-AMZ-TARGET"]
    assert "x-AMZ-target" in request.headers
    assert request.headers.get("missing") is None


def test_repeated_header_pairs_are_joined_with_commas() -> None:
    pairs = [("X-Tag", " a   b "), ("x-tag", "c"), ("Host", "h")]

    request = SignedRequest.from_pairs("GET", "/", "", pairs)

    assert request.headers["X-Tag"] == "a b,c"
    assert len(request.headers) == 2
