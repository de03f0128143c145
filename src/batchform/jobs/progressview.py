"""A transform job as it runs, beyond DescribeTransformJob: counters, rates, ETA, each
object's state, retries per instance, dead-letter samples and the job's series.

Everything comes from what a job already leaves behind: the progress its worker
heartbeats into the row, its ledger (the inputs and every object committed), its log
(objects that failed, retries), the dead-letter files and `job_summary.json` next to the
output (exact per-object results once the job has ended).
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from batchform import storage
from batchform.engine.ledger import Ledger
from batchform.engine.summary import SUMMARY_NAME
from batchform.errors import BatchformError
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.logreader import open_log, read_lines
from batchform.jobs.logs import DATA_LOG
from batchform.jobs.store import Row
from batchform.jobs.timeseries import read_points
from batchform.jobs.transformrun import job_dir, log_path

#: Dead-letter records shown, over every object.
DEAD_LETTER_SAMPLES = 5
#: Characters of a dead-lettered record shown.
RECORD_PREVIEW = 300
# The engine's lines, as `<job>/instance-N: …` or `instance-N: …`.
_FAILED = re.compile(r"^(?:.*/)?(instance-\d+): failed to transform '(.*)': (.*)$", re.DOTALL)
_RETRY = re.compile(r"^(?:.*/)?(instance-\d+): retry (\d+) after: (.*)$", re.DOTALL)


@dataclass
class ObjectState:
    key: str
    state: str  # Pending, Completed, Failed, NotRun (a stopped job's untouched objects)
    records: int | None = None
    bad_records: int | None = None
    bytes_out: int | None = None
    output_url: str | None = None
    error: str | None = None
    errors_url: str | None = None  # the dead-letter file, when records went there


@dataclass
class InstanceRetries:
    instance: str
    retries: int = 0
    last_error: str | None = None


@dataclass
class LogFindings:
    """What a job's data-log says about objects and retries, read incrementally."""

    offset: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    retries: dict[str, InstanceRetries] = field(default_factory=dict)

    def read(self, line: str) -> None:
        failed = _FAILED.match(line)
        if failed:
            self.failures[failed.group(2)] = failed.group(3)
            return
        retry = _RETRY.match(line)
        if retry:
            entry = self.retries.setdefault(retry.group(1), InstanceRetries(retry.group(1)))
            entry.retries += 1
            entry.last_error = retry.group(3)


class _LogScans:
    """Each job's log is scanned once, then only what was appended since."""

    def __init__(self, limit: int = 64) -> None:
        self._found: dict[str, LogFindings] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def findings(self, job_name: str) -> LogFindings:
        with self._lock:
            found = self._found.pop(job_name, None) or LogFindings()
            self._found[job_name] = found  # most recent last
            while len(self._found) > self._limit:
                self._found.pop(next(iter(self._found)))
        with open_log(log_path(job_name)) as file:
            for line in read_lines(file, True, found.offset):
                if line.event.stream == DATA_LOG:
                    found.read(line.event.message)
                found.offset = line.end
        return found


_SCANS = _LogScans()


def job_view(row: Row) -> dict[str, Any]:
    """The live view of one job's row (a dict of plain values, JSON-ready)."""
    name = row["name"]
    findings = _SCANS.findings(name)
    summary = _summary(row)
    objects = _objects(row, summary, findings)
    for obj in objects:
        if obj.bad_records:
            obj.errors_url = dead_letter_url(row["request"], obj.key)
    return {
        "progress": progress_figures(row["progress"] or {}),
        "objects": [asdict(obj) for obj in objects],
        "instances": [asdict(entry) for entry in sorted(findings.retries.values(), key=_by_name)],
        "dead_letters": dead_letter_samples(row["request"], objects),
        "series": [asdict(point) for point in read_points(name)],
        "summary_url": _summary_url(row["request"]) if summary is not None else None,
    }


def _by_name(entry: InstanceRetries) -> str:
    return entry.instance


def progress_figures(progress: dict[str, Any]) -> dict[str, Any]:
    """The heartbeat's counters with the rates and ETA a person wants to read."""
    elapsed = float(progress.get("elapsed") or 0.0)
    bytes_read = int(progress.get("bytes_read") or 0)
    bytes_total = int(progress.get("bytes_total") or 0)
    records = int(progress.get("records") or 0)
    byte_rate = bytes_read / elapsed if elapsed > 0 else 0.0
    eta = (bytes_total - bytes_read) / byte_rate if byte_rate > 0 and bytes_total else None
    fraction = min(1.0, bytes_read / bytes_total) if bytes_total else None
    return {
        **{key: value for key, value in progress.items() if key != "latency_buckets"},
        "records_per_second": records / elapsed if elapsed > 0 else 0.0,
        "bytes_per_second": byte_rate,
        "eta_seconds": None if eta is None else max(0.0, eta),
        "fraction": fraction,
    }


def _objects(row: Row, summary: dict[str, Any] | None, findings: LogFindings) -> list[ObjectState]:
    """Every input object from the ledger, with the summary's exact results over it once
    the job has ended (a stopped job's summary lists no objects: the ledger still does)."""
    state = Ledger(job_dir(row["name"]) / "ledger.jsonl").read()
    stopped = row["status"] == JobStatus.STOPPED.value
    objects: dict[str, ObjectState] = {}
    for key in state.inputs:
        done = state.finished.get(key)
        if done is not None:
            objects[key] = ObjectState(
                key, "Completed", done.records, done.bad_records, done.size, done.output_url
            )
        elif key in findings.failures:
            objects[key] = ObjectState(key, "Failed", error=findings.failures[key])
        else:
            objects[key] = ObjectState(key, "NotRun" if stopped else "Pending")
    for entry in (summary or {}).get("objects") or []:
        objects[entry["key"]] = _from_summary(entry)
    return [objects[key] for key in sorted(objects)]


def _from_summary(entry: dict[str, Any]) -> ObjectState:
    return ObjectState(
        key=entry["key"],
        state=entry.get("status") or "Completed",
        records=entry.get("records"),
        bad_records=entry.get("bad_records"),
        bytes_out=entry.get("bytes_out"),
        output_url=entry.get("output"),
        error=entry.get("error"),
    )


def _summary_url(request: dict[str, Any]) -> str:
    return f"{request['TransformOutput']['S3OutputPath'].rstrip('/')}/{SUMMARY_NAME}"


def _summary(row: Row) -> dict[str, Any] | None:
    """The job's summary once it has ended (not one an earlier job left at that path)."""
    if not JobStatus(row["status"]).terminal or row["ended_at"] is None:
        return None
    try:
        summary = orjson.loads(storage.read_bytes(_summary_url(row["request"])))
    except (BatchformError, OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(summary, dict) or summary.get("job") != row["name"]:
        return None
    return summary


def dead_letter_url(request: dict[str, Any], key: str) -> str:
    root = f"{request['TransformOutput']['S3OutputPath'].rstrip('/')}/_batchform/errors"
    return storage.output_url(root, key).removesuffix(".out") + ".jsonl"


def dead_letter_samples(
    request: dict[str, Any], objects: list[ObjectState]
) -> list[dict[str, Any]]:
    """The first few dead-lettered records of the job, with where they came from."""
    samples: list[dict[str, Any]] = []
    for obj in objects:
        if not obj.bad_records:
            continue
        url = obj.errors_url or dead_letter_url(request, obj.key)
        for letter in _first_lines(url, DEAD_LETTER_SAMPLES - len(samples)):
            record = str(letter.get("record", ""))
            samples.append({**letter, "record": record[:RECORD_PREVIEW], "url": url})
        if len(samples) >= DEAD_LETTER_SAMPLES:
            break
    return samples


def _first_lines(url: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with contextlib.suppress(BatchformError, OSError):
        fs, path = storage.filesystem(url)
        with fs.open(path, "rb") as handle:
            while len(found) < count and (line := handle.readline()):
                with contextlib.suppress(orjson.JSONDecodeError):
                    found.append(orjson.loads(line))
    return found
