"""A running job's view: figures from heartbeat counters, findings from its data-log."""

from __future__ import annotations

import pytest

from batchform.jobs.progressview import LogFindings, progress_figures


def test_figures_add_rates_eta_and_the_fraction_read() -> None:
    figures = progress_figures(
        {
            "elapsed": 4.0,
            "records": 400,
            "bytes_read": 1000,
            "bytes_total": 3000,
            "latency_buckets": [1],
        }
    )
    assert figures["records_per_second"] == pytest.approx(100.0)
    assert figures["bytes_per_second"] == pytest.approx(250.0)
    assert figures["eta_seconds"] == pytest.approx(8.0)
    assert figures["fraction"] == pytest.approx(1 / 3)
    assert "latency_buckets" not in figures


def test_a_job_that_has_not_reported_has_no_eta_or_fraction() -> None:
    figures = progress_figures({})
    assert figures["eta_seconds"] is None and figures["fraction"] is None
    assert figures["records_per_second"] == 0.0


def test_the_log_names_failed_objects_and_counts_retries_per_instance() -> None:
    found = LogFindings()
    for line in (
        "job-1/instance-1: MaxConcurrentTransforms=1, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD",
        "job-1/instance-2: retry 1 after: model returned HTTP status 503: busy",
        "job-1/instance-2: retry 2 after: connection refused",
        "job-1/instance-1: failed to transform 'dir/b.csv': model returned HTTP status 500: boom",
        "instance-1: failed to transform 'c.csv': too large",
    ):
        found.read(line)
    assert found.failures == {
        "dir/b.csv": "model returned HTTP status 500: boom",
        "c.csv": "too large",
    }
    [retries] = found.retries.values()
    assert (retries.instance, retries.retries, retries.last_error) == (
        "instance-2",
        2,
        "connection refused",
    )
