"""Record-level isolation: good records written in order, bad ones dead-lettered, budgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchform.engine.job import TransformJob
from batchform.errors import ModelConnectionError, ModelError
from batchform.jobs.lifecycle import JobStatus
from batchform.runtimes.base import (
    InvocationRequest,
    Isolated,
    IsolationPlan,
    Runtime,
    RuntimeContext,
)
from batchform.runtimes.mock import MockRuntime
from tests.unit.test_engine import outputs, request, run, write

ISOLATE = {"BATCHFORM_ON_ERROR": "isolate"}


def rejects_bad(payload: bytes) -> bytes:
    if b"bad" in payload:
        raise ModelError(500, "cannot score a bad record")
    return payload.upper()


def rows_with_bad(count: int, bad: set[int]) -> tuple[bytes, bytes]:
    rows = [b"bad-%d\n" % i if i in bad else b"row-%d\n" % i for i in range(count)]
    good = b"".join(r.upper() for i, r in enumerate(rows) if i not in bad)
    return b"".join(rows), good


def dead_letters(tmp_path: Path, key: str) -> list[dict[str, Any]]:
    path = tmp_path / "out" / "_batchform" / "errors" / f"{key}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_good_records_are_written_in_order_and_bad_ones_dead_lettered(tmp_path: Path) -> None:
    bad = {3, 4, 250, 999}
    data, good = rows_with_bad(1000, bad)
    write(tmp_path, "nested/a.csv", data)
    outcome = run(
        tmp_path,
        rejects_bad,
        MaxConcurrentTransforms=3,
        ModelClientConfig={"InvocationsMaxRetries": 0},
        Environment={**ISOLATE, "BATCHFORM_MAX_ERRORS": "1%"},
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outputs(tmp_path)["nested/a.csv.out"] == good
    letters = dead_letters(tmp_path, "nested/a.csv")
    assert [letter["record_index"] for letter in letters] == sorted(bad)
    offsets = [data.index(b"bad-%d\n" % i) for i in sorted(bad)]
    assert [letter["byte_offset"] for letter in letters] == offsets
    assert letters[0]["record"] == "bad-3\n" and letters[0]["status"] == 500
    assert letters[0]["message"] == "cannot score a bad record"
    assert outcome.progress.records == 996


def test_budget_exceeded_fails_the_job_with_the_counts(tmp_path: Path) -> None:
    data, good = rows_with_bad(100, {1, 2, 3})
    write(tmp_path, "a.csv", data)
    outcome = run(
        tmp_path,
        rejects_bad,
        Environment={**ISOLATE, "BATCHFORM_MAX_ERRORS": "2"},
        ModelClientConfig={"InvocationsMaxRetries": 0},
    )
    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason is not None
    assert "3 of 100 records failed" in outcome.failure_reason
    assert "2 record(s)" in outcome.failure_reason
    assert outputs(tmp_path)["a.csv.out"] == good


def test_default_budget_is_zero(tmp_path: Path) -> None:
    data, _ = rows_with_bad(10, {5})
    write(tmp_path, "a.csv", data)
    outcome = run(
        tmp_path, rejects_bad, Environment=ISOLATE, ModelClientConfig={"InvocationsMaxRetries": 0}
    )
    assert outcome.status is JobStatus.FAILED


def test_single_record_strategy_and_assemble_line(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"x\nbad\ny")
    outcome = run(
        tmp_path,
        lambda p: rejects_bad(p).strip(),
        BatchStrategy="SingleRecord",
        Environment={**ISOLATE, "BATCHFORM_MAX_ERRORS": "50%"},
        ModelClientConfig={"InvocationsMaxRetries": 0},
    )
    assert outcome.status is JobStatus.COMPLETED
    assert outputs(tmp_path)["a.csv.out"] == b"X\nY\n"


def test_without_isolation_sagemaker_semantics_hold(tmp_path: Path) -> None:
    data, _ = rows_with_bad(10, {5})
    write(tmp_path, "a.csv", data)
    outcome = run(tmp_path, rejects_bad, ModelClientConfig={"InvocationsMaxRetries": 0})
    assert outcome.status is JobStatus.FAILED
    assert outputs(tmp_path) == {}


class LostWhileIsolating(MockRuntime):
    """Offers isolation next to the model, but its model process dies doing it."""

    def __init__(self) -> None:
        super().__init__(rejects_bad)
        self.isolations = 0

    def isolate(self, request: InvocationRequest, plan: IsolationPlan) -> Isolated | None:
        self.isolations += 1
        raise ModelConnectionError("handler worker process exited with code 9")


def test_when_the_runtime_cannot_isolate_the_engine_tests_the_pieces(tmp_path: Path) -> None:
    bad = {7, 8, 500}
    data, good = rows_with_bad(2000, bad)
    write(tmp_path, "a.csv", data)
    made: list[LostWhileIsolating] = []

    def factory(context: RuntimeContext) -> Runtime:
        made.append(LostWhileIsolating())
        return made[-1]

    body = {"Environment": {**ISOLATE, "BATCHFORM_MAX_ERRORS": "1%"}}
    job = TransformJob(
        request(tmp_path, ModelClientConfig={"InvocationsMaxRetries": 0}, **body),
        factory,
        str(tmp_path / "ws"),
        log=lambda line: None,
    )
    outcome = job.run()
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outputs(tmp_path)["a.csv.out"] == good
    assert [e["record_index"] for e in dead_letters(tmp_path, "a.csv")] == sorted(bad)
    assert made[0].isolations >= 1


def test_while_isolating_only_a_lone_record_is_retried(tmp_path: Path) -> None:
    data, good = rows_with_bad(400, {5, 300})
    write(tmp_path, "a.csv", data)
    calls: list[bytes] = []

    def counting(payload: bytes) -> bytes:
        calls.append(payload)
        return rejects_bad(payload)

    outcome = run(
        tmp_path,
        counting,
        ModelClientConfig={"InvocationsMaxRetries": 2},
        Environment={**ISOLATE, "BATCHFORM_MAX_ERRORS": "1%"},
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outputs(tmp_path)["a.csv.out"] == good
    tries = {payload: calls.count(payload) for payload in calls}
    assert tries[data] == 3  # the whole batch, as SageMaker retries it
    assert tries[b"bad-5\n"] == tries[b"bad-300\n"] == 3  # each bad record before it is dead
    groups = [payload for payload in tries if payload != data and payload.count(b"\n") > 1]
    assert groups and all(tries[payload] == 1 for payload in groups)


def test_isolation_filters_each_record_as_a_clean_run_does(tmp_path: Path) -> None:
    """InputFilter, join and OutputFilter around the pieces: the good records' output is
    what a run without bad records gives them, and the dead letters hold the input."""
    rows = [
        b"%d,%s,%d\n" % (i, b"bad" if i in {2, 40, 41, 700} else b"ok", i * 7) for i in range(900)
    ]
    data = b"".join(rows)
    write(tmp_path, "a.csv", data)
    processing = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    outcome = run(
        tmp_path,
        rejects_bad,
        DataProcessing=processing,
        TransformOutput={"Accept": "text/csv"},
        ModelClientConfig={"InvocationsMaxRetries": 0},
        Environment={**ISOLATE, "BATCHFORM_MAX_ERRORS": "1%"},
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    good = [row for row in rows if b",bad," not in row]
    expected = b"".join(
        b"%s,%s\n" % (row.split(b",")[0], row.split(b",")[2].strip().upper()) for row in good
    )
    assert outputs(tmp_path)["a.csv.out"] == expected
    letters = dead_letters(tmp_path, "a.csv")
    assert [letter["record_index"] for letter in letters] == [2, 40, 41, 700]
    assert letters[0]["record"] == "2,bad,14\n"
