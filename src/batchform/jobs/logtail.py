"""Read a job's log page by page, and follow it while the job runs (`jobs logs --follow`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from batchform.jobs.logs import TRANSFORM_LOG_GROUP

#: Reads the lines after a position token; answers (lines, the token to go on from).
Pages = Callable[[str | None], tuple[list[str], str | None]]

_PAGE_BYTES = 1 << 20


def follow_log(
    pages: Pages, finished: Callable[[], bool], follow: bool, interval: float = 1.0
) -> Iterator[str]:
    """Every line so far; with `follow`, new ones too until the job has ended."""
    token: str | None = None
    while True:
        # Asked before reading, so lines written just before the end are still read.
        done = not follow or finished()
        lines, token = pages(token)
        while lines:
            yield from lines
            lines, token = pages(token)
        if done:
            return
        time.sleep(interval)


def file_pages(path: Path) -> Pages:
    """Pages of a log file; the token is the byte offset after the last whole line."""

    def read(token: str | None) -> tuple[list[str], str | None]:
        offset = int(token or 0)
        if not path.exists():
            return [], token
        with path.open("rb") as log:
            log.seek(offset)
            chunk = log.read(_PAGE_BYTES)
        whole = chunk[: chunk.rfind(b"\n") + 1]
        lines = whole.decode("utf-8", errors="replace").splitlines()
        return lines, str(offset + len(whole))

    return read


def api_pages(client: Any, job_name: str) -> Pages:
    """Pages through a server's CloudWatch Logs API: every stream of the job, merged by time.

    The token maps each stream to its GetLogEvents forward token.
    """

    def read(token: str | None) -> tuple[list[str], str | None]:
        positions: dict[str, str | None] = orjson.loads(token) if token else {}
        events: list[tuple[int, str, str]] = []
        for stream in _streams(client, job_name):
            found, positions[stream] = _stream_events(client, stream, positions.get(stream))
            events.extend((stamp, stream, message) for stamp, message in found)
        events.sort(key=lambda event: event[0])
        lines = [
            f"{_iso(stamp)} [{stream.split('/', 1)[-1]}] {text}" for stamp, stream, text in events
        ]
        return lines, orjson.dumps(positions).decode()

    return read


def _streams(client: Any, job_name: str) -> list[str]:
    answer = client.logs(
        "DescribeLogStreams",
        {"logGroupName": TRANSFORM_LOG_GROUP, "logStreamNamePrefix": f"{job_name}/"},
    )
    return [stream["logStreamName"] for stream in answer.get("logStreams", [])]


def _stream_events(
    client: Any, stream: str, token: str | None
) -> tuple[list[tuple[int, str]], str | None]:
    body: dict[str, Any] = {
        "logGroupName": TRANSFORM_LOG_GROUP,
        "logStreamName": stream,
        "startFromHead": True,
    }
    if token:
        body["nextToken"] = token
    answer = client.logs("GetLogEvents", body)
    events = [(event["timestamp"], event["message"]) for event in answer.get("events", [])]
    return events, answer.get("nextForwardToken", token)


def _iso(stamp_ms: int) -> str:
    seconds = stamp_ms / 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{stamp_ms % 1000:03d}Z"
