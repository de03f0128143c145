"""check-model's checks against an in-process MockRuntime: no processes, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchform.errors import ModelError, RuntimeStartError
from batchform.runtimes.base import ExecutionParameters, Runtime, RuntimeContext
from batchform.runtimes.check import (
    CheckOptions,
    CheckReport,
    Outcome,
    count_records,
    read_sample,
    run_checks,
)
from batchform.runtimes.mock import Answer, MockRuntime

SAMPLE = b"".join(b"%d,%d\n" % (i, i * i) for i in range(100))
CSV = CheckOptions(content_type="text/csv", single_records=3)


def checked(
    answer: Answer,
    sample: bytes = SAMPLE,
    options: CheckOptions = CSV,
    parameters: ExecutionParameters | None = None,
) -> tuple[CheckReport, MockRuntime]:
    runtime = MockRuntime(answer, parameters)
    report = CheckReport(model="mock", kind="mock")
    run_checks(lambda context: runtime, sample, options, report, workspace="/nonexistent")
    return report, runtime


def outcomes(report: CheckReport) -> dict[str, Outcome]:
    return {result.name: result.outcome for result in report.results}


def test_a_well_behaved_model_passes_every_check() -> None:
    report, runtime = checked(lambda payload: payload)

    assert report.passed
    assert outcomes(report) == {
        "start": Outcome.PASS,
        "GET /ping": Outcome.INFO,  # nothing to ping in-process
        "GET /execution-parameters": Outcome.INFO,
        "SingleRecord x3": Outcome.PASS,
        "MultiRecord": Outcome.PASS,
        "stop": Outcome.PASS,
    }
    assert runtime.payloads == [b"0,0\n", b"1,1\n", b"2,4\n", SAMPLE]
    assert runtime.stopped


def test_a_model_that_adds_a_header_row_fails_both_record_checks() -> None:
    report, _ = checked(lambda payload: b"prediction\n" + payload)

    assert not report.passed
    single, multi = (r for r in report.results if "Record" in r.name)
    assert single.outcome is multi.outcome is Outcome.FAIL
    assert single.detail.startswith("record 0: 1 record(s) in, 2 out")
    assert multi.detail.startswith("records 0-99: 100 record(s) in, 101 out")


def test_a_last_line_without_newline_still_counts_once() -> None:
    report, _ = checked(lambda payload: payload.rstrip(b"\n"))

    assert report.passed


def test_a_model_error_is_the_checks_failure() -> None:
    def fail(payload: bytes) -> bytes:
        raise ModelError(500, "boom")

    report, _ = checked(fail)

    multi = next(r for r in report.results if r.name == "MultiRecord")
    assert (multi.outcome, multi.detail) == (Outcome.FAIL, "model returned HTTP status 500: boom")


def test_the_models_payload_limit_decides_the_multirecord_payload() -> None:
    sample = b"x" * 700_000 + b"\n" + b"y" * 700_000 + b"\n"
    report, runtime = checked(
        lambda payload: payload, sample, parameters=ExecutionParameters(max_payload_in_mb=1)
    )

    assert report.passed
    assert runtime.payloads[-1] == b"x" * 700_000 + b"\n"  # the second line would not fit
    said = next(r for r in report.results if r.name == "GET /execution-parameters")
    assert said.detail == "the model says MaxPayloadInMB=1"


def test_other_content_types_are_sent_whole_and_not_counted() -> None:
    options = CheckOptions(content_type="application/json")
    report, runtime = checked(lambda payload: b"{}", b'{"a": [1, 2]}', options)

    assert report.passed
    assert runtime.payloads == [b'{"a": [1, 2]}']
    assert "records are not counted" in report.results[-2].detail


def test_a_model_that_cannot_start_is_reported_and_stopped() -> None:
    class Broken(MockRuntime):
        def start(self) -> None:
            raise RuntimeStartError("model did not answer /ping within 1 s")

    runtime = Broken()
    report = CheckReport(model="broken", kind="mock")
    run_checks(lambda context: runtime, SAMPLE, CSV, report, "/nonexistent")

    assert [(r.name, r.outcome) for r in report.results] == [("start", Outcome.FAIL)]
    assert "did not answer /ping" in report.results[0].detail
    assert runtime.stopped and not report.passed


def test_an_empty_sample_fails() -> None:
    report, _ = checked(lambda payload: payload, b"")

    assert outcomes(report)["sample"] is Outcome.FAIL


@pytest.mark.parametrize(
    ("body", "records"), [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2)]
)
def test_count_records(body: bytes, records: int) -> None:
    assert count_records(body) == records


def test_read_sample_keeps_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    path.write_bytes(b"aaaa\nbbbb\ncccc\n")

    assert read_sample(path, limit_bytes=12) == b"aaaa\nbbbb\n"
    assert read_sample(path, limit_bytes=100) == b"aaaa\nbbbb\ncccc\n"
    assert read_sample(path, limit_bytes=2) == b"aaaa\n"  # too long: kept whole, judged later


def test_runtime_context_is_a_private_workspace() -> None:
    seen: list[RuntimeContext] = []

    def factory(context: RuntimeContext) -> Runtime:
        seen.append(context)
        return MockRuntime()

    run_checks(factory, SAMPLE, CSV, CheckReport("m", "mock"), "/tmp/check-here")

    assert seen[0].workspace == "/tmp/check-here" and seen[0].workers == 1


def test_a_model_that_cannot_be_made_is_a_failed_start() -> None:
    def factory(context: RuntimeContext) -> Runtime:
        raise RuntimeStartError("handler program 'inference.py' not found")

    report = CheckReport("m", "handler")
    run_checks(factory, SAMPLE, CSV, report, "/nonexistent")

    assert [(r.name, r.outcome) for r in report.results] == [("start", Outcome.FAIL)]
