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
from batchform.runtimes.spool import SpooledBody

Answer = Callable[[bytes], bytes]


class MockRuntime(Runtime):
    """Calls `answer(payload)`; exceptions it raises reach the engine unchanged.

    With `spool`, non-empty answers go back as SpooledBody whenever the caller takes
    them, as the handler runtime's workers send large ones.
    """

    def __init__(
        self,
        answer: Answer = lambda payload: payload,
        parameters: ExecutionParameters | None = None,
        spool: bool = False,
    ) -> None:
        self._answer = answer
        self._parameters = parameters or ExecutionParameters()
        self._spool = spool
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
        body = self._answer(request.payload)
        if self._spool and request.spool_answer and body:
            return InvocationResponse(b"", request.accept, SpooledBody.of(body))
        return InvocationResponse(body, request.accept)

    def stop(self) -> None:
        self.stopped = True
