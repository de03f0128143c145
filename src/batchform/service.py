"""The one service layer: the CLI, the server and the SDK call only this."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchform import config
from batchform.engine.job import TransformJob, TransformOutcome
from batchform.engine.progress import JobProgress
from batchform.engine.summary import RunInfo, build_summary, write_summary
from batchform.jobs.logs import JobLog
from batchform.runtimes.digest import describe_model
from batchform.runtimes.registry import ModelReference, RuntimeOptions, runtime_factory
from batchform.spec.common import parse_request
from batchform.spec.transform import DEFAULT_MAX_PAYLOAD_IN_MB, CreateTransformJobRequest


def parse_transform_request(body: dict[str, Any]) -> CreateTransformJobRequest:
    """Validate a CreateTransformJob body; SpecValidationError names every bad field."""
    return parse_request(CreateTransformJobRequest, body)


@dataclass
class TransformRun:
    """A transform job being run in this process, observable while it runs."""

    request: CreateTransformJobRequest
    model: ModelReference
    echo: Callable[[str], None] | None = None
    executor: str = "local"
    progress: JobProgress = field(default_factory=JobProgress)
    stop: threading.Event = field(default_factory=threading.Event)
    summary_url: str | None = None

    @property
    def job_dir(self) -> Path:
        return config.home() / "jobs" / self.request.transform_job_name

    @property
    def log_path(self) -> Path:
        return self.job_dir / "log"

    def run(self) -> TransformOutcome:
        log = JobLog(self.log_path, self.echo)
        workspace = self.job_dir / f"workspace-{int(time.time() * 1000)}"
        job = TransformJob(
            request=self.request,
            runtime_factory=runtime_factory(self.model, _runtime_options(self.request)),
            workspace=str(workspace),
            log=log,
            executor=self.executor,
            progress=self.progress,
            stop=self.stop,
        )
        info = RunInfo(describe_model(self.model), time.time(), os.times())
        try:
            outcome = job.run()
            summary = build_summary(self.request, outcome, info)
            self.summary_url = write_summary(self.request, summary)
            log(
                f"job {self.request.transform_job_name} {outcome.status.value}"
                + (f": {outcome.failure_reason}" if outcome.failure_reason else "")
            )
            return outcome
        finally:
            log.close()
            shutil.rmtree(workspace, ignore_errors=True)


def _runtime_options(request: CreateTransformJobRequest) -> RuntimeOptions:
    strategy = request.batch_strategy.value if request.batch_strategy else "MultiRecord"
    payload = request.max_payload_in_mb
    return RuntimeOptions(
        concurrency=request.max_concurrent_transforms or 1,
        max_payload_in_mb=DEFAULT_MAX_PAYLOAD_IN_MB if payload is None else payload,
        batch_strategy=strategy,
    )
