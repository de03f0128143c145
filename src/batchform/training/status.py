"""A training job's secondary statuses, as DescribeTrainingJob reports them.

SageMaker shows where a training job is with `SecondaryStatus` and the history
`SecondaryStatusTransitions`: each entry has the status, when the job entered it, when
it left it (the next entry's start; a terminal entry starts and ends at once) and a
message. The history here is read while the job runs, from other threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any


class SecondaryStatus(str, Enum):
    STARTING = "Starting"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        SecondaryStatus.COMPLETED,
        SecondaryStatus.FAILED,
        SecondaryStatus.STOPPED,
        SecondaryStatus.MAX_RUNTIME_EXCEEDED,
    }
)

#: SageMaker's StatusMessage for each secondary status.
MESSAGES = {
    SecondaryStatus.STARTING: "Starting the training job",
    SecondaryStatus.DOWNLOADING: "Downloading input data",
    SecondaryStatus.TRAINING: "Training image download completed. Training in progress.",
    SecondaryStatus.UPLOADING: "Uploading generated training model",
    SecondaryStatus.STOPPING: "Stopping the training job",
    SecondaryStatus.COMPLETED: "Training job completed",
    SecondaryStatus.FAILED: "Training job failed",
    SecondaryStatus.STOPPED: "Training job stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "Training job stopped: MaxRuntimeInSeconds exceeded",
}


@dataclass(frozen=True)
class SecondaryStatusTransition:
    """One entry of SecondaryStatusTransitions; times in seconds since the epoch."""

    status: SecondaryStatus
    start_time: float
    end_time: float | None
    status_message: str

    def to_response(self) -> dict[str, Any]:
        """The entry as DescribeTrainingJob answers it (EndTime absent while current)."""
        entry: dict[str, Any] = {"Status": self.status.value, "StartTime": self.start_time}
        if self.end_time is not None:
            entry["EndTime"] = self.end_time
        entry["StatusMessage"] = self.status_message
        return entry


StatusListener = Callable[[SecondaryStatusTransition], None]


class StatusHistory:
    """The transitions so far; `enter` closes the current one and opens the next."""

    def __init__(self, listener: StatusListener | None = None) -> None:
        self._listener = listener
        self._lock = threading.Lock()
        self._entries: list[SecondaryStatusTransition] = []

    def enter(self, status: SecondaryStatus, message: str | None = None) -> None:
        now = time.time()
        entry = SecondaryStatusTransition(
            status, now, now if status.terminal else None, message or MESSAGES[status]
        )
        with self._lock:
            if self._entries and self._entries[-1].end_time is None:
                self._entries[-1] = replace(self._entries[-1], end_time=now)
            self._entries.append(entry)
        if self._listener is not None:
            self._listener(entry)

    @property
    def current(self) -> SecondaryStatus | None:
        with self._lock:
            return self._entries[-1].status if self._entries else None

    def transitions(self) -> list[SecondaryStatusTransition]:
        with self._lock:
            return list(self._entries)
