"""The server's sampler against a real store: what it records of which jobs, and when."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchform.jobs import lifecycle
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRANSFORM_JOBS, Store
from batchform.jobs.timeseries import TimeSeriesRecorder, read_samples

OWNER = "this-server"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path))
    opened = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _job(store: Store, name: str, owner: str | None, records: int | None) -> None:
    now = time.time()
    progress = None if records is None else _progress(records, elapsed=1.0)
    store.insert(
        TRANSFORM_JOBS,
        {
            "name": name, "arn": f"arn:{name}", "status": "InProgress", "request": {},
            "model_name": "m", "model": {}, "created_at": now, "modified_at": now,
            "attempts": 1, "resume": False, "owner": owner, "progress": progress,
        },
    )  # fmt: skip


def _progress(records: int, elapsed: float) -> dict[str, Any]:
    return {
        "records": records,
        "elapsed": elapsed,
        "latency_buckets": [records],
        "latency_sum": 0.1,
    }


def test_only_this_servers_running_jobs_are_sampled_once_per_heartbeat(store: Store) -> None:
    _job(store, "mine", OWNER, records=10)
    _job(store, "another-servers", "elsewhere", records=10)
    _job(store, "not-started", OWNER, records=None)
    recorder = TimeSeriesRecorder(store, 0.5, OWNER)
    recorder.tick()
    recorder.tick()  # the row has not heartbeated since: nothing new to record
    assert [s["records"] for s in read_samples("mine")] == [10]
    assert read_samples("another-servers") == [] and read_samples("not-started") == []

    store.update(TRANSFORM_JOBS, "mine", {"progress": _progress(30, elapsed=2.0)})
    recorder.tick()
    assert [s["records"] for s in read_samples("mine")] == [10, 30]


def test_a_job_that_ended_gets_its_final_counters(store: Store) -> None:
    _job(store, "finishing", OWNER, records=5)
    recorder = TimeSeriesRecorder(store, 0.5, OWNER)
    recorder.tick()
    final = {"progress": _progress(50, elapsed=3.0)}
    lifecycle.transition(store, TRANSFORM_JOBS, "finishing", JobStatus.COMPLETED, final)
    recorder.tick()
    recorder.tick()
    assert [s["records"] for s in read_samples("finishing")] == [5, 50]
