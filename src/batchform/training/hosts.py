"""A training job's hosts on an executor: one instance per host, algo-1 … algo-N.

Each instance first says where it is (its address), the first also finds a free port
for the hosts to meet at; then every instance runs its HostRun with the job's full host
list, so distributed training code finds its peers. Their news comes home as events:
the first host's secondary statuses become the job's, every host's output lands in its
own `algo-N` log stream. A host that fails (or is lost) stops the others and fails the
job; there is no rescheduling, as a distributed job cannot go on without a peer.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchform.engine.executors import ExecutorSettings, InstancePool, PoolSpec, get_executor
from batchform.engine.executors.base import InstanceContext, InstanceLost, NoProgress, Shared
from batchform.engine.executors.resources import instance_resources
from batchform.engine.remote import check_reachable, machine_local, pack_folder, unpack
from batchform.errors import BatchformError
from batchform.spec.training import CreateTrainingJobRequest
from batchform.training.channels import channel_specs
from batchform.training.host import HostOutcome, HostRun, Limits
from batchform.training.images import TrainingCommand, resolve_training_image, training_command
from batchform.training.layout import HostIdentity, host_names
from batchform.training.status import SecondaryStatus

_WAIT_SECONDS = 0.25


@dataclass(frozen=True)
class Phase:
    """A host entered a secondary status."""

    status: SecondaryStatus
    message: str | None = None


@dataclass(frozen=True)
class Process:
    """A host's `train` started (its pid) or ended (None)."""

    pid: int | None


def host_count(request: CreateTrainingJobRequest) -> int:
    resources = request.resource_config
    if resources.instance_count:
        return resources.instance_count
    groups = resources.instance_groups or []
    return max(1, sum(group.instance_count for group in groups))


def node_address(context: InstanceContext) -> str:
    return context.node


def free_port(context: InstanceContext) -> int:
    """A port free on the instance's machine, for the first host's training code."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class HostTask:
    """Run one host's part where the instance lives."""

    request: CreateTrainingJobRequest
    host: HostIdentity
    remaining_seconds: float
    stop_grace: float
    #: The host's /opt/ml; None: a folder in the instance's own workspace.
    workspace: str | None = None
    #: The TrainingImage folder, packed, when the instance runs on another machine.
    image: Shared | None = None

    def __call__(self, context: InstanceContext) -> HostOutcome:
        with context.lock:
            try:
                return self._run(context)
            except BatchformError:
                raise
            except Exception:  # our bug: its traceback belongs in the job's log
                context.log(traceback.format_exc())
                raise

    def _run(self, context: InstanceContext) -> HostOutcome:
        own = Path(context.workspace)
        run = HostRun(
            request=self.request,
            host=self.host,
            root=Path(self.workspace) if self.workspace else own / "opt_ml",
            command=self._command(own),
            channels=channel_specs(self.request),
            log=context.log,
            output=lambda line: context.log(line, self.host.name),
            phase=lambda status, message: context.emit(Phase(status, message)),
            limits=Limits(context.stop, self.remaining_seconds),
            stop_grace=self.stop_grace,
            on_process=lambda pid: context.emit(Process(pid)),
        )
        return run.run()

    def _command(self, own: Path) -> TrainingCommand:
        """The command, resolved on this machine (its interpreter, its copy of the image)."""
        if self.image is None:
            return training_command(self.request.algorithm_specification)
        unpack(self.image.get(), own / "image")
        return resolve_training_image(str(own / "image"))


@dataclass
class HostGroup:
    """Runs a job's hosts on an executor and gathers how each ended."""

    request: CreateTrainingJobRequest
    executor: ExecutorSettings
    root: Path
    stop: threading.Event
    stop_grace: float
    on_event: Callable[[int, object], None]

    def run(self, remaining_seconds: float) -> list[HostOutcome]:
        count = host_count(self.request)
        resources = instance_resources(_instance_type(self.request), self.request.environment)
        spec = PoolSpec(
            self.request.training_job_name,
            count,
            resources,
            str(self.root),
            self.on_event,
            NoProgress(),
        )
        pool = get_executor(self.executor).start(spec)
        try:
            return self._run_on(pool, count, remaining_seconds)
        finally:
            pool.close()

    def _run_on(self, pool: InstancePool, count: int, remaining: float) -> list[HostOutcome]:
        names = host_names(count)
        addresses = [pool.submit(index, node_address) for index in range(count)]
        port = pool.submit(0, free_port).result()
        where = dict(zip(names, (future.result() for future in addresses), strict=True))
        image = self._shipped(pool)
        tasks = [
            HostTask(
                self.request,
                HostIdentity(index, names, where, port),
                remaining,
                self.stop_grace,
                workspace=None if pool.spans_machines else str(self._workspace(index, count)),
                image=image,
            )
            for index in range(count)
        ]
        if self.stop.is_set():
            pool.stop()  # a stop asked before the hosts began: they end at their first check
        return _gather(pool, tasks, self.stop)

    def _workspace(self, index: int, count: int) -> Path:
        return self.root if count == 1 else self.root / f"algo-{index + 1}"

    def _shipped(self, pool: InstancePool) -> Shared | None:
        """On several machines: check the storage they share, send a local image folder."""
        if not pool.spans_machines:
            return None
        output = self.request.output_data_config.s3_output_path
        channels = [(f"channel {c.name}", c.uri) for c in channel_specs(self.request)]
        check_reachable([("S3OutputPath", output), *channels])
        image = self.request.algorithm_specification.training_image or ""
        folder = image.removeprefix("file://")
        if not machine_local(image) or not os.path.isdir(folder):
            return None  # a built-in algorithm (by name or registry URI), or shared
        return pool.share(pack_folder(folder))


def _gather(pool: InstancePool, tasks: list[HostTask], stop: threading.Event) -> list[HostOutcome]:
    running: dict[Future[Any], int] = {pool.submit(i, task): i for i, task in enumerate(tasks)}
    outcomes: list[HostOutcome | None] = [None] * len(tasks)
    error: BaseException | None = None
    stopping = False
    while running:
        done, _ = wait(list(running), _WAIT_SECONDS, FIRST_COMPLETED)
        if stop.is_set() and not stopping:
            stopping = True
            pool.stop()
        for future in done:
            index = running.pop(future)
            try:
                outcomes[index] = future.result()
            except BaseException as exc:  # the first failure is the job's; others stop
                error = error or _host_error(tasks[index].host, exc)
                if not stopping:
                    stopping = True
                    pool.stop()
    if error is not None:
        raise error
    return [outcome or HostOutcome() for outcome in outcomes]


def _host_error(host: HostIdentity, error: BaseException) -> BaseException:
    if isinstance(error, InstanceLost):
        return InstanceLost(f"host {host.name}: {error}")
    return error


def _instance_type(request: CreateTrainingJobRequest) -> str | None:
    """The InstanceType every host reserves (the first group's, with InstanceGroups)."""
    resources = request.resource_config
    groups = resources.instance_groups or []
    return resources.instance_type or (groups[0].instance_type if groups else None)
