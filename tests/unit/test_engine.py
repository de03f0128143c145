"""The engine over local files with an in-process model: order, failures, retries, settings."""

from __future__ import annotations

import gzip
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from batchform.engine.job import TransformJob, TransformOutcome, shard_by_key
from batchform.errors import ModelConnectionError, ModelError, ModelTimeoutError
from batchform.jobs.lifecycle import JobStatus
from batchform.runtimes.base import ExecutionParameters, Runtime, RuntimeContext
from batchform.runtimes.mock import Answer, MockRuntime
from batchform.service import parse_transform_request
from batchform.spec.enums import BatchStrategy
from batchform.storage import InputObject


def request(tmp_path: Path, **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "TransformJobName": "job",
        "ModelName": "model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3Uri": str(tmp_path / "in") + "/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": str(tmp_path / "out"), "AssembleWith": "Line"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return parse_transform_request(body)


def run(
    tmp_path: Path,
    answer: Answer = lambda p: p,
    runtimes: list[MockRuntime] | None = None,
    parameters: ExecutionParameters | None = None,
    **overrides: Any,
) -> TransformOutcome:
    made = runtimes if runtimes is not None else []

    def factory(context: RuntimeContext) -> Runtime:
        runtime = MockRuntime(answer, parameters)
        made.append(runtime)
        return runtime

    job = TransformJob(
        request(tmp_path, **overrides), factory, str(tmp_path / "ws"), log=lambda line: None
    )
    return job.run()


def write(tmp_path: Path, key: str, data: bytes) -> None:
    path = tmp_path / "in" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def outputs(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "out"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_each_object_gets_its_out_file_with_records_in_order(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i * i) for i in range(3000))
    write(tmp_path, "a.csv", rows)
    write(tmp_path, "nested/deep/b.csv", b"1,2\n3,4\n")
    write(tmp_path, "empty.csv", b"")

    def slow_sometimes(payload: bytes) -> bytes:
        time.sleep(random.random() / 1000)  # responses complete out of order
        return payload

    outcome = run(
        tmp_path,
        slow_sometimes,
        MaxConcurrentTransforms=4,
        MaxPayloadInMB=1,
        BatchStrategy="SingleRecord",
    )
    assert outcome.status is JobStatus.COMPLETED
    assert outputs(tmp_path) == {
        "a.csv.out": rows,
        "nested/deep/b.csv.out": b"1,2\n3,4\n",
        "empty.csv.out": b"",
    }
    assert outcome.progress.records == 3002


def test_assemble_line_adds_exactly_one_newline(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"1\n2\n3")
    run(tmp_path, lambda p: b"[" + p.strip() + b"]", BatchStrategy="SingleRecord")
    assert outputs(tmp_path)["a.csv.out"] == b"[1]\n[2]\n[3]\n"


def test_assemble_none_concatenates_bytes(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"1\n2\n3")
    run(
        tmp_path,
        lambda p: p.strip(),
        BatchStrategy="SingleRecord",
        TransformOutput={"AssembleWith": "None"},
    )
    assert outputs(tmp_path)["a.csv.out"] == b"123"


def test_failed_object_has_no_output_and_the_others_complete(tmp_path: Path) -> None:
    write(tmp_path, "good.csv", b"1\n2\n")
    write(tmp_path, "bad.csv", b"1\nBOOM\n")
    write(tmp_path, "later.csv", b"3\n")

    def answer(payload: bytes) -> bytes:
        if b"BOOM" in payload:
            raise ModelError(500, "cannot parse BOOM")
        return payload

    outcome = run(tmp_path, answer, ModelClientConfig={"InvocationsMaxRetries": 1})
    assert outcome.status is JobStatus.FAILED
    assert set(outputs(tmp_path)) == {"good.csv.out", "later.csv.out"}
    assert outcome.failure_reason is not None
    assert "bad.csv" in outcome.failure_reason and "500" in outcome.failure_reason
    assert "cannot parse BOOM" in outcome.failure_reason
    assert outcome.progress.retries == 1


def test_client_errors_are_not_retried_and_timeouts_are(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"1\n")
    calls: list[int] = []

    def unsupported(payload: bytes) -> bytes:
        calls.append(1)
        raise ModelError(415, "unsupported")

    assert run(tmp_path, unsupported).status is JobStatus.FAILED
    assert len(calls) == 1
    attempts: list[int] = []

    def flaky(payload: bytes) -> bytes:
        attempts.append(1)
        if len(attempts) < 3:
            raise ModelTimeoutError(1)
        return payload

    outcome = run(tmp_path, flaky)
    assert outcome.status is JobStatus.COMPLETED and len(attempts) == 3


def test_record_over_the_payload_limit_fails_that_object_naming_where(tmp_path: Path) -> None:
    write(tmp_path, "big.csv", b"1\n" + b"x" * (2 * 1024 * 1024) + b"\n")
    write(tmp_path, "ok.csv", b"2\n")
    outcome = run(tmp_path, MaxPayloadInMB=1)
    assert outcome.status is JobStatus.FAILED
    assert set(outputs(tmp_path)) == {"ok.csv.out"}
    reason = outcome.failure_reason or ""
    assert "big.csv" in reason and "record 1" in reason and "byte offset 2" in reason


def test_gzip_inputs_are_decompressed_while_streaming(tmp_path: Path) -> None:
    rows = b"".join(b"%d\n" % i for i in range(50000))
    write(tmp_path, "a.csv.gz", gzip.compress(rows))
    outcome = run(tmp_path, TransformInput={"CompressionType": "Gzip"})
    assert outcome.status is JobStatus.COMPLETED
    assert outputs(tmp_path) == {"a.csv.gz.out": rows}


def test_instances_each_get_their_own_runtime_and_shard(tmp_path: Path) -> None:
    for index in range(5):
        write(tmp_path, f"part-{index}.csv", b"%d\n" % index)
    runtimes: list[MockRuntime] = []
    outcome = run(tmp_path, runtimes=runtimes, TransformResources={"InstanceCount": 2})
    assert outcome.status is JobStatus.COMPLETED
    assert len(runtimes) == 2 and all(r.started and r.stopped for r in runtimes)
    assert sorted(len(r.payloads) for r in runtimes) == [2, 3]
    assert len(outputs(tmp_path)) == 5


def test_shard_by_key_is_round_robin_in_key_order() -> None:
    objects = [InputObject(f"u{i}", f"k{i}", 1) for i in range(5)]
    shards = shard_by_key(objects, 2)
    assert [[o.key for o in shard] for shard in shards] == [["k0", "k2", "k4"], ["k1", "k3"]]


def test_execution_parameters_apply_when_the_request_is_silent(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"1\n2\n")
    params = ExecutionParameters(
        max_concurrent_transforms=3, batch_strategy="SINGLE_RECORD", max_payload_in_mb=2
    )
    runtimes: list[MockRuntime] = []
    outcome = run(tmp_path, runtimes=runtimes, parameters=params)
    assert outcome.settings is not None
    assert (
        outcome.settings.max_concurrent_transforms,
        outcome.settings.max_payload_in_mb,
        outcome.settings.batch_strategy,
    ) == (3, 2, BatchStrategy.SINGLE_RECORD)
    assert runtimes[0].payloads == [b"1\n", b"2\n"]
    outcome = run(
        tmp_path, parameters=params, BatchStrategy="MultiRecord", MaxConcurrentTransforms=1
    )
    assert outcome.settings is not None
    assert outcome.settings.batch_strategy is BatchStrategy.MULTI_RECORD
    assert outcome.settings.max_concurrent_transforms == 1


def run_until_stopped(tmp_path: Path, answer: Answer, stop: threading.Event) -> TransformOutcome:
    """A SingleRecord job whose model `answer`s; `answer` sets `stop` when it wants."""
    job = TransformJob(
        request(tmp_path, BatchStrategy="SingleRecord"),
        lambda context: MockRuntime(answer),
        str(tmp_path / "ws"),
        log=lambda line: None,
        stop=stop,
    )
    return job.run()


def test_stop_leaves_no_partial_output(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"".join(b"%d\n" % i for i in range(200)))
    stop = threading.Event()

    def answer(payload: bytes) -> bytes:
        stop.set()
        time.sleep(0.05)
        return payload

    outcome = run_until_stopped(tmp_path, answer, stop)
    assert outcome.status is JobStatus.STOPPED
    assert not (tmp_path / "out").exists() or outputs(tmp_path) == {}
    leftovers = list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_requests_cut_short_by_a_stop_are_the_stop_not_failures(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", b"".join(b"%d\n" % i for i in range(50)))
    write(tmp_path, "b.csv", b"".join(b"%d\n" % i for i in range(50)))
    stop = threading.Event()

    def answer(payload: bytes) -> bytes:
        stop.set()  # the job is stopped, and stopping tears the model down under us
        raise ModelConnectionError("handler worker process exited with code 0")

    outcome = run_until_stopped(tmp_path, answer, stop)
    assert outcome.status is JobStatus.STOPPED
    assert (outcome.progress.objects_failed, outcome.progress.errors) == (0, 0)


@pytest.mark.parametrize("strategy", ["SingleRecord", "MultiRecord"])
def test_many_objects_with_concurrency_keep_exact_outputs(tmp_path: Path, strategy: str) -> None:
    expected = {}
    for index in range(12):
        rows = b"".join(b"%d-%d\n" % (index, i) for i in range(300 + index))
        write(tmp_path, f"k{index:02d}.csv", rows)
        expected[f"k{index:02d}.csv.out"] = rows.upper()
    outcome = run(
        tmp_path,
        lambda p: p.upper(),
        MaxConcurrentTransforms=8,
        MaxPayloadInMB=1,
        BatchStrategy=strategy,
        TransformResources={"InstanceCount": 3},
    )
    assert outcome.status is JobStatus.COMPLETED
    assert outputs(tmp_path) == expected
