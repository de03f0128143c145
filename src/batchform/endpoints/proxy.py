"""Invocations forwarded to a model process from the server's event loop.

An asyncio HTTP/1.1 client with keep-alive connections per model process: the server
answers InvokeEndpoint without handing each request to a thread, which would cost more
than a small model's prediction. Each connection is an `asyncio.Protocol` that parses
the answer from the bytes as they arrive and wakes the request once, when it is whole:
no stream reader, no task and no extra event-loop turn per read. Only what the serving
contract needs: POST with a Content-Length body; answers delimited by Content-Length,
chunked coding or the close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchform.errors import ModelConnectionError, ModelTimeoutError

MAX_LINE = 65536
MAX_HEADERS = 100


@dataclass(frozen=True, slots=True)
class ProxyAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a model process; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[ProxyAnswer, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._settle(closed=False)

    def eof_received(self) -> bool:
        return False  # close our side too: an answer ended by the close is complete now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._settle(closed=True, error=exc)

    def request(self, data: bytes) -> asyncio.Future[tuple[ProxyAnswer, bool]]:
        """Send a request; the future gets the answer and whether the connection can
        carry another."""
        assert self.transport is not None
        self._buffer.clear()
        self._waiter = self.loop.create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _settle(self, closed: bool, error: Exception | None = None) -> None:
        assert self._waiter is not None
        try:
            parsed = parse_answer(self._buffer, closed)
        except ValueError as exc:
            self._waiter.set_exception(exc)
            return
        if parsed is not None:
            self._waiter.set_result(parsed)
        elif closed:
            reason = error or ConnectionResetError("the model closed the connection")
            self._waiter.set_exception(reason)


class AsyncPool:
    """Keep-alive connections to one model process at `url`."""

    def __init__(self, url: str, keep: int = 64) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.keep = keep
        self._idle: deque[_Connection] = deque()

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> ProxyAnswer:
        """One request; a kept connection the model closed meanwhile is retried once."""
        connection = await self._connection()
        waiter = connection.request(_request(self.host, path, body, headers))
        # A timer on the answer itself, not asyncio.timeout or wait_for: on Python 3.11
        # each of those asks for the running loop several times, and every ask is a
        # getpid() system call, an eighth of the server's time per invocation.
        deadline = connection.loop.call_later(timeout, _expire, waiter)
        try:
            answer, reusable = await waiter
        except TimeoutError:
            connection.close()
            raise ModelTimeoutError(timeout) from None
        except (OSError, ValueError) as exc:
            connection.close()
            if connection.reused:
                return await self.post(path, body, headers, timeout)
            raise ModelConnectionError(f"model at {self.host}:{self.port}: {exc}") from exc
        except asyncio.CancelledError:  # the caller went away: this answer is nobody's
            connection.close()
            raise
        finally:
            deadline.cancel()
        self._release(connection, reusable)
        return answer

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), self.host, self.port
            )
        except OSError as exc:
            raise ModelConnectionError(f"model at {self.host}:{self.port}: {exc}") from exc
        return connection

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if reusable and not connection.closed and len(self._idle) < self.keep:
            self._idle.append(connection)
        else:
            connection.close()


def _expire(waiter: asyncio.Future[tuple[ProxyAnswer, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_answer(buffer: bytearray, closed: bool) -> tuple[ProxyAnswer, bool] | None:
    """The final answer in `buffer` and whether the connection stays usable, or None
    while more bytes are needed; 1xx interim answers are skipped. `closed`: the model
    closed the connection, which ends a body that has no length."""
    start = 0
    while True:
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) - start > MAX_LINE:
                raise ValueError(f"an answer head longer than {MAX_LINE} bytes")
            return None
        status, headers = _head(bytes(buffer[start:end]))
        start = end + 4
        if status >= 200:
            break
    framed = _body(buffer, start, headers, closed)
    if framed is None:
        return None
    body, reusable = framed
    if headers.get("connection", "").lower() == "close":
        reusable = False
    return ProxyAnswer(status, headers, body), reusable


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    if len(lines) > MAX_HEADERS + 1:
        raise ValueError(f"more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, separator, value = line.partition(b":")
        if separator:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(parts[1]), headers


def _body(
    buffer: bytearray, start: int, headers: dict[str, str], closed: bool
) -> tuple[bytes, bool] | None:
    """The body from `start` and whether the connection can carry another request."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = _chunked(buffer, start)
        return None if chunks is None else (chunks, True)
    length = headers.get("content-length")
    if length is not None:
        end = start + int(length)
        return (bytes(buffer[start:end]), True) if len(buffer) >= end else None
    return (bytes(buffer[start:]), False) if closed else None


def _chunked(buffer: bytearray, start: int) -> bytes | None:
    """A whole chunked body from `start` (trailers skipped), or None if incomplete."""
    chunks: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0].strip() or b"0", 16)
        position = line_end + 2
        if size == 0:
            trailers_end = _trailers_end(buffer, position)
            return None if trailers_end is None else b"".join(chunks)
        if len(buffer) < position + size + 2:
            return None
        chunks.append(bytes(buffer[position : position + size]))
        position += size + 2


def _trailers_end(buffer: bytearray, position: int) -> int | None:
    """Where the trailer section (possibly empty) after the last chunk ends."""
    if buffer.startswith(b"\r\n", position):
        return position + 2
    end = buffer.find(b"\r\n\r\n", position)
    return None if end < 0 else end + 4
