"""Honest progress: counters every instance updates and any front end reads."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

#: Latency samples kept for percentiles; a ring so memory stays flat on long jobs.
LATENCY_SAMPLES = 4096
#: Upper bounds (seconds) of the invocation latency histogram, as Prometheus buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class ProgressSnapshot:
    objects_total: int
    objects_done: int
    objects_failed: int
    records: int
    bad_records: int
    batches: int
    bytes_total: int
    bytes_read: int
    bytes_written: int
    retries: int
    errors: int
    elapsed: float
    latency_p50: float | None
    latency_p99: float | None
    model_restarts: int = 0
    #: Invocations per LATENCY_BUCKETS bound (not cumulative; the last is +Inf).
    latency_buckets: list[int] = field(default_factory=list)
    latency_sum: float = 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_read / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.bytes_per_second
        if rate <= 0 or self.bytes_total <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_read) / rate)


@dataclass
class JobProgress:
    """Thread-safe counters of one job."""

    objects_total: int = 0
    bytes_total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _started: float = field(default_factory=time.monotonic, repr=False)
    _counts: dict[str, int] = field(default_factory=dict, repr=False)
    _latencies: list[float] = field(default_factory=list, repr=False)
    _latency_next: int = 0
    _buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    _latency_sum: float = 0.0

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] = self._counts.get(name, 0) + value

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def record_latency(self, seconds: float) -> None:
        with self._lock:
            self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            if len(self._latencies) < LATENCY_SAMPLES:
                self._latencies.append(seconds)
            else:
                self._latencies[self._latency_next] = seconds
                self._latency_next = (self._latency_next + 1) % LATENCY_SAMPLES

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            counts = dict(self._counts)
            latencies = sorted(self._latencies)
            buckets = list(self._buckets)
            latency_sum = self._latency_sum
        return ProgressSnapshot(
            objects_total=self.objects_total,
            objects_done=counts.get("objects_done", 0),
            objects_failed=counts.get("objects_failed", 0),
            records=counts.get("records", 0),
            bad_records=counts.get("bad_records", 0),
            batches=counts.get("batches", 0),
            bytes_total=self.bytes_total,
            bytes_read=counts.get("bytes_read", 0),
            bytes_written=counts.get("bytes_written", 0),
            retries=counts.get("retries", 0),
            errors=counts.get("errors", 0),
            elapsed=time.monotonic() - self._started,
            latency_p50=_percentile(latencies, 0.50),
            latency_p99=_percentile(latencies, 0.99),
            model_restarts=counts.get("model_restarts", 0),
            latency_buckets=buckets,
            latency_sum=latency_sum,
        )


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
