"""Runs a transform job: list inputs, shard them over instances, run, decide the outcome."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from batchform import storage
from batchform.engine import parts
from batchform.engine.executors import get_executor
from batchform.engine.invoker import BatchProcessor, PassThrough
from batchform.engine.ledger import FinishedObject
from batchform.engine.objectrun import ObjectResult
from batchform.engine.pipeline import InstanceJob, InstancePipeline
from batchform.engine.progress import JobProgress, ProgressSnapshot
from batchform.engine.settings import EffectiveSettings, resolve_settings
from batchform.errors import BatchformError, JobStopped
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.logs import stream_sink
from batchform.records.dataprocessing import RecordProcessor
from batchform.runtimes.base import Runtime, RuntimeContext
from batchform.spec.extensions import extensions
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject

RuntimeFactory = Callable[[RuntimeContext], Runtime]
ProcessorFactory = Callable[[CreateTransformJobRequest], BatchProcessor]


@dataclass
class TransformOutcome:
    status: JobStatus
    failure_reason: str | None
    results: list[ObjectResult]
    settings: EffectiveSettings | None
    progress: ProgressSnapshot


@dataclass
class TransformJob:
    """One run of a CreateTransformJob request with a way to start its model."""

    request: CreateTransformJobRequest
    runtime_factory: RuntimeFactory
    workspace: str
    log: Callable[[str], None] = print
    executor: str = "local"
    processor_factory: ProcessorFactory = lambda request: data_processor(request)
    progress: JobProgress = field(default_factory=JobProgress)
    stop: threading.Event = field(default_factory=threading.Event)
    settings: EffectiveSettings | None = None
    #: The objects to transform when the caller listed them (a resume skips some).
    objects: list[InputObject] | None = None
    on_commit: Callable[[ObjectResult, int], None] | None = None
    #: How objects were cut into work units, and parts finished by an earlier run.
    plan: parts.Plan | None = None
    kept: dict[str, FinishedObject] = field(default_factory=dict)

    def run(self) -> TransformOutcome:
        if self.plan is None:
            listed = self.objects if self.objects is not None else list_job_inputs(self.request)
            self.plan = parts.plan(listed, self.request)
        objects = self.plan.units if self.objects is None else self.objects
        self.progress.objects_total = len(objects)
        self.progress.bytes_total = sum(obj.size or 0 for obj in objects)
        shards = shard_by_key(objects, self.request.transform_resources.instance_count)
        tasks = [self._instance_task(index, shard) for index, shard in enumerate(shards)]
        try:
            per_instance = get_executor(self.executor).run(tasks, self.stop)
        except (JobStopped, KeyboardInterrupt):
            return self._outcome(JobStatus.STOPPED, "stopped on request", [])
        results = parts.assemble(
            self.plan,
            [r for rs in per_instance for r in rs],
            self.kept,
            self.request.transform_output.s3_output_path,
            self.on_commit,
        )
        if self.stop.is_set():
            return self._outcome(JobStatus.STOPPED, "stopped on request", results)
        failed = [result for result in results if not result.succeeded]
        if failed:
            return self._outcome(JobStatus.FAILED, failure_reason(failed), results)
        over_budget = budget_reason(self.request, results)
        if over_budget:
            return self._outcome(JobStatus.FAILED, over_budget, results)
        return self._outcome(JobStatus.COMPLETED, None, results)

    def _instance_task(
        self, index: int, objects: list[InputObject]
    ) -> Callable[[], list[ObjectResult]]:
        name = f"{self.request.transform_job_name}/instance-{index + 1}"
        job = InstanceJob(
            name,
            self.request,
            objects,
            self.progress,
            self.stop,
            self.log,
            self.processor_factory(self.request),
            isolate=extensions(self.request.environment).isolate,
            on_commit=self.on_commit,
        )
        return lambda: self._run_instance(index, job)

    def _run_instance(self, index: int, job: InstanceJob) -> list[ObjectResult]:
        if not job.objects:
            return []
        context = RuntimeContext(
            instance_name=job.name,
            workspace=os.path.join(self.workspace, f"instance-{index + 1}"),
            environment=dict(self.request.environment),
            workers=handler_workers(self.request),
            log=stream_sink(self.log, f"instance-{index + 1}"),
            count=lambda name, amount: self.progress.add(**{name: amount}),
        )
        with self._started(self.runtime_factory(context)) as runtime:
            finished = threading.Event()
            threading.Thread(
                target=_stop_on_request,
                args=(self.stop, finished, runtime),
                daemon=True,
                name=f"{job.name}-stop",
            ).start()
            try:
                settings = resolve_settings(self.request, runtime.execution_parameters())
                self.settings = self.settings or settings
                self.log(f"{job.name}: {settings.data_log_line()}")
                return InstancePipeline(job, runtime, settings).run()
            finally:
                finished.set()

    @contextmanager
    def _started(self, runtime: Runtime) -> Iterator[Runtime]:
        """Start the model; a start cut short by a stop request is a stop, not a failure."""
        try:
            runtime.start()
        except BatchformError:
            runtime.stop()
            if self.stop.is_set():
                raise JobStopped("stopped while the model was starting") from None
            raise
        try:
            yield runtime
        finally:
            runtime.stop()

    def _outcome(
        self, status: JobStatus, reason: str | None, results: list[ObjectResult]
    ) -> TransformOutcome:
        return TransformOutcome(status, reason, results, self.settings, self.progress.snapshot())


def _stop_on_request(stop: threading.Event, finished: threading.Event, runtime: Runtime) -> None:
    """A stop tears the model down at once, so requests in flight end now, not in minutes."""
    while not finished.is_set():
        if stop.wait(timeout=0.5):
            runtime.stop()
            return


def data_processor(request: CreateTransformJobRequest) -> BatchProcessor:
    """DataProcessing's filters and join, compiled once for the whole job."""
    transform_input = request.transform_input
    processor = RecordProcessor.create(
        request.data_processing,
        content_type=transform_input.content_type,
        accept=request.transform_output.accept,
        split_type=transform_input.split_type,
    )
    return processor if processor is not None else PassThrough()


def list_job_inputs(request: CreateTransformJobRequest) -> list[InputObject]:
    source = request.transform_input.data_source.s3_data_source
    return storage.list_inputs(source.s3_uri, source.s3_data_type)


def shard_by_key(objects: list[InputObject], instances: int) -> list[list[InputObject]]:
    """SageMaker's ShardedByS3Key: the i-th object (in key order) goes to instance i mod N."""
    return [objects[index::instances] for index in range(instances)]


def handler_workers(request: CreateTransformJobRequest) -> int:
    """Worker processes per instance: the cores this machine can give each instance.

    SAGEMAKER_MODEL_SERVER_WORKERS (the inference toolkit's knob) wins when set.
    """
    configured = request.environment.get("SAGEMAKER_MODEL_SERVER_WORKERS")
    if configured and configured.isdigit():
        return max(1, int(configured))
    cores = max(1, (os.cpu_count() or 1) // request.transform_resources.instance_count)
    requested = request.max_concurrent_transforms
    return min(cores, requested) if requested else cores


def budget_reason(request: CreateTransformJobRequest, results: list[ObjectResult]) -> str | None:
    """With record-level isolation, the job fails only when bad records exceed the budget."""
    budget = extensions(request.environment).budget
    bad = sum(result.bad_records for result in results)
    total = sum(result.records + result.bad_records for result in results)
    if not bad or not budget.exceeded(bad, total):
        return None
    worst = max(results, key=lambda result: result.bad_records)
    return (
        f"{bad} of {total} records failed, over the error budget of {budget.describe()} "
        f"(most in '{worst.key}': {worst.bad_records}); see _batchform/errors/ in the output"
    )


def failure_reason(failed: list[ObjectResult]) -> str:
    """Name the first failed object and why; SageMaker users look for exactly this."""
    first = failed[0]
    notes = "; ".join(getattr(first.error, "__notes__", []))
    reason = f"Failed to transform '{first.key}': {first.error}"
    if notes:
        reason += f" ({notes})"
    if len(failed) > 1:
        reason += f"; {len(failed) - 1} other object(s) failed too"
    return reason
