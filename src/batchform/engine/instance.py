"""A transform instance's task: start its model once, then run the work units it is handed.

The same code runs in a thread of the job's process (local executor) or in a Ray actor
on another node. Everything it reports goes through its InstanceContext as events
(committed objects for the ledger, effective settings, log lines) and progress counts;
results and errors are made fit to travel before they are returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from batchform.engine.executors.base import InstanceContext, portable
from batchform.engine.invoker import BatchProcessor
from batchform.engine.objectrun import ObjectResult
from batchform.engine.partoutput import PartOutput
from batchform.engine.pipeline import InstanceJob, InstancePipeline
from batchform.engine.settings import EffectiveSettings, resolve_settings
from batchform.errors import BatchformError, JobStopped
from batchform.runtimes.base import Runtime, RuntimeContext
from batchform.spec.extensions import extensions
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject

RuntimeFactory = Callable[[RuntimeContext], Runtime]
ProcessorFactory = Callable[[CreateTransformJobRequest], BatchProcessor]
# Where an instance keeps its started model between the tasks it runs.
_MODEL = "transform-model"


@dataclass(frozen=True)
class Committed:
    """An object's (or part's) output was committed: the ledger records it."""

    result: ObjectResult
    checksum: int


@dataclass(frozen=True)
class Settled:
    """The effective settings, once an instance's model said what it wants."""

    settings: EffectiveSettings


class ModelFiles(Protocol):
    """Makes runtimes on an instance whose machine may not have the model's files."""

    def factory(self, context: InstanceContext) -> RuntimeFactory: ...


@dataclass(frozen=True)
class TransformWork:
    """What every instance of a job needs; picklable, so it can travel to a Ray actor."""

    request: CreateTransformJobRequest
    runtime_factory: RuntimeFactory
    processor_factory: ProcessorFactory
    #: Set when instances run elsewhere and the model's files must travel with the job.
    model_files: ModelFiles | None = None
    #: Set when instances run in this process: where split objects' parts write.
    part_output: Callable[[InputObject], PartOutput | None] | None = None


@dataclass(frozen=True)
class RunUnits:
    """Transform `units` on the instance, with its model (started by the first such task)."""

    work: TransformWork
    units: list[InputObject]

    def __call__(self, context: InstanceContext) -> list[ObjectResult]:
        with context.lock:
            if context.stop.is_set():
                raise JobStopped(f"{context.name} stopped")
            runtime, settings = started_model(self.work, context)
            results = InstancePipeline(self._job(context), runtime, settings).run()
        return [_travelling(result) for result in results]

    def _job(self, context: InstanceContext) -> InstanceJob:
        request = self.work.request
        return InstanceJob(
            f"{request.transform_job_name}/{context.name}",
            request,
            self.units,
            context.progress,
            context.stop,
            context.log,
            self.work.processor_factory(request),
            isolate=extensions(request.environment).isolate,
            part_output=self.work.part_output,
            on_commit=lambda result, checksum: context.emit(
                Committed(_travelling(result), checksum)
            ),
        )


def started_model(
    work: TransformWork, context: InstanceContext
) -> tuple[Runtime, EffectiveSettings]:
    """The instance's model, started on first use and stopped when the pool closes."""
    if _MODEL in context.state:
        started: tuple[Runtime, EffectiveSettings] = context.state[_MODEL]
        return started
    factory = work.model_files.factory(context) if work.model_files else work.runtime_factory
    runtime = factory(_runtime_context(work.request, context))
    _start(runtime, context)
    finished = threading.Event()
    context.cleanup.callback(runtime.stop)
    context.cleanup.callback(finished.set)
    threading.Thread(
        target=_stop_on_request,
        args=(context.stop, finished, runtime),
        daemon=True,
        name=f"{context.name}-stop",
    ).start()
    settings = resolve_settings(work.request, runtime.execution_parameters())
    context.emit(Settled(settings))
    context.log(f"{work.request.transform_job_name}/{context.name}: {settings.data_log_line()}")
    context.state[_MODEL] = (runtime, settings)
    return runtime, settings


def _runtime_context(
    request: CreateTransformJobRequest, context: InstanceContext
) -> RuntimeContext:
    return RuntimeContext(
        instance_name=f"{request.transform_job_name}/{context.name}",
        workspace=context.workspace,
        environment=dict(request.environment),
        workers=handler_workers(request, context.cpus),
        log=lambda line: context.log(line, context.name),
        count=lambda name, amount: context.progress.add(**{name: amount}),
        cpus=context.cpus,
    )


def _start(runtime: Runtime, context: InstanceContext) -> None:
    """Start the model; a start cut short by a stop request is a stop, not a failure."""
    try:
        runtime.start()
    except BatchformError:
        runtime.stop()
        if context.stop.is_set():
            raise JobStopped("stopped while the model was starting") from None
        raise


def _stop_on_request(stop: threading.Event, finished: threading.Event, runtime: Runtime) -> None:
    """A stop tears the model down at once, so requests in flight end now, not in minutes."""
    while not finished.is_set():
        if stop.wait(timeout=0.5):
            runtime.stop()
            return


def handler_workers(request: CreateTransformJobRequest, cpus: int) -> int:
    """Worker processes per instance: the cores the instance has (its share of this
    machine, or its InstanceType's on a cluster), capped by MaxConcurrentTransforms.

    SAGEMAKER_MODEL_SERVER_WORKERS (the inference toolkit's knob) wins when set.
    """
    configured = request.environment.get("SAGEMAKER_MODEL_SERVER_WORKERS")
    if configured and configured.isdigit():
        return max(1, int(configured))
    requested = request.max_concurrent_transforms
    cores = max(1, cpus)
    return min(cores, requested) if requested else cores


def _travelling(result: ObjectResult) -> ObjectResult:
    """The result with an error every process can unpickle (see executors.base.portable)."""
    if result.error is None:
        return result
    return replace(result, error=portable(result.error))
