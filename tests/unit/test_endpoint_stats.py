"""An endpoint's invocation figures: totals, last-minute rate, percentiles, series."""

from __future__ import annotations

import pytest

from batchform.endpoints.stats import STEP_SECONDS, WINDOW_SECONDS, InvocationStats, window_figures


def test_totals_count_every_invocation_and_failures() -> None:
    stats = InvocationStats()
    stats.record("ep", 0.010, True)
    stats.record("ep", 0.030, False)
    stats.record("other", 0.5, True)
    summary = stats.summary("ep")
    assert (summary["invocations"], summary["errors"]) == (2, 1)
    stats.forget("ep")
    assert stats.summary("ep")["invocations"] == 0


def test_rate_covers_the_last_minute_and_percentiles_the_recent_calls() -> None:
    now = 1000.0
    recent = [(now - 120, 1.0, True)] + [(now - 30 + i, 0.010 * (i + 1), True) for i in range(30)]
    figures = window_figures(recent, now, wall_now=5000.0)
    assert figures["per_second"] == pytest.approx(30 / 60)
    assert figures["latency_p50_ms"] == pytest.approx(160.0)
    assert figures["latency_p99_ms"] == pytest.approx(1000.0)


def test_series_buckets_the_window_in_steps_ending_now() -> None:
    now = 1000.0
    recent = [(now - 1, 0.2, True), (now - 2, 0.4, True)]
    series = window_figures(recent, now, wall_now=5000.0)["series"]
    assert len(series) == int(WINDOW_SECONDS / STEP_SECONDS)
    last = series[-1]
    assert last["at"] == pytest.approx(5000.0)
    assert last["per_second"] == pytest.approx(2 / STEP_SECONDS)
    assert last["latency_ms"] == pytest.approx(300.0)
    assert all(step["latency_ms"] is None for step in series[:-1])


def test_nothing_recorded_has_no_percentiles() -> None:
    figures = InvocationStats().summary("quiet")
    assert figures["latency_p50_ms"] is None and figures["per_second"] == 0.0
