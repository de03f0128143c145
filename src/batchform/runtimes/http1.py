"""HTTP/1.1 message framing, shared by the contract's client and `serve-handler`.

Only what the serving contract needs: a head of CRLF-terminated lines, and a body
delimited by Content-Length, by chunked transfer coding, or by the connection's close.
Everything reads from a buffered socket file with C-level readline/read calls; the
standard library's http.client and http.server parse headers with the email package,
which costs more per request than a small model's prediction.

Every read first calls `arm`, which may raise to end a wait that has gone on too long
(the client checks the request's deadline; the server waits as long as the peer takes).
"""

from __future__ import annotations

import io
from collections.abc import Callable

MAX_LINE = 65536
MAX_HEADERS = 100
READ_CHUNK = 1 << 20  # what read_to_end asks for at a time
READ_PIECE = 64 << 20  # what read_exactly reads between two calls of `arm`

Arm = Callable[[], None]
Reader = io.BufferedReader


class HttpProtocolError(OSError):
    """The other side sent something that is not HTTP/1.x we can read, or stopped early."""


def no_deadline() -> None:
    """`arm` for a side that waits as long as the peer takes."""


def read_line(reader: Reader, arm: Arm) -> bytes:
    """One line with its terminator; b"" when the peer closed the connection."""
    arm()
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HttpProtocolError("line too long")
    return line


def read_headers(reader: Reader, arm: Arm) -> dict[str, str]:
    """Header lines up to the blank line, names in lower case (the last of a name wins)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = read_line(reader, arm)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise HttpProtocolError("connection closed in the middle of the headers")
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    raise HttpProtocolError(f"more than {MAX_HEADERS} headers")


def read_body(reader: Reader, headers: dict[str, str], arm: Arm) -> bytes | None:
    """The body the headers announce; None when only the connection's close ends it."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return read_chunked(reader, arm)
    length = headers.get("content-length")
    if length is None:
        return None
    if not length.isdigit():
        raise HttpProtocolError(f"bad Content-Length {length!r}")
    return read_exactly(reader, int(length), arm)


def read_exactly(reader: Reader, length: int, arm: Arm) -> bytes:
    # read(n) fills one bytes object as data arrives: two to three times cheaper than
    # joining whatever each recv returned, which matters for 6 MB payloads. `arm` runs
    # between pieces; within one, each wait is bounded by the socket's own timeout.
    parts: list[bytes] = []
    left = length
    while left:
        arm()
        want = min(left, READ_PIECE)
        part = reader.read(want)
        if len(part) < want:  # read(n) comes back short only at the end of the stream
            raise HttpProtocolError(f"body ended {left - len(part)} bytes short of {length}")
        parts.append(part)
        left -= want
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_chunked(reader: Reader, arm: Arm) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = read_line(reader, arm).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            read_headers(reader, arm)  # trailers, up to the blank line
            return b"".join(parts)
        parts.append(read_exactly(reader, size, arm))
        read_line(reader, arm)  # the CRLF after the chunk


def read_to_end(reader: Reader, arm: Arm) -> bytes:
    parts: list[bytes] = []
    while True:
        arm()
        part = reader.read1(READ_CHUNK)
        if not part:
            return b"".join(parts)
        parts.append(part)


def keeps_alive(version: str, headers: dict[str, str]) -> bool:
    """Whether the connection may carry another message after this one."""
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens
