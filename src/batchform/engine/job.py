"""Runs a transform job: list inputs, shard them over instances, run, decide the outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from batchform import storage
from batchform.engine import joining, parts
from batchform.engine.executors import (
    ExecutorSettings,
    InstancePool,
    NoCapacity,
    PoolSpec,
    get_executor,
)
from batchform.engine.executors.resources import instance_resources
from batchform.engine.instance import ProcessorFactory, RuntimeFactory, TransformWork
from batchform.engine.invoker import BatchProcessor, PassThrough
from batchform.engine.ledger import FinishedObject, JoinedPrefix
from batchform.engine.objectrun import ObjectResult
from batchform.engine.partoutput import OnJoined
from batchform.engine.progress import JobProgress, ProgressSnapshot
from batchform.engine.remote import check_reachable, ship_model
from batchform.engine.schedule import JobEvents, Scheduler
from batchform.engine.settings import EffectiveSettings
from batchform.errors import ConfigurationError, JobStopped
from batchform.jobs.lifecycle import JobStatus
from batchform.records.dataprocessing import RecordProcessor
from batchform.spec.extensions import extensions
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject

__all__ = ["ProcessorFactory", "RuntimeFactory", "TransformJob", "TransformOutcome"]


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
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
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
    #: Split objects' parts joined by an earlier run, and where to record joins.
    joined: dict[str, JoinedPrefix] = field(default_factory=dict)
    on_joined: OnJoined | None = None
    _assembler: joining.PartAssembler | None = None

    def run(self) -> TransformOutcome:
        if self.plan is None:
            listed = self.objects if self.objects is not None else list_job_inputs(self.request)
            self.plan = parts.plan(listed, self.request)
        objects = self.plan.units if self.objects is None else self.objects
        self.progress.objects_total = len(objects)
        self.progress.bytes_total = sum(obj.size or 0 for obj in objects)
        shards = shard_by_key(objects, self.request.transform_resources.instance_count)
        output_path = self.request.transform_output.s3_output_path
        if joining.can_assemble_as_it_goes(self.plan, output_path, self.executor.name):
            hold = extensions(self.request.environment).split_hold_bytes
            assembler = joining.PartAssembler(self.plan, output_path, self.on_joined, hold)
            self._assembler = assembler.resume_from(self.joined, self.kept)
        try:
            finished = self._execute(shards)
        except (JobStopped, KeyboardInterrupt):
            self._assemble([], keep_pieces=True)
            return self._outcome(JobStatus.STOPPED, "stopped on request", [])
        except (NoCapacity, ConfigurationError) as exc:  # the instances could not run as asked
            self._assemble([], keep_pieces=True)
            return self._outcome(JobStatus.FAILED, str(exc), [])
        results = self._assemble(finished, keep_pieces=self.stop.is_set())
        if self.stop.is_set():
            return self._outcome(JobStatus.STOPPED, "stopped on request", results)
        failed = [result for result in results if not result.succeeded]
        if failed:
            return self._outcome(JobStatus.FAILED, failure_reason(failed), results)
        over_budget = budget_reason(self.request, results)
        if over_budget:
            return self._outcome(JobStatus.FAILED, over_budget, results)
        return self._outcome(JobStatus.COMPLETED, None, results)

    def _execute(self, shards: list[list[InputObject]]) -> list[ObjectResult]:
        """Start the instances (only if there is work), run the shards, close them."""
        if not any(shards):
            return []
        events = JobEvents(self.progress, self.log, self._committed, self._settled)
        pool = self._start(len(shards), events)
        try:
            work = self._work(pool, shards)
            return Scheduler(pool, work, events, self.stop).run(shards)
        finally:
            pool.close()

    def _committed(self, result: ObjectResult, checksum: int) -> None:
        """The ledger hears of a unit; a part written into its object's output is
        recorded as that output grows instead."""
        if self._assembler is not None and self._assembler.is_part(result.key):
            return
        if self.on_commit is not None:
            self.on_commit(result, checksum)

    def _assemble(self, finished: list[ObjectResult], *, keep_pieces: bool) -> list[ObjectResult]:
        """Results by object, split objects' parts replaced by their object; with
        `keep_pieces`, what unfinished objects joined so far stays for a resume."""
        assert self.plan is not None
        output_path = self.request.transform_output.s3_output_path
        if self._assembler is None:
            return parts.assemble(self.plan, finished, self.kept, output_path, self.on_commit)
        joined = self._assembler.finish(self.on_commit, keep_pieces=keep_pieces)
        singles = [r for r in finished if not self._assembler.is_part(r.key)]
        return sorted(singles + joined, key=lambda result: result.key)

    def _start(self, count: int, events: JobEvents) -> InstancePool:
        request = self.request
        resources = instance_resources(
            request.transform_resources.instance_type, request.environment
        )
        reserving = f" ({resources.describe()} each)" if self.executor.name != "local" else ""
        self.log(f"starting {count} instance(s) on the {self.executor.name} executor{reserving}")
        spec = PoolSpec(
            request.transform_job_name, count, resources, self.workspace, events, self.progress
        )
        return get_executor(self.executor).start(spec)

    def _work(self, pool: InstancePool, shards: list[list[InputObject]]) -> TransformWork:
        """What instances need; on several machines, with the model's local files."""
        model_files = None
        if pool.spans_machines:
            output = self.request.transform_output.s3_output_path
            inputs = {unit.url for shard in shards for unit in shard}
            check_reachable([*(("input", url) for url in sorted(inputs)), ("S3OutputPath", output)])
            model_files = ship_model(self.runtime_factory, pool)
        part_output = self._assembler.output_for if self._assembler is not None else None
        return TransformWork(
            self.request, self.runtime_factory, self.processor_factory, model_files, part_output
        )

    def _settled(self, settings: EffectiveSettings) -> None:
        self.settings = self.settings or settings  # the first instance's, as SageMaker logs

    def _outcome(
        self, status: JobStatus, reason: str | None, results: list[ObjectResult]
    ) -> TransformOutcome:
        return TransformOutcome(status, reason, results, self.settings, self.progress.snapshot())


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
