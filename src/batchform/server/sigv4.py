"""AWS Signature Version 4 checks for `batchform server --auth`.

The server recomputes the signature a client made with its secret key and compares. The
canonical request is built the way botocore builds it (`botocore.auth.SigV4Auth`), so
boto3, the AWS CLI and other SDKs that follow the SigV4 specification are accepted.
Errors carry the codes, texts and HTTP statuses that AWS JSON services answer with, so a
client sees the same `ClientError` it would see from SageMaker or CloudWatch Logs.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urlsplit

from batchform.errors import ConfigurationError

ALGORITHM = "AWS4-HMAC-SHA256"
AUTH_KEYS_ENV = "BATCHFORM_AUTH_KEYS"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TIMESTAMP_SHAPE = re.compile(r"\d{8}T\d{6}Z")
_REQUIRED_PARAMETERS = ("Credential", "Signature", "SignedHeaders")
# RFC 3986 unreserved characters: everything else is percent-encoded in a canonical query.
_QUERY_SAFE = "-_.~"


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


class _Headers(Mapping[str, str]):
    """HTTP headers looked up by any case; repeated headers joined by ',' as SigV4 does."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        joined: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        self._values = joined

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"_Headers({self._values!r})"


@dataclass(frozen=True)
class SignedRequest:
    """One HTTP request as the server received it.

    `path` is the raw, still percent-encoded path of the request line (ASGI's
    `scope["raw_path"]`, not the decoded `url.path`) and `query_string` the raw text
    after '?': the signature covers the bytes the client sent, not their decoded meaning.
    """

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __post_init__(self) -> None:
        # A frozen dataclass may still normalise its own fields while being built.
        object.__setattr__(self, "headers", _Headers(self.headers.items()))

    @classmethod
    def from_pairs(
        cls,
        method: str,
        path: str,
        query_string: str,
        header_pairs: Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> SignedRequest:
        """Build from raw (name, value) pairs, where a header may repeat."""
        # Each value is trimmed before joining, as the SigV4 canonical form trims each one.
        trimmed = [(name, _trim_all(value)) for name, value in header_pairs]
        return cls(method, path, query_string, _Headers(trimmed), body)


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
    return _from_http_date(headers["date"]).strftime(_TIMESTAMP_FORMAT)


def _parse_timestamp(value: str) -> datetime:
    try:
        if not _TIMESTAMP_SHAPE.fullmatch(value):
            raise ValueError(value)
        return datetime.strptime(value, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
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
    return _as_utc(parsed)  # RFC 1123 dates are GMT; a zone-less one is read the same way


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
    now = _as_utc(now)
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    if signed_at < now - max_skew:
        raise _invalid(
            f"Signature expired: {timestamp} is now earlier than {_format(now - max_skew)} "
            f"({_format(now)} - {minutes})"
        )
    if signed_at > now + max_skew:
        raise _invalid(
            f"Signature not yet current: {timestamp} is still later than "
            f"{_format(now + max_skew)} ({_format(now)} + {minutes})"
        )


def _as_utc(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC, the only zone SigV4 timestamps use.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _format(moment: datetime) -> str:
    return moment.strftime(_TIMESTAMP_FORMAT)


# --- the signature ------------------------------------------------------------------


def _check_signature(
    request: SignedRequest, auth: _Authorization, timestamp: str, secret: str
) -> None:
    canonical = _canonical_request(request, auth.signed_headers)
    expected = _signature(secret, auth.scope, _string_to_sign(timestamp, auth.scope, canonical))
    # Constant time, so response timing does not reveal how many characters matched;
    # bytes, because compare_digest refuses non-ASCII text a client could send.
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise _invalid()


def _canonical_request(request: SignedRequest, signed_headers: tuple[str, ...]) -> str:
    return "\n".join(
        [
            request.method.upper(),
            _canonical_uri(request.path),
            _canonical_query(request.query_string),
            _canonical_headers(request.headers, signed_headers),
            ";".join(signed_headers),
            _payload_hash(request),
        ]
    )


def _canonical_uri(path: str) -> str:
    # botocore encodes the already percent-encoded path once more (every service but
    # S3 expects this double encoding), so '%20' on the wire is signed as '%2520'.
    return quote(_remove_dot_segments(path), safe="/~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, dropping empty segments too, as botocore does."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return "/" + "/".join(segments) + trailing


def _canonical_query(query_string: str) -> str:
    pairs = sorted(_canonical_pair(piece) for piece in query_string.split("&") if piece)
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_pair(piece: str) -> tuple[str, str]:
    name, _, value = piece.partition("=")
    return _requote(name), _requote(value)


def _requote(text: str) -> str:
    # Clients differ in how they encode a query ('+' or '%20' for a space, which
    # characters they leave bare); decoding and encoding again gives the one form signed.
    # '+' means a space here: botocore's AWSRequest sends `params` form-encoded.
    return quote(unquote_to_bytes(text.replace("+", " ")), safe=_QUERY_SAFE)


def _canonical_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    # Each line ends in a newline, so the block is followed by an empty line.
    return "".join(f"{name}:{_trim_all(headers.get(name, ''))}\n" for name in names)


def _trim_all(value: str) -> str:
    """SigV4's Trimall: no leading or trailing blanks, inner runs of blanks made one space."""
    return " ".join(value.split())


def _payload_hash(request: SignedRequest) -> str:
    # botocore signs the x-amz-content-sha256 value when the header is present;
    # _check_payload_hash then makes sure it describes the body that arrived.
    declared = request.headers.get("x-amz-content-sha256")
    return declared if declared is not None else hashlib.sha256(request.body).hexdigest()


def _check_payload_hash(request: SignedRequest) -> None:
    declared = request.headers.get("x-amz-content-sha256")
    if declared is None or declared == UNSIGNED_PAYLOAD:
        return
    actual = hashlib.sha256(request.body).hexdigest()
    if not hmac.compare_digest(declared.lower().encode(), actual.encode()):
        raise _invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )


def _string_to_sign(timestamp: str, scope: tuple[str, ...], canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return "\n".join([ALGORITHM, timestamp, "/".join(scope), digest])


def _signature(secret: str, scope: tuple[str, ...], string_to_sign: str) -> str:
    # The signing key chains HMACs over date, region, service and terminator, so a key
    # derived for one day, region and service is useless for any other.
    key = f"AWS4{secret}".encode()
    for part in scope:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


# --- signing, for batchform's own client --------------------------------------------


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date and Authorization, signed as botocore would sign.

    Every header given is signed. Host is set explicitly so the HTTP library sends
    exactly the value that was signed.
    """
    parts = urlsplit(url)
    timestamp = _format(_as_utc(now or datetime.now(UTC)))
    replaced = {"host", "x-amz-date", "authorization"}
    signed = {name: value for name, value in headers.items() if name.lower() not in replaced}
    signed.update({"Host": parts.netloc, "X-Amz-Date": timestamp})
    request = SignedRequest(method, parts.path or "/", parts.query, signed, body)
    signed["Authorization"] = _authorization(request, access_key, secret_key, (region, service))
    return signed


def _authorization(
    request: SignedRequest, access_key: str, secret_key: str, where: tuple[str, str]
) -> str:
    timestamp = request.headers["x-amz-date"]
    scope = (timestamp[:8], *where, "aws4_request")
    names = tuple(sorted(request.headers))
    canonical = _canonical_request(request, names)
    signature = _signature(secret_key, scope, _string_to_sign(timestamp, scope, canonical))
    credential = "/".join((access_key, *scope))
    parameters = f"Credential={credential}, SignedHeaders={';'.join(names)}"
    return f"{ALGORITHM} {parameters}, Signature={signature}"


# --- configured keys ----------------------------------------------------------------


def load_access_keys(env: Mapping[str, str], credentials_file: Path | None) -> dict[str, str]:
    """Access key id → secret, from BATCHFORM_AUTH_KEYS and/or a shared-credentials file.

    BATCHFORM_AUTH_KEYS holds `AKID:SECRET` entries separated by commas; the file is INI
    like ~/.aws/credentials, and every section with aws_access_key_id and
    aws_secret_access_key adds one key.
    """
    keys: dict[str, str] = {}
    sources = [(AUTH_KEYS_ENV, _keys_from_env(env.get(AUTH_KEYS_ENV, "")))]
    if credentials_file is not None:
        sources.append((str(credentials_file), _keys_from_file(credentials_file)))
    for source, found in sources:
        _merge_keys(keys, found, source)
    if not keys:
        raise ConfigurationError(_no_keys_message(credentials_file))
    return keys


def _keys_from_env(value: str) -> list[tuple[str, str]]:
    entries = [entry.strip() for entry in value.split(",")]
    return [_env_entry(entry, index) for index, entry in enumerate(entries, 1) if entry]


def _env_entry(entry: str, index: int) -> tuple[str, str]:
    # Secrets may contain ':' (never the id), so split at the first one only.
    key_id, _, secret = entry.partition(":")
    key_id, secret = key_id.strip(), secret.strip()
    if not key_id or not secret:
        # Name the entry by position and id only: the message must not echo a secret.
        raise ConfigurationError(
            f"{AUTH_KEYS_ENV} entry {index} ('{key_id}:...') is not of the form "
            "ACCESS_KEY_ID:SECRET_ACCESS_KEY"
        )
    return key_id, secret


def _keys_from_file(path: Path) -> list[tuple[str, str]]:
    # No interpolation: a '%' in a secret is a literal character, not a reference.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except OSError as exc:
        raise ConfigurationError(f"cannot read credentials file {path}: {exc}") from exc
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"credentials file {path} is not valid INI: {exc}") from exc
    found = (_file_entry(path, parser[name]) for name in parser.sections())
    return [entry for entry in found if entry is not None]


def _file_entry(path: Path, section: configparser.SectionProxy) -> tuple[str, str] | None:
    key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key_id and not secret:
        return None  # a profile without static keys (a role, SSO) has nothing for us
    if not key_id or not secret:
        missing = "aws_secret_access_key" if key_id else "aws_access_key_id"
        raise ConfigurationError(
            f"credentials file {path}, section [{section.name}]: {missing} is missing or empty"
        )
    return key_id, secret


def _merge_keys(keys: dict[str, str], found: list[tuple[str, str]], source: str) -> None:
    for key_id, secret in found:
        if keys.get(key_id, secret) != secret:
            # Two secrets for one id is a mistake; picking one would lock out half the users.
            raise ConfigurationError(f"access key id {key_id} has two different secrets ({source})")
        keys[key_id] = secret


def _no_keys_message(credentials_file: Path | None) -> str:
    where = f"{AUTH_KEYS_ENV} is empty"
    if credentials_file is not None:
        where += f" and {credentials_file} has no aws_access_key_id/aws_secret_access_key pair"
    return (
        f"authentication needs at least one access key, but {where}; "
        f"set {AUTH_KEYS_ENV}=ACCESS_KEY_ID:SECRET_ACCESS_KEY or give a credentials file"
    )
