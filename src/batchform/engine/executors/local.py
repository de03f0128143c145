"""Runs each instance of a job in threads of this process (the default executor).

An instance's model runs in its own processes either way; here the instance's pipeline
is a thread, its workspace a folder of the job's, and its events reach the job directly.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Any

from batchform.engine.executors.base import (
    InMemory,
    InstanceContext,
    PoolSpec,
    Shared,
    Task,
)

#: Where local instances are reached (training hosts meet there).
LOOPBACK = "127.0.0.1"


class LocalExecutor:
    name = "local"

    @classmethod
    def from_settings(cls, settings: object) -> LocalExecutor:
        """Nothing to set: threads need no address."""
        return cls()

    def start(self, spec: PoolSpec) -> LocalPool:
        return LocalPool(spec)


class LocalPool:
    """One context per instance; each submitted task runs in a thread of its own."""

    spans_machines = False

    def __init__(self, spec: PoolSpec) -> None:
        self._spec = spec
        # The machine's cores shared out: each instance's model gets its part.
        self._cpus = max(1, (os.cpu_count() or 1) // spec.count)
        self._contexts = [self._context(index) for index in range(spec.count)]

    @property
    def count(self) -> int:
        return self._spec.count

    def _context(self, index: int) -> InstanceContext:
        def emit(event: object) -> None:
            self._spec.on_event(index, event)

        workspace = os.path.join(self._spec.workspace, f"instance-{index + 1}")
        progress = self._spec.progress
        return InstanceContext(index, workspace, self._cpus, progress, emit, node=LOOPBACK)

    def submit(self, index: int, task: Task) -> Future[Any]:
        future: Future[Any] = Future()
        context = self._contexts[index]

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(task(context))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

        threading.Thread(target=run, name=f"{context.name}-task", daemon=True).start()
        return future

    def replace(self, index: int) -> bool:
        return True  # a thread is never lost on its own: the instance is still there

    def share(self, data: bytes) -> Shared:
        return InMemory(data)

    def stop(self) -> None:
        for context in self._contexts:
            context.stop.set()

    def close(self) -> None:
        for context in self._contexts:
            context.cleanup.close()
