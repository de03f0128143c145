"""A transform job run in this process: ledger, resume and summary around the engine."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from batchform import config
from batchform.engine import parts
from batchform.engine.executors import ExecutorSettings
from batchform.engine.job import TransformJob, TransformOutcome, list_job_inputs
from batchform.engine.ledger import (
    FinishedObject,
    JoinedPrefix,
    Ledger,
    ResumeRefused,
    check_resumable,
    intact_entries,
    prefix_intact,
)
from batchform.engine.objectrun import ObjectResult
from batchform.engine.progress import JobProgress
from batchform.engine.settings import EffectiveSettings
from batchform.engine.summary import RunInfo, build_summary, spec_hash, write_summary
from batchform.jobs.logs import JobLog
from batchform.runtimes.digest import describe_model
from batchform.runtimes.registry import ModelReference, RuntimeOptions, runtime_factory
from batchform.spec.common import parse_request
from batchform.spec.transform import DEFAULT_MAX_PAYLOAD_IN_MB, CreateTransformJobRequest


def parse_transform_request(body: dict[str, Any]) -> CreateTransformJobRequest:
    """Validate a CreateTransformJob body; SpecValidationError names every bad field."""
    return parse_request(CreateTransformJobRequest, body)


def job_dir(job_name: str) -> Path:
    return config.home() / "jobs" / job_name


def log_path(job_name: str) -> Path:
    return job_dir(job_name) / "log"


@dataclass
class TransformRun:
    """A transform job being run in this process, observable while it runs.

    With `resume`, the job's ledger decides what is left: objects whose outputs are still
    there and intact are kept, the rest are redone.
    """

    request: CreateTransformJobRequest
    model: ModelReference
    echo: Callable[[str], None] | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    resume: bool = False
    progress: JobProgress = field(default_factory=JobProgress)
    stop: threading.Event = field(default_factory=threading.Event)
    summary_url: str | None = None
    skipped: int = 0
    _job: TransformJob | None = field(default=None, repr=False)

    @property
    def job_dir(self) -> Path:
        return job_dir(self.request.transform_job_name)

    @property
    def log_path(self) -> Path:
        return log_path(self.request.transform_job_name)

    @property
    def settings(self) -> EffectiveSettings | None:
        """The effective settings, once the first instance's model has said."""
        return self._job.settings if self._job is not None else None

    def run(self) -> TransformOutcome:
        log = JobLog(self.log_path, self.echo)
        workspace = self.job_dir / f"workspace-{int(time.time() * 1000)}"
        try:
            model_info = describe_model(self.model)
            info = RunInfo(model_info, time.time(), os.times())
            plan, kept, joined = self._work_to_do(model_info["sha256"], log)
            job = self._job = TransformJob(
                request=self.request,
                runtime_factory=runtime_factory(self.model, _runtime_options(self.request)),
                workspace=str(workspace),
                log=log,
                executor=self.executor,
                progress=self.progress,
                stop=self.stop,
                plan=plan,
                kept=kept,
                joined=joined,
                on_commit=self._record_finished,
                on_joined=self._ledger.joined,
            )
            outcome = job.run()
            summary = build_summary(self.request, outcome, info)
            summary["resumed_objects_kept"] = self.skipped
            self.summary_url = write_summary(self.request, summary)
            reason = f": {outcome.failure_reason}" if outcome.failure_reason else ""
            log(f"job {self.request.transform_job_name} {outcome.status.value}{reason}")
            return outcome
        finally:
            log.close()
            shutil.rmtree(workspace, ignore_errors=True)

    @property
    def _ledger(self) -> Ledger:
        return Ledger(self.job_dir / "ledger.jsonl")

    def _work_to_do(
        self, model_sha256: str | None, log: Callable[[str], None]
    ) -> tuple[parts.Plan, dict[str, FinishedObject], dict[str, JoinedPrefix]]:
        """The work units this run must do, what an earlier run finished intact, and the
        parts of split objects it joined."""
        listed = list_job_inputs(self.request)
        plan = parts.plan(listed, self.request)
        ledger = self._ledger
        kept: dict[str, FinishedObject] = {}
        joined: dict[str, JoinedPrefix] = {}
        if not self.resume:
            ledger.path.unlink(missing_ok=True)
            self._save_definition()
        else:
            state = ledger.read()
            check_resumable(state, spec_hash(self.request), model_sha256, listed)
            kept = intact_entries(state.finished.values())
            joined = {key: prefix for key, prefix in state.joined.items() if prefix_intact(prefix)}
            self.skipped = sum(1 for obj in listed if obj.key in kept)
            log(f"resuming: {self.skipped} of {len(listed)} object(s) finished and intact")
            done = set(kept).union(*(_joined_parts(plan, prefix) for prefix in joined.values()))
            units = [u for u in plan.units if u.key not in done and plan.owner(u.key) not in kept]
            plan = replace(plan, units=units)
        ledger.start(spec_hash(self.request), model_sha256, listed)
        return plan, kept, joined

    def _record_finished(self, result: ObjectResult, checksum: int) -> None:
        self._ledger.finished(
            FinishedObject(
                result.key,
                result.output_url,
                result.bytes_out,
                checksum,
                result.records,
                result.bad_records,
            )
        )

    def _save_definition(self) -> None:
        """What `batchform resume` needs to run the same job again."""
        definition = {"request": self.request.to_request(), "model": model_dict(self.model)}
        self.job_dir.mkdir(parents=True, exist_ok=True)
        (self.job_dir / "job.json").write_bytes(orjson.dumps(definition))


def _joined_parts(plan: parts.Plan, prefix: JoinedPrefix) -> list[str]:
    return plan.parts_of.get(prefix.key, [])[: prefix.parts]


def resume_run(
    job_name: str,
    echo: Callable[[str], None] | None = None,
    executor: ExecutorSettings | None = None,
) -> TransformRun:
    """A TransformRun that finishes job `job_name` from its ledger."""
    path = job_dir(job_name) / "job.json"
    if not path.exists():
        raise ResumeRefused(f"no job named '{job_name}' under {config.home() / 'jobs'}")
    definition = orjson.loads(path.read_bytes())
    request = parse_transform_request(definition["request"])
    model = ModelReference(**definition["model"])
    return TransformRun(
        request, model, echo=echo, resume=True, executor=executor or ExecutorSettings()
    )


def model_dict(model: ModelReference) -> dict[str, Any]:
    return {
        "image": model.image,
        "model_data_url": model.model_data_url,
        "url": model.url,
        "environment": dict(model.environment),
    }


def _runtime_options(request: CreateTransformJobRequest) -> RuntimeOptions:
    strategy = request.batch_strategy.value if request.batch_strategy else "MultiRecord"
    payload = request.max_payload_in_mb
    return RuntimeOptions(
        concurrency=request.max_concurrent_transforms or 1,
        max_payload_in_mb=DEFAULT_MAX_PAYLOAD_IN_MB if payload is None else payload,
        batch_strategy=strategy,
    )
