"""A job's log: every line the engine and the model write, kept in one file.

Each line is `<ISO-8601 UTC with milliseconds> [<stream>] <message>`. The stream is
`data-log` for the engine's own lines (effective settings, retries, failed objects, the
job's end) and the instance name (`instance-1`, …) for what that instance's model process
printed, so the CloudWatch-shaped readers can serve `<job>/data-log` and `<job>/instance-N`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

DATA_LOG = "data-log"
#: The CloudWatch log groups SageMaker writes job logs to, served by the server.
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_LINE = re.compile(r"^(\S+) \[([^\]]+)\] (.*)$")


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    stream: str
    message: str


class JobLog:
    """Appends timestamped lines to `path`; optionally echoes them (the CLI's --verbose)."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        self._echo = echo
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        self.write(DATA_LOG, line)

    def stream(self, name: str) -> Callable[[str], None]:
        """A sink whose lines land in stream `name` (a model instance's output)."""
        return lambda line: self.write(name, line)

    def write(self, stream: str, line: str) -> None:
        stamp = _format_time(time.time())
        with self._lock:
            if self._file.closed:
                return
            for part in line.splitlines() or [""]:
                self._file.write(f"{stamp} [{stream}] {part}\n")
            self._file.flush()
        if self._echo is not None:
            self._echo(line)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def stream_sink(log: Callable[[str], None], stream: str) -> Callable[[str], None]:
    """Bind `log` to a stream when it is a JobLog; other sinks (print, tests) take it as is."""
    return log.stream(stream) if isinstance(log, JobLog) else log


def read_events(path: Path) -> Iterator[LogEvent]:
    """Every event in a job log, in the order written; unparsable lines stay data-log."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for raw in lines:
            yield parse_line(raw.rstrip("\n"))


def parse_line(line: str) -> LogEvent:
    match = _LINE.match(line)
    if match is None:
        return LogEvent(0, DATA_LOG, line)
    stamp, stream, message = match.groups()
    return LogEvent(_parse_time(stamp), stream, message)


def _format_time(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(stamp: str) -> int:
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0
    return int(moment.timestamp() * 1000)
