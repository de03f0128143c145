"""A training job run from this process: its hosts, statuses, outcome and clean-up.

The stages are SageMaker's secondary statuses: Starting (resolve the image, check the
channels), Downloading (each host copies its File channels in; for a Pipe channel only
lists its objects and creates its first FIFO, so this stage is brief), Training (`train`
runs on every host in its own process group, its output in the job log's `algo-N`
stream, Pipe channels fed as it reads them), Uploading (the first host's model.tar.gz and
output.tar.gz), then Completed, Failed, Stopped or MaxRuntimeExceeded. With
InstanceCount > 1, each host is an instance of the executor (a thread group here, a Ray
actor on a cluster) and its resourceconfig.json lists every host (training/hosts.py).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchform import config
from batchform.engine.executors import ExecutorSettings, InstanceLost
from batchform.engine.executors.base import LogLine
from batchform.errors import BatchformError, RuntimeStartError
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.logs import DATA_LOG, JobLog
from batchform.spec.common import parse_request
from batchform.spec.training import CreateTrainingJobRequest
from batchform.training.channels import channel_specs, check_input_modes
from batchform.training.host import (
    FAILURE_REASON_CHARS,
    AlgorithmFailed,
    HostOutcome,
    Limits,
    TrainingInterrupted,
    algorithm_failure,
)
from batchform.training.hosts import HostGroup, Phase, Process, host_count
from batchform.training.images import training_command
from batchform.training.layout import HOST
from batchform.training.metrics import MetricScanner, metric_scanner
from batchform.training.status import (
    SecondaryStatus,
    SecondaryStatusTransition,
    StatusHistory,
    StatusListener,
)

__all__ = ["AlgorithmFailed", "TrainingInterrupted", "algorithm_failure"]

#: Set to keep a failed job's workspace (config, data, model/) for a look inside.
KEEP_WORKSPACE_ENV = "BATCHFORM_KEEP_FAILED_WORKSPACE"
#: Between SIGTERM and SIGKILL, as SageMaker allows an algorithm to save its model.
DEFAULT_STOP_GRACE = 120.0


def parse_training_request(body: dict[str, Any]) -> CreateTrainingJobRequest:
    """Validate a CreateTrainingJob body; SpecValidationError names every bad field."""
    return parse_request(CreateTrainingJobRequest, body)


def training_dir(job_name: str) -> Path:
    return config.home() / "training" / job_name


@dataclass(frozen=True)
class TrainingOutcome:
    status: JobStatus
    failure_reason: str | None
    model_artifacts_url: str | None
    secondary_status_transitions: list[SecondaryStatusTransition]
    final_metrics: list[dict[str, Any]] | None = None

    @property
    def secondary_status(self) -> SecondaryStatus:
        return self.secondary_status_transitions[-1].status


@dataclass
class TrainingRun:
    """A training job being run in this process, observable while it runs.

    `secondary_status_transitions` may be read from any thread, and `on_status` is
    called (from the running thread) with each new transition as it happens.
    """

    request: CreateTrainingJobRequest
    echo: Callable[[str], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    on_status: StatusListener | None = None
    stop_grace: float = DEFAULT_STOP_GRACE
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    _history: StatusHistory = field(init=False, repr=False)
    _pid: int | None = field(default=None, init=False, repr=False)
    _scanner: MetricScanner | None = field(default=None, init=False, repr=False)
    _log: JobLog | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._history = StatusHistory(self.on_status)

    @property
    def job_name(self) -> str:
        return self.request.training_job_name

    @property
    def job_dir(self) -> Path:
        return training_dir(self.job_name)

    @property
    def log_path(self) -> Path:
        return self.job_dir / "log"

    @property
    def secondary_status_transitions(self) -> list[SecondaryStatusTransition]:
        return self._history.transitions()

    @property
    def secondary_status(self) -> SecondaryStatus | None:
        return self._history.current

    @property
    def pid(self) -> int | None:
        """The first host's algorithm process (and process group) id while it runs."""
        return self._pid

    def run(self) -> TrainingOutcome:
        log = self._log = JobLog(self.log_path, self.echo)
        root = self.job_dir / f"workspace-{int(time.time() * 1000)}"
        outcome: TrainingOutcome | None = None
        try:
            self._history.enter(SecondaryStatus.STARTING)
            outcome = self._run(root, log, self._limits())
            reason = f": {outcome.failure_reason}" if outcome.failure_reason else ""
            status, secondary = outcome.status.value, outcome.secondary_status.value
            shown = status if secondary == status else f"{status} ({secondary})"
            log(f"job {self.job_name} {shown}{reason}")
            return outcome
        finally:
            self._clean_up(root, outcome, log)
            log.close()

    def _limits(self) -> Limits:
        return Limits(self.stop, float(self.request.stopping_condition.max_runtime_in_seconds))

    def _run(self, root: Path, log: JobLog, limits: Limits) -> TrainingOutcome:
        try:
            self._starting(log)
            remaining = limits.max_runtime - (time.monotonic() - limits.started)
            group = HostGroup(
                self.request, self.executor, root, self.stop, self.stop_grace, self._on_event
            )
            outcomes = group.run(remaining)
            return self._ended(outcomes)
        except TrainingInterrupted as interrupted:
            return self._finish(JobStatus.STOPPED, interrupted.status, None)
        except BatchformError as exc:
            return self._finish(JobStatus.FAILED, SecondaryStatus.FAILED, _failure_reason(exc))
        except Exception as exc:  # a bug of ours must still end the job, and say why
            log(traceback.format_exc())
            reason = f"InternalServerError: {type(exc).__name__}: {exc}"
            return self._finish(JobStatus.FAILED, SecondaryStatus.FAILED, reason)

    def _starting(self, log: JobLog) -> None:
        specification = self.request.algorithm_specification
        command = training_command(specification)
        channels = channel_specs(self.request)
        check_input_modes(channels)
        self._scanner = metric_scanner(specification.metric_definitions)
        log(f"training job {self.job_name}: {command.describe()}, {len(channels)} channel(s)")
        count = host_count(self.request)
        if count > 1:
            where = f"on the {self.executor.name} executor"
            log(f"InstanceCount {count}: hosts algo-1 … algo-{count}, {where}")

    def _on_event(self, index: int, event: object) -> None:
        """News from host `index`: the first host's statuses and process are the job's."""
        if isinstance(event, LogLine):
            self._write(event)
        elif isinstance(event, Phase) and index == 0:
            self._history.enter(event.status, event.message)
        elif isinstance(event, Process) and index == 0:
            self._pid = event.pid

    def _write(self, event: LogLine) -> None:
        assert self._log is not None
        if event.stream == DATA_LOG:
            self._log(event.line)
            return
        self._log.write(event.stream, event.line)
        if event.stream == HOST and self._scanner is not None:
            self._scanner(event.line)  # SageMaker's metrics come from the first host

    def _ended(self, outcomes: list[HostOutcome]) -> TrainingOutcome:
        model_url = outcomes[0].model_url
        interrupted = next((o.interrupted for o in outcomes if o.interrupted), None)
        if interrupted is not None:
            return self._finish(JobStatus.STOPPED, interrupted, None, model_url)
        return self._finish(JobStatus.COMPLETED, SecondaryStatus.COMPLETED, None, model_url)

    def _finish(
        self,
        status: JobStatus,
        secondary: SecondaryStatus,
        failure_reason: str | None,
        model_url: str | None = None,
    ) -> TrainingOutcome:
        self._history.enter(secondary)
        metrics = self._scanner.final() if self._scanner else None
        transitions = self._history.transitions()
        return TrainingOutcome(status, failure_reason, model_url, transitions, metrics)

    def _clean_up(self, root: Path, outcome: TrainingOutcome | None, log: JobLog) -> None:
        failed = outcome is None or outcome.status is JobStatus.FAILED
        if failed and os.environ.get(KEEP_WORKSPACE_ENV) and root.exists():
            log(f"keeping the workspace {root} ({KEEP_WORKSPACE_ENV} is set)")
            return
        shutil.rmtree(root, ignore_errors=True)


def _failure_reason(exc: BatchformError) -> str:
    """SageMaker's prefixes: the algorithm's fault, or the job's configuration or data."""
    if isinstance(exc, AlgorithmFailed):
        reason = str(exc)
    elif isinstance(exc, InstanceLost):
        reason = f"InternalServerError: {exc}"
    elif isinstance(exc, RuntimeStartError):
        reason = f"AlgorithmError: {exc}"
    else:
        reason = f"ClientError: {exc}"
    return reason[:FAILURE_REASON_CHARS]
