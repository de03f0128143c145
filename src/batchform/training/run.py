"""A training job run in this process: workspace, channels, the algorithm, artifacts.

The stages are SageMaker's secondary statuses: Starting (resolve the image, lay out the
workspace), Downloading (copy every File channel in; for a Pipe channel only list its
objects and create its first FIFO, so this stage is brief), Training (run `train` in its
own process group, its output in the job log's `algo-1` stream, Pipe channels fed as it
reads them), Uploading (model.tar.gz and output.tar.gz), then Completed, Failed, Stopped
or MaxRuntimeExceeded.
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
from batchform.errors import BatchformError, JobStopped, RuntimeStartError
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.logs import JobLog
from batchform.runtimes.process import _ServeProcess
from batchform.spec.common import parse_request
from batchform.spec.enums import OutputCompressionType
from batchform.spec.training import CreateTrainingJobRequest
from batchform.training.artifacts import (
    MODEL_FOLDER,
    MODEL_TARBALL,
    OUTPUT_TARBALL,
    artifact_url,
    has_content,
    upload_files,
    upload_folder,
)
from batchform.training.channels import ChannelSpec, channel_specs, check_input_modes, copy_channel
from batchform.training.images import TrainingCommand, training_command
from batchform.training.layout import (
    HOST,
    TrainingWorkspace,
    create_training_workspace,
    training_environment,
)
from batchform.training.metrics import MetricScanner, metric_scanner
from batchform.training.pipes import PipeFeeders, start_feeders
from batchform.training.status import (
    SecondaryStatus,
    SecondaryStatusTransition,
    StatusHistory,
    StatusListener,
)

#: Set to keep a failed job's workspace (config, data, model/) for a look inside.
KEEP_WORKSPACE_ENV = "BATCHFORM_KEEP_FAILED_WORKSPACE"
#: SageMaker's limit on FailureReason, and what it reads of `output/failure`.
FAILURE_REASON_CHARS = 1024
#: Between SIGTERM and SIGKILL, as SageMaker allows an algorithm to save its model.
DEFAULT_STOP_GRACE = 120.0
_POLL_SECONDS = 0.2
_SALVAGE_MESSAGE = "Uploading the model the algorithm saved before it stopped"


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


class TrainingInterrupted(JobStopped):
    """A stop request or MaxRuntimeInSeconds ended the job early."""

    def __init__(self, status: SecondaryStatus) -> None:
        self.status = status
        what = "stop requested" if status is SecondaryStatus.STOPPED else "MaxRuntimeInSeconds"
        super().__init__(f"training interrupted: {what}")


class AlgorithmFailed(BatchformError):
    """`train` exited with a non-zero code; the message is the job's FailureReason."""


@dataclass
class _Limits:
    stop: threading.Event
    max_runtime: float
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        if self.stop.is_set():
            raise TrainingInterrupted(SecondaryStatus.STOPPED)
        if time.monotonic() - self.started >= self.max_runtime:
            raise TrainingInterrupted(SecondaryStatus.MAX_RUNTIME_EXCEEDED)


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
    _history: StatusHistory = field(init=False, repr=False)
    _process: _ServeProcess | None = field(default=None, init=False, repr=False)
    _trained: bool = field(default=False, init=False, repr=False)
    _scanner: MetricScanner | None = field(default=None, init=False, repr=False)

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
        """The algorithm's process (and process group) id while it runs."""
        process = self._process
        return process.pid if process else None

    def run(self) -> TrainingOutcome:
        log = JobLog(self.log_path, self.echo)
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

    def _limits(self) -> _Limits:
        return _Limits(self.stop, float(self.request.stopping_condition.max_runtime_in_seconds))

    def _run(self, root: Path, log: JobLog, limits: _Limits) -> TrainingOutcome:
        workspace: TrainingWorkspace | None = None
        try:
            command, channels = self._starting(log)
            workspace = create_training_workspace(root, self.request, channels)
            with self._downloading(channels, workspace, log, limits) as pipes:
                self._training(command, workspace, channels, pipes, log, limits)
            self._history.enter(SecondaryStatus.UPLOADING)
            model_url = self._upload(workspace, log)
            return self._finish(JobStatus.COMPLETED, SecondaryStatus.COMPLETED, None, model_url)
        except TrainingInterrupted as interrupted:
            return self._interrupted(interrupted.status, workspace, log)
        except BatchformError as exc:
            return self._finish(JobStatus.FAILED, SecondaryStatus.FAILED, _failure_reason(exc))
        except Exception as exc:  # a bug of ours must still end the job, and say why
            log(traceback.format_exc())
            reason = f"InternalServerError: {type(exc).__name__}: {exc}"
            return self._finish(JobStatus.FAILED, SecondaryStatus.FAILED, reason)

    def _starting(self, log: JobLog) -> tuple[TrainingCommand, list[ChannelSpec]]:
        specification = self.request.algorithm_specification
        command = training_command(specification)
        channels = channel_specs(self.request)
        check_input_modes(channels)
        self._scanner = metric_scanner(specification.metric_definitions)
        log(f"training job {self.job_name}: {command.describe()}, {len(channels)} channel(s)")
        count = self.request.resource_config.instance_count or 1
        if count > 1:
            log(f"InstanceCount {count}: batchform trains on one host ({HOST})")
        return command, channels

    def _downloading(
        self,
        channels: list[ChannelSpec],
        workspace: TrainingWorkspace,
        log: JobLog,
        limits: _Limits,
    ) -> PipeFeeders:
        """Copy the File channels in; start feeding the Pipe channels' first FIFOs."""
        self._history.enter(SecondaryStatus.DOWNLOADING)
        for channel in (channel for channel in channels if not channel.piped):
            copied = copy_channel(channel, workspace.channel_dir(channel.name), limits.check)
            log(f"channel {channel.name}: {copied.objects} object(s), {copied.bytes:,} bytes")
        return start_feeders(channels, workspace.data_dir, log, limits.check)

    def _training(
        self,
        command: TrainingCommand,
        workspace: TrainingWorkspace,
        channels: list[ChannelSpec],
        pipes: PipeFeeders,
        log: JobLog,
        limits: _Limits,
    ) -> None:
        limits.check()
        self._history.enter(SecondaryStatus.TRAINING)
        environment = {**os.environ, **training_environment(workspace, self.request, channels)}
        process = _ServeProcess(command.argv, environment, workspace.root, self._output_sink(log))
        self._process, self._trained = process, True
        try:
            code = self._wait(process, limits, pipes)
        except TrainingInterrupted as interrupted:
            self._stopping(interrupted, log)
            raise
        finally:
            process.terminate(self.stop_grace)  # also ends whatever it left running
            self._process = None
        pipes.check()  # data cut short by storage is the cause, whatever the exit code
        if code != 0:
            raise AlgorithmFailed(algorithm_failure(workspace.failure_file, process, code))

    def _output_sink(self, log: JobLog) -> Callable[[str], None]:
        """The algorithm's lines go to its log stream and past the metric definitions."""
        stream, scanner = log.stream(HOST), self._scanner

        def sink(line: str) -> None:
            stream(line)
            if scanner is not None:
                scanner(line)

        return sink

    @staticmethod
    def _wait(process: _ServeProcess, limits: _Limits, pipes: PipeFeeders) -> int:
        while (code := process.exit_code(_POLL_SECONDS)) is None:
            limits.check()
            pipes.check()
        return code

    def _stopping(self, interrupted: TrainingInterrupted, log: JobLog) -> None:
        if interrupted.status is SecondaryStatus.STOPPED:
            self._history.enter(SecondaryStatus.STOPPING)
        log(f"{interrupted}: SIGTERM to the algorithm, SIGKILL after {self.stop_grace:g} s")

    def _interrupted(
        self, status: SecondaryStatus, workspace: TrainingWorkspace | None, log: JobLog
    ) -> TrainingOutcome:
        """Stopped: like SageMaker, keep the model the algorithm saved before it ended."""
        stopping = SecondaryStatus.STOPPING
        if status is SecondaryStatus.STOPPED and self._history.current is not stopping:
            self._history.enter(stopping)
        model_url = None
        if self._trained and workspace is not None and has_content(workspace.model_dir):
            self._history.enter(SecondaryStatus.UPLOADING, _SALVAGE_MESSAGE)
            try:
                model_url = self._upload(workspace, log)
            except BatchformError as exc:
                log(f"the model saved before the stop could not be uploaded: {exc}")
        return self._finish(JobStatus.STOPPED, status, None, model_url)

    def _upload(self, workspace: TrainingWorkspace, log: JobLog) -> str:
        output = self.request.output_data_config
        output_path = output.s3_output_path
        if output.compression_type is OutputCompressionType.NONE:
            model_url = artifact_url(output_path, self.job_name, MODEL_FOLDER) + "/"
            upload_files(workspace.model_dir, model_url)
        else:
            model_url = artifact_url(output_path, self.job_name, MODEL_TARBALL)
            upload_folder(workspace.model_dir, model_url)
        output_url = artifact_url(output_path, self.job_name, OUTPUT_TARBALL)
        upload_folder(workspace.output_data_dir, output_url)
        log(f"model artifacts: {model_url}")
        return model_url

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


def algorithm_failure(failure_file: Path, process: _ServeProcess, code: int) -> str:
    """FailureReason of a `train` that exited with `code`: what it wrote to
    `output/failure`, else SageMaker's "AlgorithmError: …, exit code: N" with its last lines."""
    written = _read_failure(failure_file)
    if written:
        return written
    # A signal shows as the shell (and a container runtime) would report it: 128 + N.
    ending = f", exit code: {code if code >= 0 else 128 - code}"
    room = FAILURE_REASON_CHARS - len("AlgorithmError: ") - len(ending)
    tail = process.last_lines()
    if len(tail) > room:
        tail = "…" + tail[-(room - 1) :]
    return f"AlgorithmError: {tail}{ending}"


def _read_failure(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.read(FAILURE_REASON_CHARS).strip() or None
    except OSError:
        return None


def _failure_reason(exc: BatchformError) -> str:
    """SageMaker's prefixes: the algorithm's fault, or the job's configuration or data."""
    if isinstance(exc, AlgorithmFailed):
        reason = str(exc)
    elif isinstance(exc, RuntimeStartError):
        reason = f"AlgorithmError: {exc}"
    else:
        reason = f"ClientError: {exc}"
    return reason[:FAILURE_REASON_CHARS]
