"""`<output>/_batchform/job_summary.json`: what ran, on what, and how it went."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

from batchform import storage
from batchform.engine.job import TransformOutcome
from batchform.engine.objectrun import ObjectResult
from batchform.spec.transform import CreateTransformJobRequest

SUMMARY_NAME = "_batchform/job_summary.json"


def spec_hash(request: CreateTransformJobRequest) -> str:
    """A stable digest of the request: the same job always hashes the same."""
    canonical = orjson.dumps(request.to_request(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class RunInfo:
    """What the engine does not know itself: the model and the run's clock and CPU."""

    model: dict[str, Any]
    started_at: float
    cpu_at_start: os.times_result


def summary_url(request: CreateTransformJobRequest) -> str:
    return f"{request.transform_output.s3_output_path.rstrip('/')}/{SUMMARY_NAME}"


def build_summary(
    request: CreateTransformJobRequest, outcome: TransformOutcome, info: RunInfo
) -> dict[str, Any]:
    snap = outcome.progress
    cpu = os.times()
    return {
        "job": request.transform_job_name,
        "status": outcome.status.value,
        "failure_reason": outcome.failure_reason,
        "spec": request.to_request(),
        "spec_sha256": spec_hash(request),
        "model": info.model,
        "settings": _settings(outcome),
        "started_at": _iso(info.started_at),
        "ended_at": _iso(time.time()),
        "wall_seconds": round(snap.elapsed, 3),
        "cpu_seconds": {
            "batchform": round(_self_cpu(cpu) - _self_cpu(info.cpu_at_start), 3),
            "model": round(_child_cpu(cpu) - _child_cpu(info.cpu_at_start), 3),
        },
        "totals": {
            "objects": snap.objects_total,
            "objects_done": snap.objects_done,
            "objects_failed": snap.objects_failed,
            "records": snap.records,
            "bad_records": snap.bad_records,
            "bytes_read": snap.bytes_read,
            "bytes_written": snap.bytes_written,
            "batches": snap.batches,
            "retries": snap.retries,
            "errors": snap.errors,
            "latency_ms": {"p50": _ms(snap.latency_p50), "p99": _ms(snap.latency_p99)},
        },
        "objects": [_object(result) for result in outcome.results],
    }


def write_summary(request: CreateTransformJobRequest, summary: dict[str, Any]) -> str:
    url = summary_url(request)
    storage.write_bytes(url, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    return url


def _object(result: ObjectResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "status": "Completed" if result.succeeded else "Failed",
        "error": None if result.error is None else str(result.error),
        "records": result.records,
        "bad_records": result.bad_records,
        "batches": result.batches,
        "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out,
        "output": result.output_url if result.succeeded else None,
    }


def _settings(outcome: TransformOutcome) -> dict[str, Any] | None:
    if outcome.settings is None:
        return None
    return {
        "MaxConcurrentTransforms": outcome.settings.max_concurrent_transforms,
        "MaxPayloadInMB": outcome.settings.max_payload_in_mb,
        "BatchStrategy": outcome.settings.batch_strategy.value,
    }


def _self_cpu(times: os.times_result) -> float:
    return times.user + times.system


def _child_cpu(times: os.times_result) -> float:
    # Model processes are children; their CPU is counted once they have been waited for.
    return times.children_user + times.children_system


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
