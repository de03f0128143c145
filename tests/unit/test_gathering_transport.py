"""Writes in one turn of the event loop leave as one: a response's head and body together."""

from __future__ import annotations

import asyncio
from typing import Any

from batchform.server.transport import GatheringTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else None


def test_a_head_and_a_body_written_in_one_turn_go_out_together() -> None:
    async def scenario() -> list[bytes]:
        inner = RecordingTransport()
        gathering = GatheringTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        gathering.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        gathering.write(memoryview(b"ok"))
        assert inner.sent == [] and gathering.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        gathering.write(b"next")
        await asyncio.sleep(0)
        return inner.sent

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"next"]


def test_a_close_sends_what_was_written_first_and_the_rest_passes_through() -> None:
    async def scenario() -> RecordingTransport:
        inner = RecordingTransport()
        gathering = GatheringTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        gathering.write(b"bad request")
        gathering.close()
        assert gathering.get_extra_info("sockname") == ("127.0.0.1", 8080)
        assert gathering.is_closing()
        await asyncio.sleep(0)  # the flush scheduled by the write finds nothing left
        return inner

    inner = asyncio.run(scenario())
    assert inner.sent == [b"bad request"] and inner.closed
