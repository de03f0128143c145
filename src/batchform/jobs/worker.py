"""One stored transform job, run in its own process: `python -m batchform.jobs.worker JOB`.

The server starts one per running job so that a job's engine never competes with the
API for the server's interpreter lock, and a job that crashes takes only itself down.
The worker heartbeats the job's row (with its progress), stops when the row says
Stopping, hands the job back (resumable) on SIGTERM or when its server dies, and records
the outcome through the lifecycle module.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from batchform.engine.executors import ExecutorSettings
from batchform.engine.job import TransformOutcome
from batchform.engine.ledger import Ledger, ResumeRefused
from batchform.engine.settings import EffectiveSettings
from batchform.jobs import lifecycle
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRAINING_JOBS, TRANSFORM_JOBS, Row, Store
from batchform.jobs.transformrun import TransformRun, job_dir, parse_transform_request
from batchform.runtimes.registry import ModelReference
from batchform.training.run import TrainingRun, parse_training_request, training_dir

DATABASE_URL_ENV = "BATCHFORM_DATABASE_URL"
#: Batch work yields the CPU to the API and to interactive work on the same machine.
NICENESS = 19


@dataclass
class JobWorker:
    """What every job worker does: heartbeat, obey Stopping, hand the job back."""

    store: Store
    table: sa.Table
    name: str
    owner: str
    heartbeat_seconds: float
    stop: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    #: Where the job's instances run (the server's --executor and --ray-address).
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    def claimed_row(self) -> Row:
        row = self.store.get(self.table, self.name)
        if row is not None and row["status"] == JobStatus.STOPPING.value:
            # Asked to stop between its claim and this start: nothing ran, nothing to undo.
            lifecycle.transition(self.store, self.table, self.name, JobStatus.STOPPED)
        if row is None or row["status"] != JobStatus.IN_PROGRESS.value:
            raise SystemExit(0)
        return row

    def start_heartbeat(self) -> None:
        parent = os.getppid()
        signal.signal(signal.SIGTERM, lambda *_: self.hand_back())
        threading.Thread(target=self._beat, args=(parent,), daemon=True).start()

    def hand_back(self) -> None:
        """Stop at a resumable point; the job stays InProgress for a server to take."""
        self.released.set()
        self.stop.set()

    def release(self) -> None:
        self.store.update(self.table, self.name, {"owner": None, "resume": True}, owner=self.owner)

    def live_values(self) -> dict[str, Any]:
        """What the job's row shows between heartbeats (progress, effective settings)."""
        return {}

    def _beat(self, parent: int) -> None:
        while not self.stop.wait(self.heartbeat_seconds):
            if os.getppid() != parent:
                self.hand_back()  # the server died: let the next one take over at once
                return
            self._heartbeat()

    def _heartbeat(self) -> None:
        values = {"heartbeat_at": time.time(), **self.live_values()}
        if not self.store.update(self.table, self.name, values, owner=self.owner):
            self.stop.set()  # taken over by another server: this run must end
            return
        row = self.store.get(self.table, self.name)
        if row is not None and row["status"] == JobStatus.STOPPING.value:
            self.stop.set()


@dataclass
class TransformWorker(JobWorker):
    run: TransformRun = field(init=False)

    def main(self) -> None:
        self.run = transform_run(self.claimed_row(), self.executor)
        self.run.stop = self.stop
        self.start_heartbeat()
        try:
            self.finish(self.run.run(), None)
        except ResumeRefused as exc:
            self.finish(None, f"The server restarted while the job ran and it cannot resume: {exc}")
        except Exception as exc:
            self.finish(None, f"Internal error: {type(exc).__name__}: {exc}")
            raise

    def live_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"progress": progress(self.run)}
        if self.run.settings is not None:
            values["settings"] = settings_fields(self.run.settings)
        return values

    def finish(self, outcome: TransformOutcome | None, reason: str | None) -> None:
        if self.released.is_set() and (outcome is None or outcome.status is JobStatus.STOPPED):
            self.release()
            return
        values: dict[str, Any] = {"progress": progress(self.run)}
        if outcome is None:
            values["failure_reason"] = reason
            lifecycle.transition(self.store, self.table, self.name, JobStatus.FAILED, values)
            return
        if outcome.settings is not None:
            values["settings"] = settings_fields(outcome.settings)
        stopped = outcome.status is JobStatus.STOPPED
        values["failure_reason"] = None if stopped else outcome.failure_reason
        lifecycle.transition(self.store, self.table, self.name, outcome.status, values)


@dataclass
class TrainingWorker(JobWorker):
    """A training job cannot resume mid-way: handed back, it trains again from the start."""

    run: TrainingRun = field(init=False)

    def main(self) -> None:
        row = self.claimed_row()
        request = parse_training_request(row["request"])
        self.run = TrainingRun(
            request, stop=self.stop, on_status=lambda _: self._statuses(), executor=self.executor
        )
        self.start_heartbeat()
        outcome = self.run.run()
        if self.released.is_set() and outcome.status is JobStatus.STOPPED:
            self.release()
            return
        values = {
            **self._status_values(),
            "failure_reason": outcome.failure_reason,
            "model_artifacts": outcome.model_artifacts_url,
            "final_metrics": outcome.final_metrics,
        }
        lifecycle.transition(self.store, self.table, self.name, outcome.status, values)

    def _statuses(self) -> None:
        values = {**self._status_values(), "modified_at": time.time()}
        self.store.update(self.table, self.name, values, owner=self.owner)

    def _status_values(self) -> dict[str, Any]:
        transitions = self.run.secondary_status_transitions
        return {
            "secondary_status": transitions[-1].status.value if transitions else "Starting",
            "transitions": [entry.to_response() for entry in transitions],
        }


def transform_run(row: Row, executor: ExecutorSettings | None = None) -> TransformRun:
    request = parse_transform_request(row["request"])
    model = ModelReference(**row["model"])
    resume = bool(row["resume"]) and _has_ledger(request.transform_job_name)
    return TransformRun(request, model, resume=resume, executor=executor or ExecutorSettings())


def _has_ledger(job_name: str) -> bool:
    return Ledger(job_dir(job_name) / "ledger.jsonl").read().spec_sha256 is not None


def progress(run: TransformRun) -> dict[str, Any]:
    return dataclasses.asdict(run.progress.snapshot())


def settings_fields(settings: EffectiveSettings) -> dict[str, Any]:
    return {
        "MaxConcurrentTransforms": settings.max_concurrent_transforms,
        "MaxPayloadInMB": settings.max_payload_in_mb,
        "BatchStrategy": settings.batch_strategy.value,
    }


def worker_log(kind: str, name: str) -> Path:
    """Where a job worker's own output goes (tracebacks of what broke it)."""
    folder = training_dir(name) if kind == "training" else job_dir(name)
    return folder / "worker.log"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m batchform.jobs.worker")
    parser.add_argument("job")
    parser.add_argument("--kind", choices=("transform", "training"), default="transform")
    parser.add_argument("--owner", required=True)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--ray-address")
    args = parser.parse_args()
    executor = ExecutorSettings(args.executor, args.ray_address)
    os.nice(NICENESS)
    # The URL comes through the environment: it may hold a password, which command
    # lines show to every user of the machine.
    store = Store(os.environ[DATABASE_URL_ENV], migrate=False)
    worker: TransformWorker | TrainingWorker
    if args.kind == "training":
        worker = TrainingWorker(
            store, TRAINING_JOBS, args.job, args.owner, args.heartbeat, executor=executor
        )
    else:
        worker = TransformWorker(
            store, TRANSFORM_JOBS, args.job, args.owner, args.heartbeat, executor=executor
        )
    try:
        worker.main()
    finally:
        store.close()


if __name__ == "__main__":
    main()
