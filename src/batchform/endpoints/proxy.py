"""Invocations forwarded to a model process from the server's event loop.

An asyncio HTTP/1.1 client with keep-alive connections per model process: the server
answers InvokeEndpoint without handing each request to a thread, which would cost more
than a small model's prediction. Only what the serving contract needs: POST with a
Content-Length body; answers delimited by Content-Length, chunked coding or the close.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        self.writer.close()


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
        try:
            # A deadline on this task rather than wait_for's task per request: one
            # event-loop round less on every invocation.
            async with asyncio.timeout(timeout):
                answer, reusable = await _exchange(connection, self.host, path, body, headers)
        except TimeoutError:
            connection.close()
            raise ModelTimeoutError(timeout) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            if connection.reused:
                return await self.post(path, body, headers, timeout)
            raise ModelConnectionError(f"model at {self.host}:{self.port}: {exc}") from exc
        self._release(connection, reusable)
        return answer

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.reader.at_eof():
                connection.reused = True
                return connection
            connection.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
        except OSError as exc:
            raise ModelConnectionError(f"model at {self.host}:{self.port}: {exc}") from exc
        return _Connection(reader, writer)

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if reusable and len(self._idle) < self.keep:
            self._idle.append(connection)
        else:
            connection.close()


async def _exchange(
    connection: _Connection, host: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[ProxyAnswer, bool]:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    connection.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await connection.writer.drain()
    while True:
        # The whole head in one read: each await costs more than parsing a few lines.
        status, answer_headers = _head(await connection.reader.readuntil(b"\r\n\r\n"))
        if status >= 200:
            break  # 1xx interim answers are skipped
    content, reusable = await _body(connection.reader, answer_headers)
    if answer_headers.get("connection", "").lower() == "close":
        reusable = False
    return ProxyAnswer(status, answer_headers, content), reusable


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    if len(lines) > MAX_HEADERS + 3:
        raise ValueError(f"more than {MAX_HEADERS} headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, separator, value = line.partition(b":")
        if separator:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(parts[1]), headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body and whether the connection can carry another request."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(reader), True
    length = headers.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length)), True
    return await reader.read(), False


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
