"""The endpoint proxy's HTTP client against small loopback servers that answer in every
way HTTP/1.1 allows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from batchform.endpoints.proxy import AsyncPool
from batchform.errors import ModelConnectionError, ModelTimeoutError

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return await reader.readexactly(length)


async def _with_server(answer: Answerer, calls: Callable[[AsyncPool], Awaitable[None]]) -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = AsyncPool(f"http://127.0.0.1:{port}")
    try:
        await calls(pool)
    finally:
        pool.close()
        server.close()


def test_content_length_chunked_and_interim_answers_on_one_connection() -> None:
    connections = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n")
        writer.write(b"3\r\nabc\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        await writer.drain()

    async def calls(pool: AsyncPool) -> None:
        first = await pool.post("/invocations", b"one", {"Content-Type": "text/csv"}, 5)
        assert (first.status, first.body) == (200, b"one")
        second = await pool.post("/invocations", b"two", {}, 5)
        assert (second.body, second.headers["x-kind"]) == (b"abctwo", "chunked")

    asyncio.run(_with_server(answer, calls))
    assert len(connections) == 1, "the connection was kept alive"


def test_an_answer_ended_by_close_and_a_stale_kept_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # keep-alive promised, then dropped: the next request must retry

    async def calls(pool: AsyncPool) -> None:
        for word in (b"a", b"b", b"c"):
            assert (await pool.post("/invocations", word, {}, 5)).body == word

    asyncio.run(_with_server(answer, calls))


def test_a_model_that_never_answers_times_out_and_a_closed_port_is_a_connection_error() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def calls(pool: AsyncPool) -> None:
        with pytest.raises(ModelTimeoutError):
            await pool.post("/invocations", b"x", {}, 0.2)

    asyncio.run(_with_server(answer, calls))
    with pytest.raises(ModelConnectionError):
        asyncio.run(AsyncPool("http://127.0.0.1:9").post("/invocations", b"x", {}, 1))


def test_a_request_its_caller_gave_up_on_leaves_no_answer_for_the_next() -> None:
    """The first request's answer comes late; the next request must not read it, and
    the connection it was due on is closed rather than left open."""
    connections = []
    closed_by_pool = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        body = await _read_request(reader)
        await asyncio.sleep(0.3 if body == b"slow" else 0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            closed_by_pool.append(await asyncio.wait_for(reader.read(), 1) == b"")

    async def calls(pool: AsyncPool) -> None:
        slow = asyncio.ensure_future(pool.post("/invocations", b"slow", {}, 5))
        await asyncio.sleep(0.1)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await asyncio.sleep(0.4)  # the late answer arrives meanwhile
        assert (await pool.post("/invocations", b"next", {}, 5)).body == b"next"

        await asyncio.sleep(0.2)

    asyncio.run(_with_server(answer, calls))
    assert len(connections) == 2, "the given-up connection was not used again"
    assert closed_by_pool[:1] == [True]
