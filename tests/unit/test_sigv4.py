"""SigV4 verification: what boto3 signs is accepted, anything altered or unsigned is refused.

Requests are signed by botocore itself (a real boto3 client, captured just before it
would send, or `SigV4Auth` directly), so these tests break if the verifier drifts from
what the SDK produces.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode, percent_encode_sequence
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.server.accesskeys import load_access_keys
from batchform.server.sigv4 import (
    SIGNATURE_MISMATCH,
    AuthError,
    SignedRequest,
    verify,
)

KEY_ID = "AKIDBATCHFORMTEST01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {KEY_ID: SECRET, "AKIDOTHERUSER000002": "another/secret+key"}
ENDPOINT = "http://127.0.0.1:8089"


# --- requests as the server receives them -------------------------------------------


def received(
    prepared: AWSPreparedRequest, header_pairs: list[tuple[str, str]] | None = None
) -> SignedRequest:
    """The request as it reaches the server: urllib3 writes the Host line itself."""
    parts = urlsplit(prepared.url)
    pairs = header_pairs if header_pairs is not None else list(prepared.headers.items())
    pairs = [(name, _text(value)) for name, value in pairs]
    if not any(name.lower() == "host" for name, _ in pairs):
        pairs.append(("Host", parts.netloc))
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    return SignedRequest.from_pairs(prepared.method, parts.path, parts.query, pairs, body)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Sent(Exception):
    """Raised from botocore's before-send hook: the request is captured, never sent."""

    def __init__(self, request: SignedRequest) -> None:
        self.request = request


def boto3_request(
    service: str, operation: str, *, key_id: str = KEY_ID, secret: str = SECRET, **params: Any
) -> SignedRequest:
    """What a boto3 client of `service` sends for `operation`."""
    with pytest.raises(_Sent) as sent:
        getattr(_client(service, key_id, secret), operation)(**params)
    return sent.value.request


@functools.cache
def _client(service: str, key_id: str, secret: str) -> Any:
    # Clients are cached: building one loads the service model, about half a second.
    session = boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-west-2"
    )
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    client = session.client(service, endpoint_url=ENDPOINT, config=config)
    client.meta.events.register("before-send", _capture)
    return client


def _capture(request: AWSPreparedRequest, **_: Any) -> None:
    raise _Sent(received(request))


def sagemaker_request(**credentials: str) -> SignedRequest:
    return boto3_request(
        "sagemaker", "describe_transform_job", TransformJobName="nightly-batch", **credentials
    )


def botocore_request(
    method: str = "POST",
    url: str = ENDPOINT + "/",
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
) -> SignedRequest:
    """A request signed by botocore's SigV4Auth directly, for shapes no client makes."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.params = params or {}
    SigV4Auth(Credentials(KEY_ID, SECRET), "sagemaker", "eu-west-1").add_auth(request)
    return received(request.prepare())


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    """The request with headers replaced (or removed when None); names use '_' for '-'."""
    headers = dict(request.headers)
    for name, value in changes.items():
        key = name.replace("_", "-").lower()
        headers.pop(key, None)
        if value is not None:
            headers[key] = value
    return dataclasses.replace(request, headers=headers)


def signed_at(request: SignedRequest) -> datetime:
    return datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def refusal(request: SignedRequest, **kwargs: Any) -> AuthError:
    with pytest.raises(AuthError) as raised:
        verify(request, SECRETS, **kwargs)
    return raised.value


# --- accepted -----------------------------------------------------------------------


def test_a_boto3_sagemaker_call_is_accepted_and_names_its_key() -> None:
    request = sagemaker_request()
    assert request.method == "POST"
    assert request.path == "/"
    assert request.headers["X-Amz-Target"] == "SageMaker.DescribeTransformJob"
    assert request.headers["Content-Type"] == "application/x-amz-json-1.1"

    assert verify(request, SECRETS) == KEY_ID


def test_the_second_configured_key_is_accepted_too() -> None:
    request = sagemaker_request(key_id="AKIDOTHERUSER000002", secret="another/secret+key")

    assert verify(request, SECRETS) == "AKIDOTHERUSER000002"


def test_a_boto3_logs_call_is_accepted() -> None:
    request = boto3_request(
        "logs",
        "get_log_events",
        logGroupName="/aws/sagemaker/TransformJobs",
        logStreamName="nightly-batch/i-0",
    )
    assert request.headers["X-Amz-Target"] == "Logs_20140328.GetLogEvents"

    assert verify(request, SECRETS) == KEY_ID


def test_a_runtime_call_whose_path_needs_encoding_is_accepted() -> None:
    request = boto3_request(
        "sagemaker-runtime",
        "invoke_endpoint",
        EndpointName="my endpoint:blue",
        Body=b"1,2,3\n",
        ContentType="text/csv",
    )
    # The client percent-encodes the name; botocore signs that path encoded once more.
    assert request.path == "/endpoints/my%20endpoint%3Ablue/invocations"

    assert verify(request, SECRETS) == KEY_ID


def test_a_boto3_get_with_a_query_string_is_accepted() -> None:
    request = boto3_request("lambda", "list_functions", Marker="a b/c+d~e", MaxItems=5)
    assert request.method == "GET"
    assert "Marker=a%20b%2Fc%2Bd~e" in request.query_string

    assert verify(request, SECRETS) == KEY_ID


def test_form_encoded_query_parameters_are_accepted() -> None:
    # AWSRequest.params go on the wire form-encoded ('+' for a space) but are signed
    # percent-encoded ('%20'): the verifier must read '+' as a space.
    request = botocore_request(
        "GET", ENDPOINT + "/jobs/", params=[("name", "a b"), ("empty", ""), ("name", "a+b")]
    )
    assert "+" in request.query_string

    assert verify(request, SECRETS) == KEY_ID


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4),
    params=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=4),
    form_encoded=st.booleans(),
)
def test_any_path_and_query_a_client_encodes_is_accepted(
    segments: list[str], params: list[tuple[str, str]], form_encoded: bool
) -> None:
    path = "/" + "/".join(percent_encode(segment, safe="~") for segment in segments)
    if form_encoded:
        request = botocore_request("GET", ENDPOINT + path, params=params)
    else:  # how botocore's serializers put a query into the URL
        query = percent_encode_sequence(params)
        request = botocore_request("GET", ENDPOINT + path + ("?" + query if query else ""))

    assert verify(request, SECRETS) == KEY_ID


def test_a_request_signed_with_the_date_header_is_accepted() -> None:
    # botocore signs with Date instead of X-Amz-Date when the request carries one.
    request = botocore_request(headers={"Date": formatdate(usegmt=True)}, body=b"{}")
    assert "X-Amz-Date" not in request.headers

    assert verify(request, SECRETS) == KEY_ID


def test_repeated_headers_are_signed_as_one_comma_joined_value() -> None:
    aws_request = AWSRequest(method="POST", url=ENDPOINT + "/", data=b"{}")
    aws_request.headers["X-Amz-Meta-Tag"] = "  first   value "
    aws_request.headers["X-Amz-Meta-Tag"] = "second"
    SigV4Auth(Credentials(KEY_ID, SECRET), "sagemaker", "us-east-1").add_auth(aws_request)
    request = received(aws_request.prepare(), list(aws_request.headers.items()))
    assert request.headers["x-amz-meta-tag"] == "first value,second"

    assert verify(request, SECRETS) == KEY_ID


def test_header_values_are_compared_with_blanks_collapsed() -> None:
    aws_request = AWSRequest(method="POST", url=ENDPOINT + "/", data=b"{}")
    aws_request.headers["X-Amz-Meta-Note"] = "  two   spaces  inside "
    SigV4Auth(Credentials(KEY_ID, SECRET), "sagemaker", "us-east-1").add_auth(aws_request)
    headers = {**aws_request.headers, "Host": urlsplit(ENDPOINT).netloc}
    # Built directly, as a server framework's header dict would be: values untrimmed.
    request = SignedRequest("POST", "/", "", headers, b"{}")
    assert request.headers["X-Amz-Meta-Note"] == "  two   spaces  inside "

    assert verify(request, SECRETS) == KEY_ID


def test_dot_segments_and_doubled_slashes_are_signed_as_botocore_normalises_them() -> None:
    request = botocore_request("GET", ENDPOINT + "/a//b/./c/../d/")
    assert request.path == "/a//b/./c/../d/"

    assert verify(request, SECRETS) == KEY_ID
    assert refusal(dataclasses.replace(request, path="/a/b/c/d/")).code == (
        "InvalidSignatureException"
    )


def test_headers_outside_the_signature_may_change() -> None:
    # Proxies rewrite User-Agent and add tracing headers; neither is signed by botocore.
    request = with_headers(sagemaker_request(), user_agent="proxy/1.0", x_forwarded_for="10.0.0.1")

    assert verify(request, SECRETS) == KEY_ID


def test_a_body_described_by_x_amz_content_sha256_is_accepted() -> None:
    body = b'{"TransformJobName": "nightly-batch"}'
    request = botocore_request(
        body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )

    assert verify(request, SECRETS) == KEY_ID


def test_an_unsigned_payload_is_accepted_as_aws_does() -> None:
    request = botocore_request(body=b"{}", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})

    assert verify(dataclasses.replace(request, body=b"anything"), SECRETS) == KEY_ID


# --- refused: credentials -----------------------------------------------------------


def test_a_wrong_secret_is_refused() -> None:
    error = refusal(sagemaker_request(secret="not-the-secret"))

    assert (error.code, error.status) == ("InvalidSignatureException", 403)
    assert error.message == SIGNATURE_MISMATCH
    assert "calculated does not match" in str(error)


def test_an_unknown_access_key_id_is_refused() -> None:
    error = refusal(sagemaker_request(key_id="AKIDNOBODYKNOWS00000"))

    assert (error.code, error.status) == ("UnrecognizedClientException", 403)
    assert error.message == "The security token included in the request is invalid."


def test_a_request_without_authorization_is_refused() -> None:
    error = refusal(with_headers(sagemaker_request(), authorization=None))

    assert (error.code, error.status) == ("MissingAuthenticationTokenException", 403)
    assert error.message == "Missing Authentication Token"


def test_no_configured_keys_accept_nothing() -> None:
    with pytest.raises(AuthError) as raised:
        verify(sagemaker_request(), {})

    assert raised.value.code == "UnrecognizedClientException"


# --- refused: tampering -------------------------------------------------------------

Tamper = Callable[[SignedRequest], SignedRequest]

TAMPERINGS: dict[str, Tamper] = {
    "body": lambda r: dataclasses.replace(r, body=r.body.replace(b"nightly", b"hourly")),
    "body appended": lambda r: dataclasses.replace(r, body=r.body + b" "),
    "X-Amz-Target": lambda r: with_headers(r, x_amz_target="SageMaker.StopTransformJob"),
    "Content-Type": lambda r: with_headers(r, content_type="application/json"),
    "Host": lambda r: with_headers(r, host="evil.example:8089"),
    "X-Amz-Date": lambda r: with_headers(
        r, x_amz_date=(signed_at(r) + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    ),
    "method": lambda r: dataclasses.replace(r, method="PUT"),
    "path": lambda r: dataclasses.replace(r, path="/admin"),
    "query": lambda r: dataclasses.replace(r, query_string="Action=Delete"),
    "signature": lambda r: with_headers(r, authorization=r.headers["Authorization"][:-4] + "0000"),
}


@pytest.mark.parametrize("part", TAMPERINGS)
def test_a_tampered_request_is_refused(part: str) -> None:
    request = TAMPERINGS[part](sagemaker_request())

    error = refusal(request)

    assert error.code == "InvalidSignatureException"
    assert error.message == SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    "part",
    [
        lambda r: dataclasses.replace(r, query_string=r.query_string.replace("5", "50")),
        lambda r: dataclasses.replace(r, query_string=r.query_string + "&extra=1"),
        lambda r: dataclasses.replace(r, path=r.path.replace("functions", "layers")),
        lambda r: dataclasses.replace(r, method="DELETE"),
    ],
    ids=["query value", "query added", "path", "method"],
)
def test_a_tampered_get_is_refused(part: Tamper) -> None:
    request = boto3_request("lambda", "list_functions", Marker="a b/c", MaxItems=5)

    assert refusal(part(request)).code == "InvalidSignatureException"


def test_a_body_that_does_not_match_its_declared_sha256_is_refused() -> None:
    # The signature covers the declared hash, not the body: the hash must be checked too.
    body = b'{"TransformJobName": "nightly-batch"}'
    request = botocore_request(
        body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )

    error = refusal(dataclasses.replace(request, body=b'{"TransformJobName": "other"}'))

    assert error.code == "InvalidSignatureException"
    assert "x-amz-content-sha256" in error.message


def test_a_non_ascii_signature_is_refused_not_crashed_on() -> None:
    request = sagemaker_request()
    header = request.headers["Authorization"].rsplit("Signature=", 1)[0] + "Signature=" + "é" * 64

    assert refusal(with_headers(request, authorization=header)).code == "InvalidSignatureException"


# --- refused: malformed Authorization -----------------------------------------------

MALFORMED: dict[str, tuple[Callable[[str], str], str]] = {
    "no Signature": (lambda h: h.split(", Signature=")[0], "requires 'Signature' parameter"),
    "only the algorithm": (lambda h: "AWS4-HMAC-SHA256", "requires 'Credential' parameter"),
    "a bearer token": (lambda h: "Bearer eyJhbGciOiJIUzI1NiJ9", "missing equal-sign"),
    "a short Credential": (
        lambda h: h.replace("/aws4_request", ""),
        "Credential must have exactly 5 slash-delimited elements",
    ),
    "Host unsigned": (
        lambda h: h.replace("host;", ""),
        "'Host' or ':authority' must be a 'SignedHeader'",
    ),
    "another algorithm": (
        lambda h: h.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_authorization_header_is_refused(case: str) -> None:
    rewrite, expected = MALFORMED[case]
    request = sagemaker_request()
    request = with_headers(request, authorization=rewrite(request.headers["Authorization"]))

    error = refusal(request)

    assert (error.code, error.status) == ("IncompleteSignatureException", 403)
    assert expected in error.message


def test_every_missing_part_is_named_at_once() -> None:
    request = with_headers(sagemaker_request(), authorization="AWS4-HMAC-SHA256", x_amz_date=None)

    message = refusal(request).message

    for part in ("'Credential'", "'Signature'", "'SignedHeaders'", "'X-Amz-Date' or a 'Date'"):
        assert part in message
    assert message.endswith("Authorization=AWS4-HMAC-SHA256")


def test_a_request_without_a_date_is_refused() -> None:
    error = refusal(with_headers(sagemaker_request(), x_amz_date=None))

    assert error.code == "IncompleteSignatureException"
    assert "requires existence of either a 'X-Amz-Date' or a 'Date' header" in error.message


def test_an_unreadable_date_is_refused() -> None:
    error = refusal(with_headers(sagemaker_request(), x_amz_date="2024-01-01T00:00:00Z"))

    assert error.code == "IncompleteSignatureException"
    assert "ISO-8601 'basic format'" in error.message


def test_a_scope_for_another_day_is_refused() -> None:
    request = sagemaker_request()
    next_day = (signed_at(request) + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")

    error = refusal(with_headers(request, x_amz_date=next_day), now=signed_at(request))

    assert error.code == "InvalidSignatureException"
    assert error.message.startswith("Date in Credential scope does not match YYYYMMDD")


def test_a_scope_without_the_aws4_request_terminator_is_refused() -> None:
    request = sagemaker_request()
    header = request.headers["Authorization"].replace("/aws4_request", "/aws5_request")

    error = refusal(with_headers(request, authorization=header))

    assert error.code == "InvalidSignatureException"
    assert "valid terminator: 'aws4_request', not 'aws5_request'" in error.message


# --- refused: time ------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def test_a_signature_older_than_five_minutes_is_refused() -> None:
    request = sagemaker_request()
    now = signed_at(request) + timedelta(minutes=5, seconds=1)

    error = refusal(request, now=now)

    assert error.code == "InvalidSignatureException"
    assert error.message == (
        f"Signature expired: {_stamp(signed_at(request))} is now earlier than "
        f"{_stamp(now - timedelta(minutes=5))} ({_stamp(now)} - 5 min.)"
    )


def test_a_signature_from_the_future_is_refused() -> None:
    request = sagemaker_request()
    now = signed_at(request) - timedelta(minutes=6)

    error = refusal(request, now=now)

    assert error.code == "InvalidSignatureException"
    assert error.message.startswith(f"Signature not yet current: {_stamp(signed_at(request))}")
    assert error.message.endswith(f"({_stamp(now)} + 5 min.)")


def test_clock_skew_within_the_limit_is_accepted() -> None:
    request = sagemaker_request()
    for skew in (timedelta(minutes=-5), timedelta(minutes=4, seconds=59)):
        assert verify(request, SECRETS, now=signed_at(request) + skew) == KEY_ID


def test_the_allowed_skew_is_configurable() -> None:
    request = sagemaker_request()
    later = signed_at(request) + timedelta(minutes=3)

    assert verify(request, SECRETS, now=later, max_skew=timedelta(minutes=15)) == KEY_ID
    error = refusal(request, now=later, max_skew=timedelta(minutes=1))
    assert error.message.endswith("- 1 min.)")


# --- keys loaded from a credentials file ----------------------------------------------


def test_loaded_keys_verify_a_boto3_request(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    keys = f"[ci]\naws_access_key_id={KEY_ID}\naws_secret_access_key={SECRET}\n"
    path.write_text(keys, encoding="utf-8")

    assert verify(sagemaker_request(), load_access_keys({}, path)) == KEY_ID
