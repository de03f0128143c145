"""Runs each instance of a job as threads of this process (the default executor)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from batchform.engine.objectrun import ObjectResult

InstanceTask = Callable[[], list[ObjectResult]]


class LocalExecutor:
    """One thread per instance; each instance's model runs in its own processes."""

    name = "local"

    def run(self, tasks: list[InstanceTask], stop: threading.Event) -> list[list[ObjectResult]]:
        results: list[list[ObjectResult] | None] = [None] * len(tasks)
        errors: list[BaseException] = []
        remaining = threading.Semaphore(0)

        def run_one(index: int) -> None:
            try:
                results[index] = tasks[index]()
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                stop.set()  # an instance that cannot run stops the others, as in SageMaker
            finally:
                remaining.release()

        for index in range(len(tasks)):
            threading.Thread(
                target=run_one, args=(index,), name=f"instance-{index + 1}", daemon=True
            ).start()
        # Semaphore waits, not Thread.join: a Ctrl-C inside join() can make later joins
        # return early; here an interrupt stops the instances and still waits for them.
        waited = 0
        while waited < len(tasks):
            try:
                if remaining.acquire(timeout=0.2):
                    waited += 1
            except KeyboardInterrupt:
                stop.set()
        if errors:
            raise errors[0]
        return [result or [] for result in results]
