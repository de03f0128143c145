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
from typing import Any

from batchform.engine.job import TransformOutcome
from batchform.engine.ledger import Ledger, ResumeRefused
from batchform.engine.settings import EffectiveSettings
from batchform.jobs import lifecycle
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRANSFORM_JOBS, Row, Store
from batchform.jobs.transformrun import TransformRun, job_dir, parse_transform_request
from batchform.runtimes.registry import ModelReference

JOBS = TRANSFORM_JOBS
DATABASE_URL_ENV = "BATCHFORM_DATABASE_URL"
#: Batch work yields the CPU to the API and to interactive work on the same machine.
NICENESS = 19


@dataclass
class JobWorker:
    store: Store
    name: str
    owner: str
    heartbeat_seconds: float
    run: TransformRun = field(init=False)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        row = self.store.get(JOBS, self.name)
        if row is not None and row["status"] == JobStatus.STOPPING.value:
            # Asked to stop between its claim and this start: nothing ran, nothing to undo.
            lifecycle.transition(self.store, JOBS, self.name, JobStatus.STOPPED)
        if row is None or row["status"] != JobStatus.IN_PROGRESS.value:
            raise SystemExit(0)
        self.run = transform_run(row)

    def main(self) -> None:
        parent = os.getppid()
        signal.signal(signal.SIGTERM, lambda *_: self.hand_back())
        beating = threading.Thread(target=self._beat, args=(parent,), daemon=True)
        beating.start()
        try:
            outcome: TransformOutcome | None = self.run.run()
            self.finish(outcome, None)
        except ResumeRefused as exc:
            self.finish(None, f"The server restarted while the job ran and it cannot resume: {exc}")
        except Exception as exc:
            self.finish(None, f"Internal error: {type(exc).__name__}: {exc}")
            raise

    def hand_back(self) -> None:
        """Stop at a resumable point; the job stays InProgress for a server to resume."""
        self.released.set()
        self.run.stop.set()

    def finish(self, outcome: TransformOutcome | None, reason: str | None) -> None:
        if self.released.is_set() and (outcome is None or outcome.status is JobStatus.STOPPED):
            self.store.update(JOBS, self.name, {"owner": None, "resume": True}, owner=self.owner)
            return
        values: dict[str, Any] = {"progress": progress(self.run)}
        if outcome is None:
            values["failure_reason"] = reason
            lifecycle.transition(self.store, JOBS, self.name, JobStatus.FAILED, values)
            return
        if outcome.settings is not None:
            values["settings"] = settings_fields(outcome.settings)
        stopped = outcome.status is JobStatus.STOPPED
        values["failure_reason"] = None if stopped else outcome.failure_reason
        lifecycle.transition(self.store, JOBS, self.name, outcome.status, values)

    def _beat(self, parent: int) -> None:
        while not self.run.stop.wait(self.heartbeat_seconds):
            if os.getppid() != parent:
                self.hand_back()  # the server died: let the next one resume at once
                return
            self._heartbeat()

    def _heartbeat(self) -> None:
        values: dict[str, Any] = {"heartbeat_at": time.time(), "progress": progress(self.run)}
        if self.run.settings is not None:
            values["settings"] = settings_fields(self.run.settings)
        if not self.store.update(JOBS, self.name, values, owner=self.owner):
            self.run.stop.set()  # taken over by another server: this run must end
            return
        row = self.store.get(JOBS, self.name)
        if row is not None and row["status"] == JobStatus.STOPPING.value:
            self.run.stop.set()


def transform_run(row: Row) -> TransformRun:
    request = parse_transform_request(row["request"])
    model = ModelReference(**row["model"])
    resume = bool(row["resume"]) and _has_ledger(request.transform_job_name)
    return TransformRun(request, model, resume=resume)


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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m batchform.jobs.worker")
    parser.add_argument("job")
    parser.add_argument("--owner", required=True)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    args = parser.parse_args()
    os.nice(NICENESS)
    # The URL comes through the environment: it may hold a password, which command
    # lines show to every user of the machine.
    store = Store(os.environ[DATABASE_URL_ENV], migrate=False)
    try:
        JobWorker(store, args.job, args.owner, args.heartbeat).main()
    finally:
        store.close()


if __name__ == "__main__":
    main()
