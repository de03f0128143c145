"""An in-process runtime for tests: a Python function answers each payload."""

from __future__ import annotations

import threading
from collections.abc import Callable

from batchform.runtimes.base import (
    ExecutionParameters,
    InvocationRequest,
    InvocationResponse,
    Runtime,
)

Answer = Callable[[bytes], bytes]


class MockRuntime(Runtime):
    """Calls `answer(payload)`; exceptions it raises reach the engine unchanged."""

    def __init__(
        self,
        answer: Answer = lambda payload: payload,
        parameters: ExecutionParameters | None = None,
    ) -> None:
        self._answer = answer
        self._parameters = parameters or ExecutionParameters()
        self._lock = threading.Lock()
        self.started = False
        self.stopped = False
        self.payloads: list[bytes] = []

    def start(self) -> None:
        self.started = True

    def execution_parameters(self) -> ExecutionParameters:
        return self._parameters

    def invoke(self, request: InvocationRequest) -> InvocationResponse:
        with self._lock:
            self.payloads.append(request.payload)
        return InvocationResponse(self._answer(request.payload), request.accept)

    def stop(self) -> None:
        self.stopped = True
