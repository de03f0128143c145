"""A running job's view: figures from heartbeat counters, findings from its data-log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchform.engine.ledger import FinishedObject, Ledger
from batchform.jobs.progressview import LogFindings, job_view, progress_figures
from batchform.storage import InputObject


def test_figures_add_rates_eta_and_the_fraction_read() -> None:
    figures = progress_figures(
        {
            "elapsed": 4.0,
            "records": 400,
            "bytes_read": 1000,
            "bytes_total": 3000,
            "latency_buckets": [1],
        }
    )
    assert figures["records_per_second"] == pytest.approx(100.0)
    assert figures["bytes_per_second"] == pytest.approx(250.0)
    assert figures["eta_seconds"] == pytest.approx(8.0)
    assert figures["fraction"] == pytest.approx(1 / 3)
    assert "latency_buckets" not in figures


def test_a_job_that_has_not_reported_has_no_eta_or_fraction() -> None:
    figures = progress_figures({})
    assert figures["eta_seconds"] is None and figures["fraction"] is None
    assert figures["records_per_second"] == 0.0


def test_the_log_names_failed_objects_and_counts_retries_per_instance() -> None:
    found = LogFindings()
    for line in (
        "job-1/instance-1: MaxConcurrentTransforms=1, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD",
        "job-1/instance-2: retry 1 after: model returned HTTP status 503: busy",
        "job-1/instance-2: retry 2 after: connection refused",
        "job-1/instance-1: failed to transform 'dir/b.csv': model returned HTTP status 500: boom",
        "instance-1: failed to transform 'c.csv': too large",
    ):
        found.read(line)
    assert found.failures == {
        "dir/b.csv": "model returned HTTP status 500: boom",
        "c.csv": "too large",
    }
    [retries] = found.retries.values()
    assert (retries.instance, retries.retries, retries.last_error) == (
        "instance-2",
        2,
        "connection refused",
    )


def _ledger(home: Path, job: str, keys: list[str], finished: dict[str, int]) -> None:
    ledger = Ledger(home / "jobs" / job / "ledger.jsonl")
    ledger.start("spec", "model", [InputObject(f"/in/{key}", key, 10) for key in keys])
    for key, records in finished.items():
        ledger.finished(FinishedObject(key, f"/out/{key}.out", 5, 0, records, 0))


def _row(job: str, status: str, ended: float | None = None) -> dict[str, Any]:
    request = {"TransformOutput": {"S3OutputPath": "/nonexistent/out"}}
    return {"name": job, "status": status, "request": request, "progress": None, "ended_at": ended}


def test_objects_come_from_the_ledger_while_the_job_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path))
    _ledger(tmp_path, "running", ["b.csv", "a.csv", "c.csv"], {"a.csv": 7})
    (tmp_path / "jobs" / "running" / "log").write_text(
        "2026-01-01T00:00:00.000Z [data-log] running/instance-1: failed to transform "
        "'c.csv': model returned HTTP status 500: boom\n"
    )
    view = job_view(_row("running", "InProgress"))
    states = {obj["key"]: (obj["state"], obj["records"], obj["error"]) for obj in view["objects"]}
    assert states == {
        "a.csv": ("Completed", 7, None),
        "b.csv": ("Pending", None, None),
        "c.csv": ("Failed", None, "model returned HTTP status 500: boom"),
    }
    assert [obj["key"] for obj in view["objects"]] == ["a.csv", "b.csv", "c.csv"]


def test_a_stopped_jobs_untouched_objects_did_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path))
    _ledger(tmp_path, "halted", ["a.csv", "b.csv"], {"a.csv": 3})
    view = job_view(_row("halted", "Stopped", ended=1.0))
    assert [obj["state"] for obj in view["objects"]] == ["Completed", "NotRun"]
    assert view["summary_url"] is None  # no summary of this job at its output path
