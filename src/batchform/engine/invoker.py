"""Answering one batch: DataProcessing, the model call with SageMaker's retries, assembly.

With record-level isolation (`on_error=isolate`) a batch that still fails after its
retries is group-tested (records/isolation.py) until the failing records stand alone:
the good records are answered, each bad record becomes a dead letter, and the object
keeps going. Each round of independent tests goes to the runtime at once
(`Runtime.invoke_many`), so a handler answers it in one exchange with its worker.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from batchform.engine.executors.base import ProgressCounter
from batchform.engine.settings import EffectiveSettings
from batchform.errors import (
    InputFormatError,
    InvocationError,
    JobStopped,
    ModelError,
    RecordTooLargeError,
)
from batchform.records.assembly import assemble
from batchform.records.batch import Batch
from batchform.records.isolation import (
    BAD_RECORDS_TO_PLAN_ON,
    SearchLanes,
    group_size,
    likely_to_fail,
    piece,
    record_ends,
)
from batchform.runtimes.base import (
    InvocationRequest,
    InvocationResponse,
    Isolated,
    IsolationPlan,
    Runtime,
)
from batchform.runtimes.spool import SpooledBody
from batchform.spec.enums import AssembleWith, SplitType
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


def write_segment(file: BinaryIO, segment: Segment) -> None:
    """Append `segment` to `file`; a spooled answer in the kernel where it can."""
    if isinstance(segment, bytes):
        file.write(segment)
    else:
        segment.write_to(file)


class BadRecordRate:
    """The share of bad records seen so far, to plan the isolation of the next batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records = 0
        self._bad = 0

    def observe(self, records: int, bad: int) -> None:
        with self._lock:
            self._records += records
            self._bad += bad

    @property
    def rate(self) -> float:
        """0 until a few bad records were seen: too few to plan on."""
        with self._lock:
            return self._bad / self._records if self._bad >= BAD_RECORDS_TO_PLAN_ON else 0.0


def search_lanes(records: int, concurrency: int) -> int:
    """Searches side by side while isolating a batch's records. Each round of tests is
    one exchange with the runtime, which costs more than a call: about one group per
    search keeps rounds few (the longest search decides how many), and at least two
    per concurrent request keep every request busy while some searches end first."""
    return max(2 * concurrency, records // _RECORDS_PER_SEARCH)


_RECORDS_PER_SEARCH = 64


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
        self._concurrency = settings.max_concurrent_transforms
        self._processor = processor
        self._progress = progress
        self._stop = stop
        self._log = log
        self._isolate = isolate
        self._rate = BadRecordRate()
        # Without DataProcessing nobody here reads an answer: it can stay in its spool.
        self._spool = isinstance(processor, PassThrough)

    def answer(self, batch: Batch, key: str) -> Answer:
        splittable = batch.record_count > 1 and self._input.split_type is not SplitType.NONE
        if self._isolate and splittable and likely_to_fail(self._rate.rate, batch.record_count):
            # Bad records are common: skip the whole batch's doomed call.
            return self._isolate_records(batch, key, known_bad=False)
        try:
            answer = Answer(self._answer_whole(batch))
        except (InvocationError, InputFormatError) as exc:
            if not self._isolate or isinstance(exc, RecordTooLargeError) or self._stop.is_set():
                raise
            if not splittable:  # the call that failed was the record alone
                self._rate.observe(1, 1)
                return Answer([], [_dead_letter(batch, key, exc)])
            return self._isolate_records(batch, key, known_bad=True)
        self._rate.observe(batch.record_count, 0)
        return answer

    def _isolate_records(self, batch: Batch, key: str, *, known_bad: bool) -> Answer:
        """Group-test the batch: good records answered in order, bad ones dead-lettered."""
        size = group_size(self._rate.rate)
        found = self._isolated_by_runtime(batch, known_bad, size)
        if found is not None:
            answer = self._answer_isolated(batch, key, found)
        else:
            tester = SearchLanes(
                batch.record_count,
                known_bad=known_bad,
                group_size=size,
                lanes=search_lanes(batch.record_count, self._concurrency),
            )
            ends = record_ends(batch.payload, self._input.split_type, batch.record_count)
            answer = self._group_test(batch, key, ends, tester)
        self._rate.observe(batch.record_count, len(answer.dead_letters))
        return answer

    def _isolated_by_runtime(self, batch: Batch, known_bad: bool, size: int) -> Isolated | None:
        """The runtime's own isolation next to the model, when it has one and nothing
        here needs to see the pieces (DataProcessing filters and joins each piece)."""
        if not self._spool:
            return None
        plan = IsolationPlan(
            self._input.split_type.value,
            batch.record_count,
            known_bad,
            size,
            self._max_retries,
            self._output.assemble_with.value,
        )
        try:
            found = self._runtime.isolate(self._request(batch.payload), plan)
        except InvocationError as exc:  # timed out or died: test piece by piece instead
            self._log(f"isolating records next to the model failed ({exc}); testing pieces")
            return None
        if found is not None and found.retries:
            self._progress.add(retries=found.retries)
        return found

    def _answer_isolated(self, batch: Batch, key: str, found: Isolated) -> Answer:
        letters = [
            _dead_letter(
                Batch(
                    batch.payload[start:end], batch.first_record + index, 1, batch.offset + start
                ),
                key,
                ModelError(status, message),
            )
            for index, start, end, status, message in sorted(found.failed)
        ]
        return Answer([found.body] if found.body else [], letters)

    def _group_test(self, batch: Batch, key: str, ends: list[int], tester: SearchLanes) -> Answer:
        answered: list[tuple[int, list[Segment]]] = []
        alone: list[tuple[Batch, BaseException]] = []  # records that failed on their own
        cut = self._filtered_once(batch)
        while not tester.done:
            if self._stop.is_set():
                raise JobStopped("stopped while isolating failed records")
            tests = tester.next_round()
            pieces = [piece(batch, ends, test.first, test.end) for test in tests]
            prepared = [cut(test.first, test.end) for test in tests] if cut else None
            outcomes = self._round(pieces, 0, prepared)
            for test, part, outcome in zip(tests, pieces, outcomes, strict=True):
                tester.report(test, not isinstance(outcome, BaseException))
                if not isinstance(outcome, BaseException):
                    answered.append((part.first_record, outcome))
                elif test.count == 1:
                    alone.append((part, outcome))
        letters = self._retry_alone(alone, answered, key)
        answered.sort(key=lambda entry: entry[0])
        return Answer([segment for _, parts in answered for segment in parts], letters)

    def _retry_alone(
        self,
        alone: list[tuple[Batch, BaseException]],
        answered: list[tuple[int, list[Segment]]],
        key: str,
    ) -> list[DeadLetter]:
        """Try the records that failed alone again, as SageMaker retries a call, so a
        passing failure does not dead-letter a good record: together, one round per
        attempt, so the batch waits out each back-off once rather than once per record.
        What passes joins `answered`; the dead letters of the rest are returned."""
        again = [(part, error) for part, error in alone if _retriable(error)]
        letters = [_dead_letter(part, key, error) for part, error in alone if not _retriable(error)]
        if again and self._max_retries and not self._stop.is_set():
            self._wait_to_retry(1, len(again), f" of {len(again)} record(s)", again[0][1])
            parts = [part for part, _ in again]
            outcomes = self._round(parts, self._max_retries - 1)
            again = []
            for part, outcome in zip(parts, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    again.append((part, outcome))
                else:
                    answered.append((part.first_record, outcome))
        letters += [_dead_letter(part, key, error) for part, error in again]
        return sorted(letters, key=lambda letter: letter.record_index)

    def _filtered_once(self, batch: Batch) -> Callable[[int, int], bytes] | None:
        """The InputFilter applied to the whole batch once, and records [first, end) of
        the result: a filter keeps one line per record, and each record is in about six
        of the pieces a search tries. None when there is no filter, or the batch cannot
        be filtered whole (a malformed record is then filtered, and failed, alone)."""
        if isinstance(self._processor, PassThrough):
            return None
        try:
            filtered = self._prepared(batch)
        except (InputFormatError, RecordTooLargeError):
            return None
        ends = record_ends(filtered, SplitType.LINE, batch.record_count)
        if len(ends) != batch.record_count:
            return None
        starts = [0, *ends]
        return lambda first, end: filtered[starts[first] : ends[end - 1]]

    def _round(
        self, pieces: list[Batch], retries: int, prepared: list[bytes] | None = None
    ) -> list[list[Segment] | BaseException]:
        """Answer independent pieces together, each retried up to `retries` times;
        `prepared`: their payloads, already filtered."""
        outcomes: list[list[Segment] | BaseException] = [[] for _ in pieces]
        payloads: dict[int, bytes] = {}
        for index, part in enumerate(pieces):
            try:
                payloads[index] = prepared[index] if prepared else self._prepared(part)
            except RecordTooLargeError:
                raise
            except InputFormatError as exc:
                outcomes[index] = exc
        payloads = {index: payload for index, payload in payloads.items() if payload}
        attempt = 0
        while payloads:
            retry = self._call_round(pieces, payloads, outcomes, attempt < retries)
            if retry:
                attempt += 1
                what = f" of {len(retry)} piece(s)"
                self._wait_to_retry(attempt, len(retry), what, outcomes[retry[0]])
            payloads = {index: payloads[index] for index in retry}
        return outcomes

    def _call_round(
        self,
        pieces: list[Batch],
        payloads: dict[int, bytes],
        outcomes: list[list[Segment] | BaseException],
        may_retry: bool,
    ) -> list[int]:
        """One exchange for the round; the outcomes filled in, the pieces to retry returned."""
        indexes = list(payloads)
        started = time.monotonic()
        responses = self._runtime.invoke_many([self._request(payloads[i]) for i in indexes])
        each = (time.monotonic() - started) / len(indexes)
        retry: list[int] = []
        for index, response in zip(indexes, responses, strict=True):
            if isinstance(response, InvocationResponse):
                self._progress.record_latency(each)
                outcomes[index] = self._finished(pieces[index], response)
                continue
            outcomes[index] = response
            if may_retry and response.retriable and not self._stop.is_set():
                retry.append(index)
        return retry

    def _answer_whole(self, batch: Batch) -> list[Segment]:
        payload = self._prepared(batch)
        if not payload:  # an InputFilter left nothing to send: SageMaker never sends b""
            return []
        return self._finished(batch, self._invoke_with_retries(payload))

    def _prepared(self, batch: Batch) -> bytes:
        payload = self._processor.prepare(batch)
        if self._limit and len(payload) > self._limit:
            # A filtered payload can outgrow the original (quoting, number spelling).
            raise RecordTooLargeError(
                f"payload after InputFilter is {len(payload)} bytes, over MaxPayloadInMB",
                record_index=batch.first_record,
                byte_offset=batch.offset,
            )
        return payload

    def _finished(self, batch: Batch, response: InvocationResponse) -> list[Segment]:
        if response.spooled is not None:
            return assemble_spooled(response.spooled, self._output.assemble_with)
        body = self._processor.finish(batch, response.body)
        return [assemble(body, self._output.assemble_with)]

    def _request(self, payload: bytes) -> InvocationRequest:
        return InvocationRequest(
            payload, self._input.content_type, self._output.accept, self._timeout, self._spool
        )

    def _wait_to_retry(self, attempt: int, count: int, what: str, error: object) -> None:
        """Count `count` retries, say why in the log, and back off before `attempt`."""
        self._progress.add(retries=count)
        self._log(f"retry {attempt}{what} after: {error}")
        _back_off(attempt)

    def _invoke_with_retries(self, payload: bytes) -> InvocationResponse:
        request = self._request(payload)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._runtime.invoke(request)
            except InvocationError as exc:
                if not exc.retriable or attempt >= self._max_retries or self._stop.is_set():
                    raise
                attempt += 1
                self._wait_to_retry(attempt, 1, "", exc)
                continue
            self._progress.record_latency(time.monotonic() - started)
            return response


def _back_off(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))


def _retriable(error: BaseException) -> bool:
    """A model's failure SageMaker would call again for (5xx, timeouts, lost connections)."""
    return isinstance(error, InvocationError) and error.retriable


def _dead_letter(batch: Batch, key: str, error: BaseException) -> DeadLetter:
    status = error.status if isinstance(error, ModelError) else None
    message = error.message if isinstance(error, ModelError) else str(error)
    return DeadLetter(key, batch.first_record, batch.offset, batch.payload, status, message)
