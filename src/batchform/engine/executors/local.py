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

        def run_one(index: int) -> None:
            try:
                results[index] = tasks[index]()
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                stop.set()  # an instance that cannot run stops the others, as in SageMaker

        threads = [
            threading.Thread(target=run_one, args=(i,), name=f"instance-{i + 1}")
            for i in range(len(tasks))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # short joins keep Ctrl-C responsive
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise errors[0]
        return [result or [] for result in results]
