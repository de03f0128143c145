"""Answering one batch: DataProcessing, the model call with SageMaker's retries, assembly.

With record-level isolation (`on_error=isolate`) a batch that still fails after its
retries is halved until the failing records stand alone: the good records are answered,
each bad record becomes a dead letter, and the object keeps going.
"""

from __future__ import annotations

import base64
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchform.engine.executors.base import ProgressCounter
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
from batchform.runtimes.spool import SpooledBody
from batchform.spec.enums import AssembleWith
from batchform.spec.transform import CreateTransformJobRequest

#: How much of a bad record a dead letter keeps.
DEAD_LETTER_RECORD_CAP = 64 * 1024

#: A piece of an object's output: bytes, or an answer still in its spool file.
Segment = bytes | SpooledBody


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
    """A batch's output, in order, as segments; and the records that failed alone."""

    parts: list[Segment] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(segment_size(part) for part in self.parts)


def segment_size(segment: Segment) -> int:
    return len(segment) if isinstance(segment, bytes) else segment.size


class BadRecordRate:
    """The share of bad records seen so far, to cut failing batches where it pays.

    Pieces are sized so that about half hold no bad record: a piece without one is
    answered in one call, a piece with one is cut again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records = 0
        self._bad = 0

    def observe(self, records: int, bad: int) -> None:
        with self._lock:
            self._records += records
            self._bad += bad

    def pieces(self, batch: Batch) -> int:
        with self._lock:
            rate = self._bad / self._records if self._records else 0.0
        if rate <= 0:
            return 2  # nothing known yet: halve
        return max(2, min(batch.record_count, math.ceil(batch.record_count * rate / 0.7)))

    def likely_to_fail(self, batch: Batch) -> bool:
        with self._lock:
            if self._bad < 3:  # too few to trust
                return False
            rate = self._bad / self._records
        return math.exp(-rate * batch.record_count) < 0.5


def assemble(body: bytes, assemble_with: AssembleWith) -> bytes:
    """AssembleWith=Line: exactly one newline after each response, never a blank line."""
    if assemble_with is AssembleWith.LINE and not body.endswith(b"\n"):
        return body + b"\n"
    return body


def assemble_spooled(body: SpooledBody, assemble_with: AssembleWith) -> list[Segment]:
    """`assemble` for an answer left in its spool file: the newline goes after it."""
    if assemble_with is AssembleWith.LINE and not body.ends_with_newline:
        return [body, b"\n"]
    return [body]


class BatchInvoker:
    """Turns a batch into the bytes its object's output gets; thread-safe."""

    def __init__(
        self,
        runtime: Runtime,
        request: CreateTransformJobRequest,
        settings: EffectiveSettings,
        processor: BatchProcessor,
        progress: ProgressCounter,
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
        self._rate = BadRecordRate()
        # Without DataProcessing nobody here reads an answer: it can stay in its spool.
        self._spool = isinstance(processor, PassThrough)

    def answer(self, batch: Batch, key: str) -> Answer:
        pieces = self._presplit(batch)
        if pieces is not None:
            return self._combine([self._attempt(piece, key) for piece in pieces])
        return self._attempt(batch, key)

    def _attempt(self, batch: Batch, key: str) -> Answer:
        try:
            answer = Answer(self._answer_whole(batch))
        except (InvocationError, InputFormatError) as exc:
            if not self._isolate or isinstance(exc, RecordTooLargeError) or self._stop.is_set():
                raise
            return self._isolate_failures(batch, key, exc)
        self._rate.observe(batch.record_count, 0)
        return answer

    def _isolate_failures(self, batch: Batch, key: str, error: BaseException) -> Answer:
        pieces = split_batch(batch, self._input.split_type, self._rate.pieces(batch))
        if pieces is None:
            self._rate.observe(1, 1)
            return Answer([], [_dead_letter(batch, key, error)])
        self._progress.add(bisections=1)
        return self._combine([self._attempt(piece, key) for piece in pieces])

    def _presplit(self, batch: Batch) -> list[Batch] | None:
        """Once bad records are known to be common, skip the whole batch's doomed attempt."""
        if not self._isolate or not self._rate.likely_to_fail(batch):
            return None
        return split_batch(batch, self._input.split_type, self._rate.pieces(batch))

    @staticmethod
    def _combine(answers: list[Answer]) -> Answer:
        return Answer(
            [part for a in answers for part in a.parts],
            [letter for a in answers for letter in a.dead_letters],
        )

    def _answer_whole(self, batch: Batch) -> list[Segment]:
        payload = self._processor.prepare(batch)
        if self._limit and len(payload) > self._limit:
            # A filtered payload can outgrow the original (quoting, number spelling).
            raise RecordTooLargeError(
                f"payload after InputFilter is {len(payload)} bytes, over MaxPayloadInMB",
                record_index=batch.first_record,
                byte_offset=batch.offset,
            )
        if not payload:  # an InputFilter left nothing to send: SageMaker never sends b""
            return []
        response = self._invoke_with_retries(payload)
        if response.spooled is not None:
            return assemble_spooled(response.spooled, self._output.assemble_with)
        body = self._processor.finish(batch, response.body)
        return [assemble(body, self._output.assemble_with)]

    def _invoke_with_retries(self, payload: bytes) -> InvocationResponse:
        request = InvocationRequest(
            payload, self._input.content_type, self._output.accept, self._timeout, self._spool
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
