"""AWS Signature Version 4 signatures, as botocore computes them (`botocore.auth.SigV4Auth`).

One canonical request serves both sides: `sign` for batchform's own client, and
`batchform.server.sigv4.verify`, which recomputes the signature a client sent. Building it
the way botocore does is what lets boto3, the AWS CLI and other SDKs that follow the SigV4
specification be verified.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# RFC 3986 unreserved characters: everything else is percent-encoded in a canonical query.
_QUERY_SAFE = "-_.~"


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


def request_signature(
    request: SignedRequest,
    signed_headers: tuple[str, ...],
    timestamp: str,
    scope: tuple[str, ...],
    secret: str,
) -> str:
    """The hex signature of `request` over `signed_headers`, made at `timestamp` (in
    TIMESTAMP_FORMAT) within `scope` (date, region, service, "aws4_request")."""
    canonical = _canonical_request(request, signed_headers)
    return _signature(secret, scope, _string_to_sign(timestamp, scope, canonical))


def as_utc(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC, the only zone SigV4 timestamps use.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)


# --- the canonical request ----------------------------------------------------------


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
    # botocore signs the x-amz-content-sha256 value when the header is present; the
    # verifier then makes sure it describes the body that arrived.
    declared = request.headers.get("x-amz-content-sha256")
    return declared if declared is not None else hashlib.sha256(request.body).hexdigest()


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
    timestamp = format_timestamp(as_utc(now or datetime.now(UTC)))
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
    signature = request_signature(request, names, timestamp, scope, secret_key)
    credential = "/".join((access_key, *scope))
    parameters = f"Credential={credential}, SignedHeaders={';'.join(names)}"
    return f"{ALGORITHM} {parameters}, Signature={signature}"
