"""One host of a training job: its workspace, its share of the channels, `train`, and on
the first host (algo-1, as SageMaker does) the upload of the model and output data.

A HostRun reports what it goes through — the secondary statuses it enters, the lines
of the job's data log, the algorithm's own output, its process id — through callbacks, so
the same code runs in the job's process or in a Ray actor on another node.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from batchform.errors import BatchformError, JobStopped
from batchform.runtimes.process import _ServeProcess
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
from batchform.training.channels import ChannelSpec, copy_channel
from batchform.training.images import TrainingCommand
from batchform.training.layout import (
    HostIdentity,
    TrainingWorkspace,
    create_training_workspace,
    training_environment,
)
from batchform.training.pipes import PipeFeeders, start_feeders
from batchform.training.status import SecondaryStatus

#: SageMaker's limit on FailureReason, and what it reads of `output/failure`.
FAILURE_REASON_CHARS = 1024
_POLL_SECONDS = 0.2
_SALVAGE_MESSAGE = "Uploading the model the algorithm saved before it stopped"

PhaseListener = Callable[[SecondaryStatus, str | None], None]


class TrainingInterrupted(JobStopped):
    """A stop request or MaxRuntimeInSeconds ended the job early."""

    def __init__(self, status: SecondaryStatus) -> None:
        self.status = status
        what = "stop requested" if status is SecondaryStatus.STOPPED else "MaxRuntimeInSeconds"
        super().__init__(f"training interrupted: {what}")

    def __reduce__(self) -> tuple[type[TrainingInterrupted], tuple[SecondaryStatus]]:
        return (type(self), (self.status,))


class AlgorithmFailed(BatchformError):
    """`train` exited with a non-zero code; the message is the job's FailureReason."""


@dataclass
class Limits:
    """A host's stop request and what is left of MaxRuntimeInSeconds."""

    stop: threading.Event
    max_runtime: float
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        if self.stop.is_set():
            raise TrainingInterrupted(SecondaryStatus.STOPPED)
        if time.monotonic() - self.started >= self.max_runtime:
            raise TrainingInterrupted(SecondaryStatus.MAX_RUNTIME_EXCEEDED)


@dataclass(frozen=True)
class HostOutcome:
    """How a host's part ended: its model's URL (first host), or the interruption."""

    model_url: str | None = None
    interrupted: SecondaryStatus | None = None


@dataclass
class HostRun:
    request: CreateTrainingJobRequest
    host: HostIdentity
    root: Path
    command: TrainingCommand
    channels: list[ChannelSpec]
    log: Callable[[str], None]
    #: The algorithm's own lines (the job log's `algo-N` stream).
    output: Callable[[str], None]
    phase: PhaseListener
    limits: Limits
    stop_grace: float
    on_process: Callable[[int | None], None] = lambda pid: None
    _status: SecondaryStatus | None = field(default=None, init=False)
    _trained: bool = field(default=False, init=False)

    def run(self) -> HostOutcome:
        """Lay out, download, train, upload; BatchformError when the host failed."""
        workspace: TrainingWorkspace | None = None
        try:
            workspace = create_training_workspace(self.root, self.request, self.channels, self.host)
            with self._downloading(workspace) as pipes:
                self._training(workspace, pipes)
            if not self.host.primary:
                return HostOutcome()
            self._enter(SecondaryStatus.UPLOADING)
            return HostOutcome(self._upload(workspace))
        except TrainingInterrupted as interrupted:
            return self._interrupted(interrupted.status, workspace)

    def _enter(self, status: SecondaryStatus, message: str | None = None) -> None:
        self._status = status
        self.phase(status, message)

    def _downloading(self, workspace: TrainingWorkspace) -> PipeFeeders:
        """Copy the File channels in; start feeding the Pipe channels' first FIFOs."""
        self._enter(SecondaryStatus.DOWNLOADING)
        shard = (self.host.index, len(self.host.hosts))
        for channel in (channel for channel in self.channels if not channel.piped):
            target = workspace.channel_dir(channel.name)
            copied = copy_channel(channel, target, self.limits.check, shard)
            self.log(f"channel {channel.name}: {copied.objects} object(s), {copied.bytes:,} bytes")
        return start_feeders(self.channels, workspace.data_dir, self.log, self.limits.check, shard)

    def _training(self, workspace: TrainingWorkspace, pipes: PipeFeeders) -> None:
        self.limits.check()
        self._enter(SecondaryStatus.TRAINING)
        variables = training_environment(workspace, self.request, self.channels, self.host)
        environment = {**os.environ, **variables}
        process = _ServeProcess(self.command.argv, environment, workspace.root, self.output)
        self._trained = True
        self.on_process(process.pid)
        try:
            code = self._wait(process, pipes)
        except TrainingInterrupted as interrupted:
            self._stopping(interrupted)
            raise
        finally:
            process.terminate(self.stop_grace)  # also ends whatever it left running
            self.on_process(None)
        pipes.check()  # data cut short by storage is the cause, whatever the exit code
        if code != 0:
            raise AlgorithmFailed(algorithm_failure(workspace.failure_file, process, code))

    def _wait(self, process: _ServeProcess, pipes: PipeFeeders) -> int:
        while (code := process.exit_code(_POLL_SECONDS)) is None:
            self.limits.check()
            pipes.check()
        return code

    def _stopping(self, interrupted: TrainingInterrupted) -> None:
        if interrupted.status is SecondaryStatus.STOPPED:
            self._enter(SecondaryStatus.STOPPING)
        self.log(f"{interrupted}: SIGTERM to the algorithm, SIGKILL after {self.stop_grace:g} s")

    def _interrupted(
        self, status: SecondaryStatus, workspace: TrainingWorkspace | None
    ) -> HostOutcome:
        """Stopped: like SageMaker, keep the model the algorithm saved before it ended."""
        stopping = SecondaryStatus.STOPPING
        if status is SecondaryStatus.STOPPED and self._status is not stopping:
            self._enter(stopping)
        model_url = None
        saved = self._trained and workspace is not None and has_content(workspace.model_dir)
        if saved and workspace is not None and self.host.primary:
            self._enter(SecondaryStatus.UPLOADING, _SALVAGE_MESSAGE)
            try:
                model_url = self._upload(workspace)
            except BatchformError as exc:
                self.log(f"the model saved before the stop could not be uploaded: {exc}")
        return HostOutcome(model_url, status)

    def _upload(self, workspace: TrainingWorkspace) -> str:
        output = self.request.output_data_config
        output_path, job_name = output.s3_output_path, self.request.training_job_name
        if output.compression_type is OutputCompressionType.NONE:
            model_url = artifact_url(output_path, job_name, MODEL_FOLDER) + "/"
            upload_files(workspace.model_dir, model_url)
        else:
            model_url = artifact_url(output_path, job_name, MODEL_TARBALL)
            upload_folder(workspace.model_dir, model_url)
        upload_folder(
            workspace.output_data_dir, artifact_url(output_path, job_name, OUTPUT_TARBALL)
        )
        self.log(f"model artifacts: {model_url}")
        return model_url


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
