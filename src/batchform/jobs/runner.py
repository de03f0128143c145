"""Runs stored transform jobs in the background, a few at a time, surviving restarts.

The store is the queue: a job is InProgress from its creation; while no server owns it,
it waits. A server claims waiting jobs up to its limit and runs each in a worker process
(`jobs/worker.py`) that heartbeats the job's row. Jobs whose server went quiet (killed,
crashed) are taken over and resumed from their ledger.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from batchform.engine.executors import ExecutorSettings, get_executor
from batchform.errors import BatchformError
from batchform.jobs import lifecycle
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRAINING_JOBS, TRANSFORM_JOBS, Row, Store
from batchform.jobs.worker import DATABASE_URL_ENV, worker_log

logger = logging.getLogger(__name__)
#: The kinds of job the runner runs, each with its table; one limit covers them all.
KINDS: dict[str, sa.Table] = {"transform": TRANSFORM_JOBS, "training": TRAINING_JOBS}
Key = tuple[str, str]  # (kind, job name)


@dataclass
class RunnerSettings:
    max_concurrent_jobs: int = 2
    heartbeat_seconds: float = 2.0
    #: A job whose server has not heartbeated for this long is taken over.
    stale_after_seconds: float = 10.0
    #: Where jobs' instances run; each worker gets it on its command line.
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)


@dataclass
class JobRunner:
    store: Store
    settings: RunnerSettings = field(default_factory=RunnerSettings)
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    _workers: dict[Key, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _closing: threading.Event = field(default_factory=threading.Event)
    _loop: threading.Thread | None = None
    _executor: ExecutorSettings | None = None

    def start(self) -> None:
        self._executor = prepared(self.settings.executor)
        self._loop = threading.Thread(target=self._serve, name="job-runner", daemon=True)
        self._loop.start()

    def wake(self) -> None:
        """A job was created: look now, not at the next heartbeat."""
        self._wake.set()

    def running(self) -> list[Key]:
        with self._lock:
            return list(self._workers)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop taking jobs; workers stop at a resumable point and hand their jobs back."""
        self._closing.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout=10)
        with self._lock:
            workers = dict(self._workers)
        for process in workers.values():
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for key, process in workers.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("job %s did not stop in time; killing its worker", key[1])
                _signal(process, signal.SIGKILL)
            self._reap(key, process)

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                self.tick()
            except BatchformError as exc:
                logger.warning("job runner: %s", exc)
            self._wake.wait(self.settings.heartbeat_seconds)
            self._wake.clear()

    def tick(self) -> None:
        self._reap_finished()
        self._take_over_stale()
        if not self._closing.is_set():
            self._claim_waiting()

    def _reap_finished(self) -> None:
        with self._lock:
            finished = {n: p for n, p in self._workers.items() if p.poll() is not None}
        for key, process in finished.items():
            self._reap(key, process)

    def _reap(self, key: Key, process: subprocess.Popen[bytes]) -> None:
        """A worker that exited without recording an outcome crashed: the job failed."""
        with self._lock:
            self._workers.pop(key, None)
        kind, name = key
        table = KINDS[kind]
        row = self.store.get(table, name)
        if row is None or row["owner"] != self.owner or JobStatus(row["status"]).terminal:
            return
        if self._closing.is_set() and process.returncode in (0, -signal.SIGKILL):
            self.store.update(table, name, {"owner": None, "resume": True}, owner=self.owner)
            return
        reason = (
            f"Internal error: the job's worker process exited with code {process.returncode}; "
            f"see {worker_log(kind, name)}"
        )
        lifecycle.transition(self.store, table, name, JobStatus.FAILED, {"failure_reason": reason})

    def _take_over_stale(self) -> None:
        cutoff = time.time() - self.settings.stale_after_seconds
        for table in KINDS.values():
            stale = self.store.select(
                table,
                table.c.status.in_([JobStatus.IN_PROGRESS.value, JobStatus.STOPPING.value]),
                table.c.owner.is_not(None),
                table.c.owner != self.owner,
                sa.or_(table.c.heartbeat_at.is_(None), table.c.heartbeat_at < cutoff),
            )
            for row in stale:
                self._orphaned(table, row)

    def _orphaned(self, table: sa.Table, row: Row) -> None:
        name = row["name"]
        if row["status"] == JobStatus.STOPPING.value:
            lifecycle.transition(self.store, table, name, JobStatus.STOPPED)
            return
        logger.warning("job %s lost its server; it will resume from its ledger", name)
        self.store.update(table, name, {"owner": None, "resume": True}, owner=row["owner"])

    def _claim_waiting(self) -> None:
        free = self.settings.max_concurrent_jobs - len(self.running())
        if free <= 0:
            return
        waiting = [
            (kind, row)
            for kind, table in KINDS.items()
            for row in self.store.select(
                table, table.c.status == JobStatus.IN_PROGRESS.value, table.c.owner.is_(None)
            )
        ]
        for kind, row in sorted(waiting, key=lambda pair: pair[1]["created_at"])[:free]:
            self._claim(kind, row)

    def _claim(self, kind: str, row: Row) -> None:
        now = time.time()
        values = {"owner": self.owner, "heartbeat_at": now, "attempts": row["attempts"] + 1}
        if row["started_at"] is None:
            values["started_at"] = now
        table = KINDS[kind]
        if not self.store.update(table, row["name"], values, owner=None, status=row["status"]):
            return  # another server was quicker
        with self._lock:
            self._workers[(kind, row["name"])] = self._spawn(kind, row["name"])

    def _spawn(self, kind: str, name: str) -> subprocess.Popen[bytes]:
        log_file = worker_log(kind, name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "batchform.jobs.worker", name, "--kind", kind),
            *("--owner", self.owner, "--heartbeat", str(self.settings.heartbeat_seconds)),
            *executor_arguments(self._executor or self.settings.executor),
        ]
        environment = {**os.environ, DATABASE_URL_ENV: self.store.url}
        with log_file.open("ab") as log:
            return subprocess.Popen(
                command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )


def prepared(executor: ExecutorSettings) -> ExecutorSettings:
    """Check the executor is installed; for Ray without an address, start one here that
    every job worker joins (instead of each starting its own)."""
    get_executor(executor)  # ConfigurationError with the install hint, before any job
    if executor.name != "ray" or executor.address or os.environ.get("RAY_ADDRESS"):
        return executor
    from batchform.engine.executors.ray import local_cluster

    return ExecutorSettings(executor.name, local_cluster())


def executor_arguments(executor: ExecutorSettings) -> list[str]:
    arguments = ["--executor", executor.name]
    if executor.address:
        arguments += ["--ray-address", executor.address]
    return arguments


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
