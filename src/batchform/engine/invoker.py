"""Answering one batch: DataProcessing, the model call with SageMaker's retries, assembly.

With record-level isolation (`on_error=isolate`) a batch that still fails after its
retries is halved until the failing records stand alone: the good records are answered,
each bad record becomes a dead letter, and the object keeps going.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchform.engine.progress import JobProgress
from batchform.engine.settings import EffectiveSettings
from batchform.errors import (
    InputFormatError,
    InvocationError,
    ModelError,
    RecordTooLargeError,
)
from batchform.records.batch import Batch
from batchform.records.batching import split_batch
from batchform.runtimes.base import InvocationRequest, InvocationResponse, Runtime
from batchform.spec.enums import AssembleWith
from batchform.spec.transform import CreateTransformJobRequest

#: How much of a bad record a dead letter keeps.
DEAD_LETTER_RECORD_CAP = 64 * 1024


class BatchProcessor(Protocol):
    """Hook around each invocation (DataProcessing's RecordProcessor implements it)."""

    def prepare(self, batch: Batch) -> bytes: ...

    def finish(self, batch: Batch, response: bytes) -> bytes: ...


class PassThrough:
    """No DataProcessing: payloads and responses go as they are."""

    def prepare(self, batch: Batch) -> bytes:
        return batch.payload

    def finish(self, batch: Batch, response: bytes) -> bytes:
        return response


@dataclass(frozen=True)
class DeadLetter:
    """A record the model could not answer, with everything needed to find and replay it."""

    object_key: str
    record_index: int
    byte_offset: int
    record: bytes
    status: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "object": self.object_key,
            "record_index": self.record_index,
            "byte_offset": self.byte_offset,
            "status": self.status,
            "message": self.message,
            "record_bytes": len(self.record),
        }
        kept = self.record[:DEAD_LETTER_RECORD_CAP]
        try:
            entry["record"] = kept.decode("utf-8")
        except UnicodeDecodeError:
            entry["record_base64"] = base64.b64encode(kept).decode("ascii")
        entry["record_truncated"] = len(kept) < len(self.record)
        return entry


@dataclass
class Answer:
    body: bytes
    dead_letters: list[DeadLetter] = field(default_factory=list)


def assemble(body: bytes, assemble_with: AssembleWith) -> bytes:
    """AssembleWith=Line: exactly one newline after each response, never a blank line."""
    if assemble_with is AssembleWith.LINE and not body.endswith(b"\n"):
        return body + b"\n"
    return body


class BatchInvoker:
    """Turns a batch into the bytes its object's output gets; thread-safe."""

    def __init__(
        self,
        runtime: Runtime,
        request: CreateTransformJobRequest,
        settings: EffectiveSettings,
        processor: BatchProcessor,
        progress: JobProgress,
        stop: threading.Event,
        log: Callable[[str], None],
        isolate: bool = False,
    ) -> None:
        self._runtime = runtime
        self._input = request.transform_input
        self._output = request.transform_output
        self._timeout = float(request.model_client_config.invocations_timeout_in_seconds)
        self._max_retries = request.model_client_config.invocations_max_retries
        self._limit = settings.max_payload_in_mb * 1024 * 1024
        self._processor = processor
        self._progress = progress
        self._stop = stop
        self._log = log
        self._isolate = isolate

    def answer(self, batch: Batch, key: str) -> Answer:
        try:
            return Answer(self._answer_whole(batch))
        except (InvocationError, InputFormatError) as exc:
            if not self._isolate or isinstance(exc, RecordTooLargeError) or self._stop.is_set():
                raise
            return self._bisect(batch, key, exc)

    def _bisect(self, batch: Batch, key: str, error: BaseException) -> Answer:
        if batch.record_count <= 1:
            return Answer(b"", [_dead_letter(batch, key, error)])
        halves = split_batch(batch, self._input.split_type)
        if halves is None:
            return Answer(b"", [_dead_letter(batch, key, error)])
        self._progress.add(bisections=1)
        first, second = (self.answer(half, key) for half in halves)
        return Answer(first.body + second.body, first.dead_letters + second.dead_letters)

    def _answer_whole(self, batch: Batch) -> bytes:
        payload = self._processor.prepare(batch)
        if self._limit and len(payload) > self._limit:
            # A filtered payload can outgrow the original (quoting, number spelling).
            raise RecordTooLargeError(
                f"payload after InputFilter is {len(payload)} bytes, over MaxPayloadInMB",
                record_index=batch.first_record,
                byte_offset=batch.offset,
            )
        if not payload:  # an InputFilter left nothing to send: SageMaker never sends b""
            return b""
        response = self._invoke_with_retries(payload)
        body = self._processor.finish(batch, response.body)
        return assemble(body, self._output.assemble_with)

    def _invoke_with_retries(self, payload: bytes) -> InvocationResponse:
        request = InvocationRequest(
            payload, self._input.content_type, self._output.accept, self._timeout
        )
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._runtime.invoke(request)
            except InvocationError as exc:
                if not exc.retriable or attempt >= self._max_retries or self._stop.is_set():
                    raise
                attempt += 1
                self._progress.add(retries=1)
                self._log(f"retry {attempt} after: {exc}")
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            self._progress.record_latency(time.monotonic() - started)
            return response


def _dead_letter(batch: Batch, key: str, error: BaseException) -> DeadLetter:
    status = error.status if isinstance(error, ModelError) else None
    message = error.message if isinstance(error, ModelError) else str(error)
    return DeadLetter(key, batch.first_record, batch.offset, batch.payload, status, message)
