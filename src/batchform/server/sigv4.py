"""AWS Signature Version 4 checks for `batchform server --auth`.

The server recomputes the signature a client made with its secret key and compares; the
canonical request is built by `batchform.server.signing`, the way botocore builds it.
Errors carry the codes, texts and HTTP statuses that AWS JSON services answer with, so a
client sees the same `ClientError` it would see from SageMaker or CloudWatch Logs. The
keys to check against are loaded by `batchform.server.accesskeys`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from batchform.server.signing import (
    ALGORITHM,
    TIMESTAMP_FORMAT,
    SignedRequest,
    as_utc,
    format_timestamp,
    request_signature,
)

__all__ = ["SIGNATURE_MISMATCH", "UNSIGNED_PAYLOAD", "AuthError", "SignedRequest", "verify"]

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_TIMESTAMP_SHAPE = re.compile(r"\d{8}T\d{6}Z")
_REQUIRED_PARAMETERS = ("Credential", "Signature", "SignedHeaders")


class AuthError(Exception):
    """A request the server refuses to authenticate; `code` is what AWS would answer."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# Every refusal is a 403 Forbidden: the request did not prove who sent it. (Some AWS
# JSON services answer 400 for a bad signature; botocore reads the code either way.)
def _missing_token() -> AuthError:
    return AuthError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)


def _incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignatureException", message)


def _invalid(message: str = SIGNATURE_MISMATCH) -> AuthError:
    return AuthError("InvalidSignatureException", message)


def _unknown_key() -> AuthError:
    message = "The security token included in the request is invalid."
    return AuthError("UnrecognizedClientException", message)


@dataclass(frozen=True)
class _Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header."""

    access_key_id: str
    scope: tuple[str, str, str, str]  # date, region, service, "aws4_request"
    signed_headers: tuple[str, ...]
    signature: str


def verify(
    request: SignedRequest,
    secrets: Mapping[str, str],
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=5),
) -> str:
    """The access key id that signed `request`; raises AuthError if the signature fails.

    `secrets` maps access key ids to secret access keys. Any region and service in the
    credential scope are accepted, since one server answers for several AWS services.
    """
    header = request.headers.get("authorization")
    if not header:
        raise _missing_token()
    auth = _parse_authorization(header, request.headers)
    timestamp = _request_timestamp(request.headers)
    secret = secrets.get(auth.access_key_id)
    if secret is None:
        raise _unknown_key()
    _check_scope_date(auth, timestamp)
    _check_clock(timestamp, now or datetime.now(UTC), max_skew)
    _check_signature(request, auth, timestamp, secret)
    _check_payload_hash(request)
    return auth.access_key_id


# --- the Authorization header -------------------------------------------------------


def _parse_authorization(header: str, headers: Mapping[str, str]) -> _Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    parameters = _auth_parameters(rest, header)
    _require_parts(parameters, headers, header)
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'.")
    access_key_id, scope = _parse_credential(parameters["Credential"])
    signed_headers = tuple(parameters["SignedHeaders"].lower().split(";"))
    if "host" not in signed_headers and ":authority" not in signed_headers:
        raise _incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    return _Authorization(access_key_id, scope, signed_headers, parameters["Signature"])


def _auth_parameters(text: str, header: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, equals, value = part.partition("=")
        if not equals:
            raise _incomplete(
                f"'{part}' not a valid key=value pair (missing equal-sign) in "
                f"Authorization header: '{header}'."
            )
        parameters[name.strip()] = value.strip()
    return parameters


def _require_parts(parameters: Mapping[str, str], headers: Mapping[str, str], header: str) -> None:
    # Like AWS, name every missing part at once so one fix is enough.
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in _REQUIRED_PARAMETERS
        if not parameters.get(name)
    ]
    if "x-amz-date" not in headers and "date" not in headers:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise _incomplete(" ".join([*problems, f"Authorization={header}"]))


def _parse_credential(credential: str) -> tuple[str, tuple[str, str, str, str]]:
    parts = credential.split("/")
    if len(parts) != 5:
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'"
        )
    access_key_id, date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise _invalid(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{terminator}'."
        )
    return access_key_id, (date, region, service, terminator)


# --- time ---------------------------------------------------------------------------


def _request_timestamp(headers: Mapping[str, str]) -> str:
    """The signing time as botocore puts it in the string to sign: YYYYMMDDTHHMMSSZ."""
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        _parse_timestamp(amz_date)
        return amz_date
    # botocore signs with the Date header instead when a request already carries one.
    return format_timestamp(_from_http_date(headers["date"]))


def _parse_timestamp(value: str) -> datetime:
    try:
        if not _TIMESTAMP_SHAPE.fullmatch(value):
            raise ValueError(value)
        return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601"
        ) from None


def _from_http_date(value: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise _incomplete(f"Date header '{value}' is not an RFC 1123 date.") from None
    return as_utc(parsed)  # RFC 1123 dates are GMT; a zone-less one is read the same way


def _check_scope_date(auth: _Authorization, timestamp: str) -> None:
    scope_date = auth.scope[0]
    if scope_date != timestamp[:8]:
        raise _invalid(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from '{timestamp}'."
        )


def _check_clock(timestamp: str, now: datetime, max_skew: timedelta) -> None:
    """Refuse old and future requests so a captured request cannot be replayed later."""
    signed_at = _parse_timestamp(timestamp)
    now = as_utc(now)
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    if signed_at < now - max_skew:
        earliest = format_timestamp(now - max_skew)
        raise _invalid(
            f"Signature expired: {timestamp} is now earlier than {earliest} "
            f"({format_timestamp(now)} - {minutes})"
        )
    if signed_at > now + max_skew:
        latest = format_timestamp(now + max_skew)
        raise _invalid(
            f"Signature not yet current: {timestamp} is still later than "
            f"{latest} ({format_timestamp(now)} + {minutes})"
        )


# --- the signature ------------------------------------------------------------------


def _check_signature(
    request: SignedRequest, auth: _Authorization, timestamp: str, secret: str
) -> None:
    expected = request_signature(request, auth.signed_headers, timestamp, auth.scope, secret)
    # Constant time, so response timing does not reveal how many characters matched;
    # bytes, because compare_digest refuses non-ASCII text a client could send.
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise _invalid()


def _check_payload_hash(request: SignedRequest) -> None:
    declared = request.headers.get("x-amz-content-sha256")
    if declared is None or declared == UNSIGNED_PAYLOAD:
        return
    actual = hashlib.sha256(request.body).hexdigest()
    if not hmac.compare_digest(declared.lower().encode(), actual.encode()):
        raise _invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
