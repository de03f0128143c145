"""Reading a job's log file (see `batchform.jobs.logs`) by byte offset, either way.

The CloudWatch-shaped readers page through files that may still be growing, so every line
read carries its byte span: an offset taken from one read resumes the next exactly, however
much has been appended since. Files are read line by line (backwards in blocks for the
newest-first reads), never whole; a line still being written is not read until complete.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from batchform.jobs.logs import LogEvent, parse_line

_BLOCK = 64 * 1024


@dataclass(frozen=True)
class LogLine:
    """One complete line of a job's file, with where it lies in the file."""

    start: int  # byte offset of the line in its file
    end: int  # byte offset just past its newline
    event: LogEvent
    job: str = ""  # the job whose file it is, when lines of several files are merged


def open_log(path: Path) -> BinaryIO:
    """The file, or an empty one: a job that has not logged yet has no streams."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        return io.BytesIO()


def read_lines(file: BinaryIO, forward: bool, offset: int, job: str = "") -> Iterator[LogLine]:
    """Lines from `offset` on, oldest first, or those ending by `offset`, newest first.

    `offset` must be a line boundary: 0, the end of the last complete line, or a `start`
    or `end` of a line read before.
    """
    return _forward(file, offset, job) if forward else _backward(file, offset, job)


def file_size(file: BinaryIO) -> int:
    return file.seek(0, io.SEEK_END)


def complete_end(file: BinaryIO) -> int:
    """Offset just past the last complete line."""
    end = file_size(file)
    while end > 0:
        start = max(0, end - _BLOCK)
        file.seek(start)
        cut = file.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _line(raw: bytes, start: int, job: str) -> LogLine:
    event = parse_line(raw.decode("utf-8", errors="replace"))
    return LogLine(start, start + len(raw) + 1, event, job)


def _forward(file: BinaryIO, offset: int, job: str) -> Iterator[LogLine]:
    """Complete lines from `offset` on; a line still being written is left for later."""
    file.seek(offset)
    for raw in file:
        if not raw.endswith(b"\n"):
            return
        yield _line(raw[:-1], offset, job)
        offset += len(raw)


def _backward(file: BinaryIO, offset: int, job: str) -> Iterator[LogLine]:
    """Lines ending at or before `offset` (a line boundary), newest first."""
    base, buffer, stop = offset, b"", 0  # buffer holds bytes from base; [0, stop) unread
    while stop > 0 or base > 0:
        cut = buffer.rfind(b"\n", 0, stop - 1) if stop > 0 else -1
        if cut < 0 and base > 0:
            size = min(_BLOCK, base)
            base -= size
            file.seek(base)
            buffer, stop = file.read(size) + buffer[:stop], size + stop
            continue
        yield _line(buffer[cut + 1 : stop - 1], base + cut + 1, job)
        stop = cut + 1


# What a file holds: its streams and their time spans, kept per file and extended as it grows


@dataclass(frozen=True)
class _Summary:
    identity: tuple[int, int]  # (device, inode): a replaced file is summarised afresh
    offset: int
    streams: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # first, last


_SUMMARIES: dict[Path, _Summary] = {}
_SUMMARIES_LOCK = threading.Lock()
_SUMMARIES_KEPT = 256


def stream_spans(path: Path) -> Mapping[str, tuple[int, int]]:
    """Stream → (first, last) event time; the SDK asks on every poll, so only new bytes
    are read."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    identity = (stat.st_dev, stat.st_ino)
    with _SUMMARIES_LOCK:
        known = _SUMMARIES.get(path)
    if known is None or known.identity != identity or known.offset > stat.st_size:
        known = _Summary(identity, 0)
    if known.offset < stat.st_size:
        known = _extend(known, path)
        _remember(path, known)
    return known.streams


def _extend(summary: _Summary, path: Path) -> _Summary:
    streams, offset = dict(summary.streams), summary.offset
    with open_log(path) as file:
        for line in _forward(file, offset, ""):
            event = line.event
            streams[event.stream] = _span(streams.get(event.stream), event.timestamp_ms)
            offset = line.end
    return _Summary(summary.identity, offset, streams)


def _span(span: tuple[int, int] | None, stamp: int) -> tuple[int, int]:
    return (stamp, stamp) if span is None else (min(span[0], stamp), max(span[1], stamp))


def _remember(path: Path, summary: _Summary) -> None:
    with _SUMMARIES_LOCK:
        _SUMMARIES.pop(path, None)  # re-inserted last: the dict's order is least recent first
        _SUMMARIES[path] = summary
        while len(_SUMMARIES) > _SUMMARIES_KEPT:
            del _SUMMARIES[next(iter(_SUMMARIES))]
