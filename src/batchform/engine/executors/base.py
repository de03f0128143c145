"""The executor interface: where a job's instances run, and how their news comes back.

An executor starts a pool of instances for one job (threads of this process, or Ray
actors across a cluster). The job hands each instance tasks (picklable callables that
run where the instance lives), hears back through events (log lines, committed objects,
progress counts) and asks them all to stop. What the tasks do is the job's business:
transforms and training jobs bring their own (engine/instance.py, training/hosts.py).
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchform.errors import BatchformError


class InstanceLost(BatchformError):
    """An instance's process or machine went away; work it had not finished can run elsewhere."""


class NoCapacity(BatchformError):
    """The cluster cannot place the instances a job asks for."""


@dataclass(frozen=True)
class InstanceResources:
    """What one instance reserves on a node: its InstanceType's CPUs, memory and GPUs."""

    cpus: float
    memory_bytes: int
    gpus: int = 0

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.cpus:g} CPU, {self.memory_bytes / 2**30:g} GiB{gpus}"


@dataclass(frozen=True)
class Counts:
    """Progress counters an instance added since its last report, and its latencies."""

    counts: dict[str, int]
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class LogLine:
    """A line for the job log: `stream` is `data-log` or the instance's own stream."""

    stream: str
    line: str


class ProgressCounter(Protocol):
    """What the instance pipeline counts into (JobProgress, or a recorder sent home)."""

    def add(self, **counts: int) -> None: ...

    def record_latency(self, seconds: float) -> None: ...


class NoProgress:
    """A counter for instances whose work is not a job's progress (training hosts,
    endpoint instances: those count elsewhere)."""

    def add(self, **counts: int) -> None:
        pass

    def record_latency(self, seconds: float) -> None:
        pass


@dataclass
class InstanceContext:
    """What a task sees where it runs; kept between the tasks one instance runs.

    `state` and `cleanup` let a first task start something (a model) that later tasks
    reuse and that closing the pool tears down; `lock` runs one task at a time.
    """

    index: int
    workspace: str
    cpus: int
    progress: ProgressCounter
    emit: Callable[[object], None]
    node: str = "localhost"
    stop: threading.Event = field(default_factory=threading.Event)
    state: dict[str, Any] = field(default_factory=dict)
    cleanup: ExitStack = field(default_factory=ExitStack)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return f"instance-{self.index + 1}"

    def log(self, line: str, stream: str = "data-log") -> None:
        self.emit(LogLine(stream, line))


Task = Callable[[InstanceContext], Any]


class Shared(Protocol):
    """Bytes put once where every instance can fetch them (a model folder, packed)."""

    def get(self) -> bytes: ...


@dataclass(frozen=True)
class InMemory:
    data: bytes

    def get(self) -> bytes:
        return self.data


@dataclass
class PoolSpec:
    """What a job asks of an executor."""

    job_name: str
    count: int
    resources: InstanceResources
    #: Where local instances keep their workspaces (remote ones use their node's temp).
    workspace: str
    #: Events from instance `index`, called from whichever thread brings them home.
    on_event: Callable[[int, object], None]
    #: Local instances count straight into this; remote ones send Counts events.
    progress: ProgressCounter


class InstancePool(Protocol):
    """A job's instances, started; `submit` returns at once, the future says how it went.

    A future fails with InstanceLost when the instance died under the task.
    """

    @property
    def count(self) -> int: ...

    @property
    def spans_machines(self) -> bool:
        """May instances run on machines other than this one (local paths unreachable)?"""
        ...

    def submit(self, index: int, task: Task) -> Future[Any]: ...

    def replace(self, index: int) -> bool:
        """Start a fresh instance in a lost one's place; False when there is no room."""
        ...

    def share(self, data: bytes) -> Shared: ...

    def stop(self) -> None:
        """Ask every instance to stop what it runs (tasks end with JobStopped)."""
        ...

    def close(self) -> None: ...


class Executor(Protocol):
    name: str

    def start(self, spec: PoolSpec) -> InstancePool: ...


class RemoteError(BatchformError):
    """An error from an instance elsewhere whose own type could not travel: same message."""

    def __init__(self, message: str, kind: str = "Exception") -> None:
        super().__init__(message)
        self.kind = kind


def portable(error: BaseException) -> BaseException:
    """`error` if it survives pickling, else a RemoteError with its message and notes."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        substitute = RemoteError(str(error), type(error).__name__)
        for note in getattr(error, "__notes__", []):
            substitute.add_note(note)
        return substitute


class ProgressRecorder:
    """Counts an instance elsewhere adds, kept until `take` sends them home as one event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._latencies: list[float] = []

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] = self._counts.get(name, 0) + value

    def record_latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def take(self) -> Counts | None:
        """What was added since the last take, or None when nothing was."""
        with self._lock:
            if not self._counts and not self._latencies:
                return None
            taken = Counts(self._counts, self._latencies)
            self._counts, self._latencies = {}, []
            return taken
