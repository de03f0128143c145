"""One instance's pipeline: read its objects, cut payloads, keep requests in flight, write in order.

A single producer thread reads and cuts (C-level byte operations only on the hot path);
up to MaxConcurrentTransforms threads call the runtime, which releases the GIL while
the model works in its own process.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from batchform import storage
from batchform.engine.objectrun import ObjectResult, ObjectRun
from batchform.engine.progress import JobProgress
from batchform.engine.settings import EffectiveSettings
from batchform.errors import (
    BatchformError,
    InputFormatError,
    InvocationError,
    JobStopped,
    RecordTooLargeError,
)
from batchform.records.batch import Batch
from batchform.records.batching import make_batcher, read_size
from batchform.runtimes.base import InvocationRequest, InvocationResponse, Runtime
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject


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


@dataclass
class InstanceJob:
    """Everything one instance needs to run its shard."""

    name: str
    request: CreateTransformJobRequest
    objects: list[InputObject]
    progress: JobProgress
    stop: threading.Event
    log: Callable[[str], None]
    processor: BatchProcessor


class InstancePipeline:
    def __init__(self, job: InstanceJob, runtime: Runtime, settings: EffectiveSettings) -> None:
        self._job = job
        self._runtime = runtime
        self._settings = settings
        request = job.request
        self._input = request.transform_input
        self._output = request.transform_output
        self._timeout = float(request.model_client_config.invocations_timeout_in_seconds)
        self._max_retries = request.model_client_config.invocations_max_retries
        self._window = threading.Semaphore(settings.max_concurrent_transforms + 1)

    def run(self) -> list[ObjectResult]:
        results: list[ObjectResult] = []
        workers = self._settings.max_concurrent_transforms
        with ThreadPoolExecutor(workers, thread_name_prefix=f"{self._job.name}-invoke") as pool:
            runs = [
                self._read_object(obj, pool)
                for obj in self._job.objects
                if not self._job.stop.is_set()
            ]
        for run in runs:
            results.append(self._finalise(run))
        if self._job.stop.is_set():
            raise JobStopped(f"{self._job.name} stopped")
        return results

    def _read_object(self, obj: InputObject, pool: ThreadPoolExecutor) -> ObjectRun:
        url = storage.output_url(self._output.s3_output_path, obj.key)
        run = ObjectRun(obj, url, self._output.assemble_with, self._release)
        try:
            with storage.open_input(obj, self._input.compression_type) as reader:
                self._cut_and_send(reader, run, pool)
        except (InputFormatError, BatchformError, OSError) as exc:
            run.fail(_located(exc, obj.key))
        run.reading_done()
        return run

    def _release(self, slots: int) -> None:
        if slots:
            self._window.release(slots)

    def _cut_and_send(self, reader: BinaryIO, run: ObjectRun, pool: ThreadPoolExecutor) -> None:
        batcher = make_batcher(
            self._input.split_type, self._settings.batch_strategy, self._settings.max_payload_in_mb
        )
        chunk_size = read_size(self._settings.max_payload_in_mb)
        while not run.failed:
            chunk = reader.read(chunk_size)
            if not chunk:
                batcher.done_adding()
            else:
                batcher.add(chunk)
                self._job.progress.add(bytes_read=len(chunk))
            while not run.failed and batcher.has_batch():
                self._send(run, batcher.next_batch(), pool)
            if not chunk:
                return

    def _send(self, run: ObjectRun, batch: Batch, pool: ThreadPoolExecutor) -> None:
        while not self._window.acquire(timeout=0.2):
            if self._job.stop.is_set():
                raise JobStopped("stopped")
        if self._job.stop.is_set():
            self._window.release()
            raise JobStopped("stopped")
        sequence = run.next_sequence()
        pool.submit(self._transform, run, sequence, batch)

    def _transform(self, run: ObjectRun, sequence: int, batch: Batch) -> None:
        try:
            if run.failed or self._job.stop.is_set():
                raise JobStopped("stopped") if self._job.stop.is_set() else _Skipped()
            payload = self._job.processor.prepare(batch)
            self._check_payload_size(payload, batch)
            if not payload:  # an InputFilter left nothing to send: SageMaker never sends b""
                run.deliver(sequence, b"", batch.record_count, assembled=True)
                return
            response = self._invoke_with_retries(payload)
            body = self._job.processor.finish(batch, response.body)
        except _Skipped:
            run.fail(RuntimeError("skipped"), holds_slot=True)
            return
        except JobStopped as exc:
            run.fail(exc, holds_slot=True)
            return
        except (InvocationError, InputFormatError) as exc:
            self._job.progress.add(errors=1)
            run.fail(_with_batch(_located(exc, run.result.key), run, batch), holds_slot=True)
            return
        except Exception as exc:  # a bug of ours must not hang the window
            run.fail(exc, holds_slot=True)
            return
        self._job.progress.add(records=batch.record_count, batches=1, bytes_written=len(body))
        run.deliver(sequence, body, batch.record_count)

    def _check_payload_size(self, payload: bytes, batch: Batch) -> None:
        """A filtered payload can outgrow the original (quoting, number spelling)."""
        limit = self._settings.max_payload_in_mb * 1024 * 1024
        if limit and len(payload) > limit:
            raise RecordTooLargeError(
                f"payload after InputFilter is {len(payload)} bytes, over MaxPayloadInMB",
                record_index=batch.first_record,
                byte_offset=batch.offset,
            )

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
                if not exc.retriable or attempt >= self._max_retries or self._job.stop.is_set():
                    raise
                attempt += 1
                self._job.progress.add(retries=1)
                self._job.log(f"{self._job.name}: retry {attempt} after: {exc}")
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            self._job.progress.record_latency(time.monotonic() - started)
            return response

    def _finalise(self, run: ObjectRun) -> ObjectResult:
        if not run.finished and not run.failed:
            run.fail(JobStopped("stopped"))
        result = run.result
        if result.error is None:
            self._job.progress.add(objects_done=1)
        elif not isinstance(result.error, JobStopped):
            self._job.progress.add(objects_failed=1)
            self._job.log(f"{self._job.name}: failed to transform '{result.key}': {result.error}")
        return result


class _Skipped(Exception):
    """A batch of an object that already failed: dropped without calling the model."""


def _located(error: BaseException, key: str) -> BaseException:
    if isinstance(error, InputFormatError):
        return error.located(key)
    return error


def _with_batch(error: BaseException, run: ObjectRun, batch: Batch) -> BaseException:
    """Say which records were in the failed request."""
    if isinstance(error, InvocationError):
        error.add_note(
            f"records {batch.first_record}..{batch.first_record + batch.record_count - 1} "
            f"at byte offset {batch.offset} of '{run.result.key}'"
        )
    return error
