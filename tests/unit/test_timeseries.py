"""A job's series: samples from its row's heartbeat counters, rates between them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from batchform.jobs.timeseries import MAX_POINTS, points, read_samples, sample, series_path


def _sample(t: float, elapsed: float, records: int, calls: int, latency: float, **extra: float):
    return {
        "t": t,
        "elapsed": elapsed,
        "records": records,
        "invocations": calls,
        "latency_sum": latency,
        **extra,
    }


def test_a_sample_keeps_the_heartbeat_counters_and_model_usage() -> None:
    row = {
        "progress": {
            "elapsed": 4.0,
            "records": 120,
            "latency_buckets": [2, 3, 0],
            "latency_sum": 0.5,
        }
    }
    entry = sample(row, (1.25, 4096), now=100.0)
    assert entry == {
        "t": 100.0,
        "elapsed": 4.0,
        "records": 120,
        "invocations": 5,
        "latency_sum": 0.5,
        "cpu": 1.25,
        "rss": 4096,
    }
    assert "cpu" not in sample(row, None, now=100.0)


def test_rates_use_the_jobs_own_clock_and_mean_latency_per_interval() -> None:
    series = [
        _sample(10.0, 1.0, 0, 0, 0.0, cpu=1.0, rss=2**20),
        # sampled 3 s later on the wall clock, but the heartbeat covered 2 s of work
        _sample(13.0, 3.0, 200, 10, 0.5, cpu=2.5, rss=3 * 2**20),
    ]
    [point] = points(series)
    assert point.at == 13.0
    assert point.records_per_second == pytest.approx(100.0)
    assert point.latency_ms == pytest.approx(50.0)
    assert point.cpu_percent == pytest.approx(50.0)  # 1.5 CPU seconds over 3 s of wall time
    assert point.memory_mb == pytest.approx(3.0)


def test_no_invocations_means_no_latency_and_a_repeated_heartbeat_is_skipped() -> None:
    series = [
        _sample(10.0, 1.0, 5, 2, 0.1),
        _sample(11.0, 1.0, 5, 2, 0.1),  # the same heartbeat seen twice
        _sample(12.0, 2.0, 5, 2, 0.1),
    ]
    [point] = points(series)
    assert point.records_per_second == 0.0
    assert point.latency_ms is None
    assert point.cpu_percent is None and point.memory_mb is None


def test_a_replaced_model_process_never_gives_negative_cpu() -> None:
    series = [
        _sample(0.0, 0.0, 0, 0, 0.0, cpu=9.0, rss=1),
        _sample(1.0, 1.0, 1, 1, 0.0, cpu=0.5, rss=1),
    ]
    assert points(series)[0].cpu_percent == 0.0


def test_a_resumed_runs_restarted_clock_starts_a_new_baseline() -> None:
    series = [
        _sample(0.0, 50.0, 500, 5, 1.0),
        _sample(5.0, 1.0, 10, 1, 0.1),  # a resumed run: counters and clock start again
        _sample(6.0, 2.0, 20, 2, 0.2),
    ]
    [point] = points(series)
    assert point.records_per_second == pytest.approx(10.0)


def test_cpu_is_measured_over_a_window_long_enough_for_clock_ticks() -> None:
    # 10 ms ticks land unevenly in half-second steps; the window evens them out.
    series = [_sample(t / 2, t / 2, t, t, 0.0, cpu=0.01 * (t // 2), rss=1) for t in range(12)]
    rates = [point.cpu_percent for point in points(series)[4:]]
    assert rates == [pytest.approx(1.0)] * len(rates)  # one tick a second: 1% of a core


def test_a_long_series_is_read_from_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path))
    path = series_path("long-job")
    path.parent.mkdir(parents=True)
    lines = [orjson.dumps(_sample(t, t, t * 10, t, 0.0)) for t in range(MAX_POINTS * 3)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    samples = read_samples("long-job")
    assert len(samples) == MAX_POINTS + 1
    assert samples[-1]["t"] == MAX_POINTS * 3 - 1
    assert [s["t"] for s in samples] == list(range(MAX_POINTS * 2 - 1, MAX_POINTS * 3))


def test_records_arriving_in_pairs_still_read_as_a_steady_rate() -> None:
    # Two records every 0.2 s, sampled every 0.5 s: steps of 4 or 6, a steady 10/s.
    series = [_sample(t / 2, t / 2, int(t / 2 / 0.2) * 2, t, 0.0) for t in range(16)]
    rates = [point.records_per_second for point in points(series)[4:]]
    assert rates == [pytest.approx(10.0, abs=0.6)] * len(rates)
