"""One instance's pipeline: read its objects, cut payloads, keep requests in flight, write in order.

A single producer thread reads and cuts (C-level byte operations only on the hot path);
up to MaxConcurrentTransforms threads call the runtime, which releases the GIL while
the model works in its own process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from batchform import storage
from batchform.engine.executors.base import ProgressCounter
from batchform.engine.invoker import BatchInvoker, BatchProcessor
from batchform.engine.objectrun import ObjectResult, ObjectRun
from batchform.engine.partoutput import PartOutput
from batchform.engine.settings import EffectiveSettings
from batchform.errors import (
    BatchformError,
    InputFormatError,
    InvocationError,
    JobStopped,
)
from batchform.records.batch import Batch
from batchform.records.batching import make_batcher, read_size
from batchform.runtimes.base import Runtime
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject


@dataclass
class InstanceJob:
    """Everything one instance needs to run its shard."""

    name: str
    request: CreateTransformJobRequest
    objects: list[InputObject]
    progress: ProgressCounter
    stop: threading.Event
    log: Callable[[str], None]
    processor: BatchProcessor
    isolate: bool = False
    on_commit: Callable[[ObjectResult, int], None] | None = None
    #: Where a split object's part writes, when not into a file of its own.
    part_output: Callable[[InputObject], PartOutput | None] | None = None


class InstancePipeline:
    def __init__(self, job: InstanceJob, runtime: Runtime, settings: EffectiveSettings) -> None:
        self._job = job
        self._settings = settings
        self._input = job.request.transform_input
        self._output = job.request.transform_output
        self._invoker = BatchInvoker(
            runtime,
            job.request,
            settings,
            job.processor,
            job.progress,
            job.stop,
            lambda line: job.log(f"{job.name}: {line}"),
            isolate=job.isolate,
        )
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
        part_output = self._job.part_output(obj) if self._job.part_output else None
        run = ObjectRun(
            obj, url, self._output.s3_output_path, self._release, self._job.on_commit, part_output
        )
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
            self._input.split_type,
            self._settings.batch_strategy,
            self._settings.max_payload_in_mb,
            start_offset=run.start_offset,
        )
        chunk_size = read_size(self._settings.max_payload_in_mb)
        while not run.failed:
            chunk = reader.read(chunk_size)
            if not chunk:
                batcher.done_adding()
            else:
                batcher.add(chunk)
                self._job.progress.add(bytes_read=len(chunk))
                run.result.bytes_read += len(chunk)
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
            if self._job.stop.is_set():
                raise JobStopped("stopped")
            if run.failed:
                raise _Skipped()
            answer = self._invoker.answer(batch, run.result.key)
        except _Skipped:
            run.fail(RuntimeError("skipped"), holds_slot=True)
            return
        except JobStopped as exc:
            run.fail(exc, holds_slot=True)
            return
        except (InvocationError, InputFormatError) as exc:
            if self._job.stop.is_set():
                # The model was torn down under this request to stop the job: that is
                # the stop, not a failure of the model or of the object.
                run.fail(JobStopped("stopped"), holds_slot=True)
                return
            self._job.progress.add(errors=1)
            run.fail(_with_batch(_located(exc, run.result.key), run, batch), holds_slot=True)
            return
        except Exception as exc:  # a bug of ours must not hang the window
            run.fail(exc, holds_slot=True)
            return
        bad = len(answer.dead_letters)
        self._job.progress.add(
            records=batch.record_count - bad,
            bad_records=bad,
            batches=1,
            bytes_written=answer.size,
        )
        run.deliver(sequence, answer.parts, batch.record_count, answer.dead_letters)

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
