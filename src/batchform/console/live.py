"""Live pages: server-sent events carrying re-rendered page sections and new log lines.

A detail page renders in full on its own (no JavaScript needed); `console.js` then opens
its event stream, which sends the page's sections again whenever they change (`update`:
a JSON map of element id → HTML, rendered by the same templates) and the log lines
appended since the page's offset (`log`, with the new offset as the event id, so a
reconnecting browser resumes where it left off). When the job has ended and its log is
drained the stream says `end`. Each stream lasts at most STREAM_SECONDS; the browser
reconnects on its own, which keeps a server's shutdown from waiting on open pages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from batchform.console.web import Console, Visit
from batchform.jobs.logreader import complete_end, open_log, read_lines
from batchform.jobs.logs import LogEvent

TAIL_LINES = 200
#: New log lines sent per tick at most; a chatty model's backlog arrives over a few ticks.
LINES_PER_EVENT = 500
STREAM_SECONDS = 20.0
TICK_SECONDS = 1.0


@dataclass(frozen=True)
class LiveState:
    fragments: dict[str, str]  # element id → inner HTML
    log: Path | None
    finished: bool


def log_line(event: LogEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.gmtime(event.timestamp_ms / 1000))
    millis = event.timestamp_ms % 1000
    return f"{stamp}.{millis:03d} [{event.stream}] {event.message}"


def tail(path: Path, count: int = TAIL_LINES) -> tuple[list[str], int]:
    """The last `count` complete lines of a log, and the offset just past them."""
    with open_log(path) as file:
        end = complete_end(file)
        lines = []
        for line in read_lines(file, False, end):
            lines.append(log_line(line.event))
            if len(lines) >= count:
                break
    return lines[::-1], end


def lines_after(path: Path, offset: int, limit: int = LINES_PER_EVENT) -> tuple[list[str], int]:
    with open_log(path) as file:
        if offset > complete_end(file):
            offset = 0  # a different (recreated) file: start again
        lines = []
        for line in read_lines(file, True, offset):
            lines.append(log_line(line.event))
            offset = line.end
            if len(lines) >= limit:
                break
    return lines, offset


def event(name: str, data: object, ident: int | None = None) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def stream(
    compute: Callable[[], Awaitable[LiveState]],
    offset: int,
    stream_seconds: float = STREAM_SECONDS,
    tick: float = TICK_SECONDS,
) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        deadline = time.monotonic() + stream_seconds
        position = offset
        sent: dict[str, str] = {}
        while True:
            state = await compute()
            changed = {key: html for key, html in state.fragments.items() if sent.get(key) != html}
            if changed:
                sent.update(changed)
                yield event("update", changed)
            lines: list[str] = []
            if state.log is not None:
                lines, position = await run_in_threadpool(lines_after, state.log, position)
                if lines:
                    yield event("log", lines, position)
            if state.finished and not lines:
                yield event("end", {})
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(tick)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def start_offset(last_event_id: str | None, given: str | None) -> int:
    """Where a stream's log lines start: the browser's Last-Event-ID on a reconnect,
    else the offset the page was rendered with."""
    for value in (last_event_id, given):
        if value and value.isdigit():
            return int(value)
    return 0


def page_events(
    console: Console,
    visit: Visit,
    context: Callable[[], Awaitable[dict[str, Any]]],
    fragments: Mapping[str, str],
    log: Path | None,
    tick: float = TICK_SECONDS,
) -> Response:
    """The event stream of a page: `fragments` (element id → template) re-rendered
    from `context()` each tick, and `log`'s new lines; it ends once the context says
    `finished`."""

    async def compute() -> LiveState:
        values = await context()
        rendered = {
            ident: console.render_text(template, visit, **values)
            for ident, template in fragments.items()
        }
        return LiveState(rendered, log, bool(values.get("finished")))

    offset = start_offset(visit.request.headers.get("last-event-id"), visit.param("offset"))
    return stream(compute, offset, tick=tick)


async def page_with_log(
    console: Console, visit: Visit, template: str, context: dict[str, Any], log: Path
) -> Response:
    """A live page rendered in full, with its log's last lines and where they end."""
    lines, offset = await run_in_threadpool(tail, log)
    events_url = f"{visit.request.url.path}/events"
    values = {"log_lines": lines, "log_offset": offset, "events_url": events_url, **context}
    return console.render(template, visit, **values)
