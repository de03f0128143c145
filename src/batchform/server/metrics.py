"""/metrics in Prometheus' text format, computed from the store and the live jobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from batchform.engine.progress import LATENCY_BUCKETS
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.store import TRANSFORM_JOBS
from batchform.service import Service

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Time the server spends on each API call, from its request body to its answer.
API_REGISTRY = CollectorRegistry(auto_describe=False)
API_LATENCY = Histogram(
    "batchform_api_request_seconds",
    "Server-side latency of API calls",
    ["operation"],
    registry=API_REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

#: Progress counters summed over every stored job, as counters.
_COUNTERS = {
    "records": "Records transformed",
    "bad_records": "Records that failed and went to a dead-letter file",
    "batches": "Invocations (payloads) sent to models",
    "bytes_read": "Input bytes read",
    "bytes_written": "Output bytes written",
    "retries": "Invocations retried",
    "errors": "Invocations that failed after retries",
    "model_restarts": "Model processes restarted after dying",
}


def render(service: Service) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(service))
    return generate_latest(registry) + generate_latest(API_REGISTRY)


class _Collector:
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        rows = self.service.store.select(TRANSFORM_JOBS)
        yield _jobs_by_status(rows)
        progress = _all_progress(rows)
        yield from _counters(progress)
        yield _latency(progress)
        yield from _model_processes()


def _jobs_by_status(rows: list[dict[str, Any]]) -> Metric:
    family = GaugeMetricFamily(
        "batchform_transform_jobs", "Transform jobs by status", labels=["status"]
    )
    for status in JobStatus:
        family.add_metric([status.value], sum(1 for row in rows if row["status"] == status.value))
    return family


def _all_progress(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each job's counters as its worker last reported them (every heartbeat)."""
    return [row["progress"] or {} for row in rows]


def _counters(progress: list[dict[str, Any]]) -> Iterator[Metric]:
    for name, help_text in _COUNTERS.items():
        total = sum(entry.get(name, 0) for entry in progress)
        yield CounterMetricFamily(f"batchform_{name}", help_text, value=total)


def _latency(progress: list[dict[str, Any]]) -> Metric:
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    total = 0.0
    for entry in progress:
        for index, count in enumerate(entry.get("latency_buckets") or []):
            counts[index] += count
        total += entry.get("latency_sum", 0.0)
    cumulative: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts, strict=True):
        running += count
        cumulative.append((bound, running))
    return HistogramMetricFamily(
        "batchform_invocation_latency_seconds",
        "Latency of model invocations",
        buckets=cumulative,
        sum_value=total,
    )


def _model_processes() -> Iterator[Metric]:
    """Model processes are this server's child processes (and theirs)."""
    children = _children()
    cpu = memory = 0.0
    for child in children:
        try:
            times = child.cpu_times()
            cpu += times.user + times.system
            memory += child.memory_info().rss
        except psutil.Error:
            continue  # exited while being read
    yield GaugeMetricFamily("batchform_model_processes", "Model processes running", len(children))
    yield CounterMetricFamily(
        "batchform_model_process_cpu_seconds", "CPU time of running model processes", cpu
    )
    yield GaugeMetricFamily(
        "batchform_model_process_resident_memory_bytes",
        "Resident memory of running model processes",
        memory,
    )


def _children() -> list[psutil.Process]:
    try:
        return list(psutil.Process().children(recursive=True))
    except psutil.Error:
        return []
