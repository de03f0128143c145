"""Running transform jobs over time: throughput, latency, and their model processes' CPU
and memory, sampled by the server so the console can chart a job as it runs and after.

A job's worker heartbeats its counters into the job's row; every heartbeat interval the
recorder appends one sample per running job to `<job dir>/timeseries.jsonl` with those
counters and the CPU time and resident memory of the worker's child processes (the
model's). Rates are differences between samples, computed when read, over the job's
own clock (the `elapsed` its worker stamps on each heartbeat's counters) so that sampling
out of step with the heartbeats does not make a steady job look jagged.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRANSFORM_JOBS, Row, Store
from batchform.jobs.transformrun import job_dir

SERIES_NAME = "timeseries.jsonl"
#: The shortest span a rate is measured over, where the series is long enough.
WINDOW_SECONDS = 2.0
#: Samples kept per job when read: enough for hours at the default interval.
MAX_POINTS = 2000
#: Enough bytes for one sample's line (they are about 150).
_LINE_BYTES = 256
_WORKER_MODULE = "batchform.jobs.worker"
_RUNNING = (JobStatus.IN_PROGRESS.value, JobStatus.STOPPING.value)


def series_path(job_name: str) -> Path:
    return job_dir(job_name) / SERIES_NAME


@dataclass(frozen=True)
class Point:
    """What happened between one sample and the one before it."""

    at: float  # epoch seconds of the later sample
    records_per_second: float
    latency_ms: float | None  # mean over the interval's invocations; None without any
    cpu_percent: float | None  # of one core; None when no model process was seen
    memory_mb: float | None


def sample(row: Row, usage: tuple[float, int] | None, now: float) -> dict[str, Any]:
    """One line of a job's series: its counters and its model processes' usage."""
    progress = row.get("progress") or {}
    entry: dict[str, Any] = {
        "t": round(now, 3),
        "elapsed": progress.get("elapsed", 0.0),
        "records": progress.get("records", 0),
        "invocations": sum(progress.get("latency_buckets") or []),
        "latency_sum": progress.get("latency_sum", 0.0),
    }
    if usage is not None:
        entry["cpu"], entry["rss"] = round(usage[0], 3), usage[1]
    return entry


def points(samples: list[dict[str, Any]]) -> list[Point]:
    """The rates up to each sample (a job's first sample only sets the baseline).

    Each rate is measured back over at least WINDOW_SECONDS of the job's own clock where
    the series allows: a half-second step holds too few records or CPU clock ticks to
    read steadily.
    """
    found = []
    for index in range(1, len(samples)):
        after = samples[index]
        if after.get("elapsed", 0.0) <= samples[index - 1].get("elapsed", 0.0):
            continue  # the same heartbeat twice, or a resumed run's clock starting again
        before = samples[_window_start(samples, index)]
        span = float(after["elapsed"]) - float(before.get("elapsed", 0.0))
        calls = after["invocations"] - before["invocations"]
        latency = (after["latency_sum"] - before["latency_sum"]) / calls if calls > 0 else None
        found.append(
            Point(
                at=after["t"],
                records_per_second=max(0.0, (after["records"] - before["records"]) / span),
                latency_ms=None if latency is None else latency * 1000,
                cpu_percent=_cpu_percent(before, after),
                memory_mb=after["rss"] / 2**20 if "rss" in after else None,
            )
        )
    return found


def _window_start(samples: list[dict[str, Any]], index: int) -> int:
    """The sample a rate up to `index` is measured from: WINDOW_SECONDS back, or as far
    as the run goes (never across a resumed run's restarted clock)."""
    end = float(samples[index].get("elapsed", 0.0))
    start = index - 1
    while start > 0:
        earlier, current = samples[start - 1], samples[start]
        if earlier.get("elapsed", 0.0) >= current.get("elapsed", 0.0):
            break
        if end - float(current.get("elapsed", 0.0)) >= WINDOW_SECONDS:
            break
        start -= 1
    return start


def _cpu_percent(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    span = float(after["t"]) - float(before["t"])
    if "cpu" not in after or span <= 0:
        return None
    # A model process that was replaced takes its CPU time with it: never a negative rate.
    used = float(after["cpu"]) - float(before.get("cpu", 0.0))
    return max(0.0, used / span * 100)


def read_samples(job_name: str) -> list[dict[str, Any]]:
    """The job's newest MAX_POINTS + 1 samples, read from the end of its file."""
    path = series_path(job_name)
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - (MAX_POINTS + 1) * _LINE_BYTES)
            handle.seek(start)
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    if start > 0:
        lines = lines[1:]  # the first line read is probably cut
    samples = []
    for line in lines[-(MAX_POINTS + 1) :]:
        with contextlib.suppress(orjson.JSONDecodeError):  # a line cut by a crash
            samples.append(orjson.loads(line))
    return samples


def read_points(job_name: str) -> list[Point]:
    return points(read_samples(job_name))


class TimeSeriesRecorder:
    """Samples the transform jobs this server runs (those `owner` holds) every `interval`
    seconds; servers sharing a database each sample their own."""

    def __init__(self, store: Store, interval: float, owner: str) -> None:
        self.store = store
        self.interval = max(0.2, interval)
        self.owner = owner
        self._watched: set[str] = set()
        #: Each job's heartbeat last sampled: a row not updated since is not sampled again.
        self._last: dict[str, float] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-timeseries", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a sampling failure must never take the server down
                time.sleep(self.interval)

    def tick(self) -> None:
        table = TRANSFORM_JOBS
        running = self.store.select(
            table, table.c.status.in_(_RUNNING), table.c.owner == self.owner
        )
        now = time.time()
        workers = _workers()
        for row in running:
            if row["progress"] is not None and self._fresh(row):
                _append(row["name"], sample(row, _usage(workers.get(row["name"])), now))
        # A job that just ended gets one last sample with its final counters.
        names = {row["name"] for row in running}
        for name in self._watched - names:
            ended = self.store.get(TRANSFORM_JOBS, name)
            if ended is not None and ended["progress"] is not None:
                _append(name, sample(ended, None, now))
        self._watched = {row["name"] for row in running if row["progress"] is not None}
        self._last = {name: at for name, at in self._last.items() if name in self._watched}

    def _fresh(self, row: Row) -> bool:
        beat = float(row["progress"].get("elapsed", 0.0))
        if self._last.get(row["name"]) == beat:
            return False
        self._last[row["name"]] = beat
        return True


def _append(job_name: str, entry: dict[str, Any]) -> None:
    path = series_path(job_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(orjson.dumps(entry) + b"\n")


def _workers() -> dict[str, psutil.Process]:
    """This server's transform job workers by job name (`python -m batchform.jobs.worker
    JOB --kind transform ...`)."""
    found: dict[str, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                name = _worker_job(child.cmdline())
                if name is not None:
                    found[name] = child
    return found


def _worker_job(command: list[str]) -> str | None:
    if _WORKER_MODULE not in command:
        return None
    rest = command[command.index(_WORKER_MODULE) + 1 :]
    if not rest or "training" in rest:
        return None
    return rest[0]


def _usage(worker: psutil.Process | None) -> tuple[float, int] | None:
    """CPU seconds and resident bytes of the worker's descendants: the model processes."""
    if worker is None:
        return None
    try:
        children: Iterable[psutil.Process] = worker.children(recursive=True)
    except psutil.Error:
        return None
    cpu, rss = 0.0, 0
    for child in children:
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            cpu += times.user + times.system
            rss += child.memory_info().rss
    return cpu, rss
