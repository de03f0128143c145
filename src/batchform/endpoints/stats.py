"""Invocations of each endpoint, as the console shows them: totals, the rate and latency
of the last minutes, and a coarse series to chart.

Kept in memory by the server that serves the endpoint (a restart starts them afresh, as
the model processes themselves do).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Invocations remembered per endpoint for rates, percentiles and the series.
RECENT = 4096
#: How far back the series and the rate look, and the width of one series step.
WINDOW_SECONDS = 300.0
STEP_SECONDS = 10.0


@dataclass
class _Endpoint:
    invocations: int = 0
    errors: int = 0
    #: (monotonic time, seconds, succeeded) of the latest invocations.
    recent: deque[tuple[float, float, bool]] = field(default_factory=lambda: deque(maxlen=RECENT))


class InvocationStats:
    """Thread-safe; `record` is called once per answered invocation."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()

    def record(self, endpoint: str, seconds: float, succeeded: bool) -> None:
        with self._lock:
            entry = self._endpoints.setdefault(endpoint, _Endpoint())
            entry.invocations += 1
            entry.errors += 0 if succeeded else 1
            entry.recent.append((time.monotonic(), seconds, succeeded))

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint, None)

    def summary(self, endpoint: str) -> dict[str, Any]:
        with self._lock:
            entry = self._endpoints.get(endpoint) or _Endpoint()
            recent = list(entry.recent)
            totals = {"invocations": entry.invocations, "errors": entry.errors}
        return {**totals, **window_figures(recent, time.monotonic(), time.time())}


def window_figures(
    recent: list[tuple[float, float, bool]], now: float, wall_now: float
) -> dict[str, Any]:
    """Rate over the last minute, latency percentiles and a series over the window."""
    last_minute = [seconds for at, seconds, _ in recent if at > now - 60]
    ordered = sorted(seconds for _, seconds, _ in recent)
    return {
        "per_second": len(last_minute) / 60.0,
        "latency_p50_ms": _percentile_ms(ordered, 0.5),
        "latency_p99_ms": _percentile_ms(ordered, 0.99),
        "series": _series(recent, now, wall_now),
    }


def _percentile_ms(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def _series(
    recent: list[tuple[float, float, bool]], now: float, wall_now: float
) -> list[dict[str, Any]]:
    steps = int(WINDOW_SECONDS / STEP_SECONDS)
    starts = [now - WINDOW_SECONDS + index * STEP_SECONDS for index in range(steps)]
    counts = [0] * steps
    totals = [0.0] * steps
    for at, seconds, _ in recent:
        index = bisect.bisect_right(starts, at) - 1
        if 0 <= index < steps:
            counts[index] += 1
            totals[index] += seconds
    return [
        {
            "at": wall_now - (now - start - STEP_SECONDS),
            "per_second": count / STEP_SECONDS,
            "latency_ms": total / count * 1000 if count else None,
        }
        for start, count, total in zip(starts, counts, totals, strict=True)
    ]
