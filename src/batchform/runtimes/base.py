"""How a model is called: the one small interface every runtime implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from batchform.errors import InvocationError
from batchform.runtimes.spool import SpooledBody


@dataclass(frozen=True, slots=True)
class ExecutionParameters:
    """What a model may say about itself through GET /execution-parameters.

    Each value is None when the model did not say; the request and then SageMaker's
    defaults decide those.
    """

    max_concurrent_transforms: int | None = None
    batch_strategy: str | None = None
    max_payload_in_mb: int | None = None


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    payload: bytes
    content_type: str | None
    accept: str | None
    timeout_seconds: float
    #: The caller can take a large answer as a SpooledBody (a runtime may ignore this).
    spool_answer: bool = False


@dataclass(frozen=True, slots=True)
class InvocationResponse:
    body: bytes
    content_type: str | None = None
    #: Set instead of `body` (which is then empty) when the answer was spooled.
    spooled: SpooledBody | None = None

    @property
    def size(self) -> int:
        return self.spooled.size if self.spooled is not None else len(self.body)


@dataclass(frozen=True, slots=True)
class IsolationPlan:
    """How to group-test a failed payload's records (see records/isolation.py)."""

    split_type: str  # a SplitType value
    record_count: int
    known_bad: bool  # the payload as a whole already failed
    group_size: int
    max_retries: int
    assemble_with: str  # an AssembleWith value: how the answers of the pieces are joined


@dataclass(frozen=True, slots=True)
class Isolated:
    """What isolation next to the model found: the good records' answers, joined in
    record order as AssembleWith joins answers, and each record that failed alone."""

    body: bytes
    #: (record index, start byte, end byte, status, message) of each failed record.
    failed: list[tuple[int, int, int, int, str]]
    retries: int = 0


@dataclass(frozen=True)
class RuntimeContext:
    """What a runtime needs to start one instance's model.

    `environment` is already merged in contract order (SageMaker's variables, then the
    model's Environment, then the job's); `workspace` is this instance's private
    `/opt/ml`-shaped folder; `log` receives the model's output line by line.
    """

    instance_name: str
    workspace: str
    environment: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    log: Callable[[str], None] = field(default=lambda line: None)
    #: Counts events the job reports (`model_restarts`), by name and amount.
    count: Callable[[str, int], None] = field(default=lambda name, amount: None)
    #: The cores this instance has (its share of the machine); None: all of them.
    cpus: int | None = None


class Runtime(ABC):
    """A started model that answers invocations.

    Implementations must be safe to call `invoke` from several threads at once (up to
    MaxConcurrentTransforms) and must release every process and port in `stop`, which
    may be called more than once.
    """

    @abstractmethod
    def start(self) -> None: ...

    def execution_parameters(self) -> ExecutionParameters:
        return ExecutionParameters()

    @abstractmethod
    def invoke(self, request: InvocationRequest) -> InvocationResponse:
        """Answer one payload; raise an InvocationError subclass when it cannot."""

    def invoke_many(
        self, requests: list[InvocationRequest]
    ) -> list[InvocationResponse | InvocationError]:
        """Answer independent payloads, each failure returned in its place.

        Runtimes whose model lives in another process may answer them in one exchange
        (record isolation sends rounds of small pieces); this default calls `invoke`.
        """
        answers: list[InvocationResponse | InvocationError] = []
        for request in requests:
            try:
                answers.append(self.invoke(request))
            except InvocationError as exc:
                answers.append(exc)
        return answers

    def isolate(self, request: InvocationRequest, plan: IsolationPlan) -> Isolated | None:
        """Group-test `request.payload`'s records where the model runs, when that saves
        round trips; None (the default) lets the engine do it through `invoke_many`."""
        return None

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
