"""Every job status change goes through here: SageMaker's states and the moves between them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

from batchform.errors import BatchformError, ResourceNotFound

# The engine reports statuses too; it must not pay for importing SQLAlchemy.
if TYPE_CHECKING:
    import sqlalchemy as sa

    from batchform.jobs.store import Store


class JobStatus(str, Enum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})

# A job asked to stop may still finish (or fail) before the stop takes effect, as on
# SageMaker; nothing leaves a terminal state.
_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.IN_PROGRESS: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING, JobStatus.STOPPED}
    ),
    JobStatus.STOPPING: frozenset({JobStatus.STOPPED, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.STOPPED: frozenset(),
}


class IllegalTransition(BatchformError):
    """A status change SageMaker's state machine does not allow."""

    def __init__(self, job: str, current: JobStatus, wanted: JobStatus) -> None:
        self.current = current
        super().__init__(f"job '{job}' is {current.value}; it cannot become {wanted.value}")


def check_transition(job: str, current: JobStatus, wanted: JobStatus) -> None:
    if wanted not in _ALLOWED[current]:
        raise IllegalTransition(job, current, wanted)


def transition(
    store: Store,
    table: sa.Table,
    name: str,
    wanted: JobStatus,
    values: Mapping[str, Any] | None = None,
) -> None:
    """Move job `name` to `wanted`, atomically against concurrent changes.

    A terminal status also stamps the end time and releases the job from its server.
    """
    for _ in range(_CONFLICT_RETRIES):
        row = store.get(table, name)
        if row is None:
            raise ResourceNotFound(f"Could not find requested job with name {name}")
        current = JobStatus(row["status"])
        check_transition(name, current, wanted)
        now = time.time()
        fields: dict[str, Any] = {"status": wanted.value, "modified_at": now, **(values or {})}
        if wanted.terminal:
            fields.setdefault("ended_at", now)
            fields["owner"] = None
        if store.update(table, name, fields, status=current.value):
            return
    from batchform.jobs.store import StoreError

    raise StoreError(f"job '{name}' kept changing while its status was being set")


_CONFLICT_RETRIES = 10


def request_stop(store: Store, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Stop a job: one still waiting stops at once; a running one goes through Stopping.

    Stopping a job that already ended changes nothing, as on SageMaker.
    """
    status = JobStatus(row["status"])
    if status is not JobStatus.IN_PROGRESS:
        return
    wanted = JobStatus.STOPPED if row["owner"] is None else JobStatus.STOPPING
    transition(store, table, row["name"], wanted)
