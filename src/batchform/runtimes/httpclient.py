"""A small HTTP/1.1 client for the serving contract: keep-alive GET and POST, nothing more.

Why not urllib3: under SingleRecord every record is a request, and urllib3 spends about
half a millisecond of Python on each (header dicts, email-parser header parsing, retry
and redirect machinery that the contract switches off anyway). That is more CPU than
many models use per record, and it runs in the engine, under the GIL, on the cores the
model needs. This client writes a request in one go and reads the response with a few
C-level readline/read calls: about a quarter of the CPU.

What it speaks: requests with a Content-Length body; responses delimited by
Content-Length, chunked transfer coding, or the connection's close; interim 1xx
responses skipped; http and https. What it does not: redirects, retries, proxies,
compression; the engine retries, and model servers do not redirect.
"""

from __future__ import annotations

import contextlib
import functools
import io
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchform.runtimes import http1
from batchform.runtimes.http1 import HttpProtocolError

__all__ = ["ConnectionPool", "HttpProtocolError", "HttpResponse", "HttpTimeout"]

# Bodies smaller than this go out in the same write as the headers (one packet, no
# Nagle stall); larger ones are sent on their own rather than copied onto the headers.
COALESCE_BYTES = 64 * 1024


class HttpTimeout(TimeoutError):
    """The server did not answer within the request's timeout."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    """Where a base URL points: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url}: expected an http:// or https:// URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class _Connection:
    """One keep-alive socket and its buffered reader."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=endpoint.host)
        self.sock = sock
        self.reader: io.BufferedReader = sock.makefile("rb")
        self.timeout = timeout
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)

    def wait_at_most(self, seconds: float) -> None:
        """Bound every blocking call on the socket. Set only when it changes: each
        settimeout is a system call, and each system call hands the GIL around."""
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def dropped(self) -> bool:
        """An idle keep-alive socket that is readable was closed by the server (or sent
        something unasked): either way it cannot carry the next request."""
        return bool(self._poller.poll(0))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class ConnectionPool:
    """Up to `maxsize` keep-alive connections to one endpoint; callers beyond that wait.

    Safe to use from many threads: a connection serves one request at a time.
    """

    def __init__(self, url: str, maxsize: int = 1) -> None:
        self.endpoint = Endpoint.parse(url)
        self._slots = threading.BoundedSemaphore(max(1, maxsize))
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._host = f"{self.endpoint.host}:{self.endpoint.port}".encode("idna")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float,
    ) -> HttpResponse:
        """Send one request and read the whole response; OSError subclasses when not."""
        deadline = time.monotonic() + timeout
        head = self._head(method, self.endpoint.prefix + path, body, headers or {})
        with self._slots:
            connection = self._take(timeout)
            try:
                connection.wait_at_most(timeout)
                response, reusable = _exchange(connection, head, body, deadline)
            except BaseException:
                connection.close()
                raise
            self._give_back(connection, reusable)
            return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _head(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: " + self._host]
        if body or method == "POST":
            lines.append(b"Content-Length: %d" % len(body))
        lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _take(self, timeout: float) -> _Connection:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()  # the most recent: least likely timed out
                if not connection.dropped():
                    return connection
                connection.close()
        return _Connection(self.endpoint, timeout)

    def _give_back(self, connection: _Connection, reusable: bool) -> None:
        if not reusable:
            connection.close()
            return
        with self._lock:
            self._idle.append(connection)


def _exchange(
    connection: _Connection, head: bytes, body: bytes, deadline: float
) -> tuple[HttpResponse, bool]:
    """Send, then read the answer; any socket timeout on the way is the model's.

    Each wait on the socket is bounded by the request's timeout, and the deadline is
    checked between reads (a line, a chunk, up to 64 MB of body), so a server that
    streams its answer slowly is cut off too.
    """
    sock = connection.sock
    try:
        if len(body) < COALESCE_BYTES:
            sock.sendall(head + body)
        else:
            sock.sendall(head)
            sock.sendall(body)  # a busy server stops reading: also a timeout
        return _read_response(connection, deadline)
    except HttpTimeout:
        raise
    except TimeoutError as exc:
        raise HttpTimeout("timed out waiting for the model") from exc


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise HttpTimeout("timed out waiting for the model")


def _read_response(connection: _Connection, deadline: float) -> tuple[HttpResponse, bool]:
    """(response, whether the connection may carry another request)."""
    arm = functools.partial(_check_deadline, deadline)
    status, version, headers = _read_head(connection.reader, arm)
    while 100 <= status < 200:  # interim answers (100 Continue) precede the real one
        status, version, headers = _read_head(connection.reader, arm)
    keep_alive = http1.keeps_alive(version, headers)
    if status in (204, 304):
        return HttpResponse(status, headers, b""), keep_alive
    body = http1.read_body(connection.reader, headers, arm)
    if body is None:  # neither length nor chunks: the body ends with the connection
        return HttpResponse(status, headers, http1.read_to_end(connection.reader, arm)), False
    return HttpResponse(status, headers, body), keep_alive


def _read_head(reader: http1.Reader, arm: http1.Arm) -> tuple[int, str, dict[str, str]]:
    line = http1.read_line(reader, arm)
    if not line:
        raise HttpProtocolError("the server closed the connection without a response")
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise HttpProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(code), version.decode("latin-1"), http1.read_headers(reader, arm)
