"""Transform jobs on a Ray cluster of three nodes on loopback (tests/raycluster.py), reading
and writing an S3-compatible server on loopback: the same bytes as the local executor,
exact outputs when an instance's process or a whole node dies mid-job, stop and resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from batchform.engine.executors import ExecutorSettings
from batchform.engine.job import TransformOutcome
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.transformrun import TransformRun, job_dir, resume_run
from batchform.runtimes.registry import ModelReference
from batchform.service import parse_transform_request
from tests.raycluster import add_worker

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
MODELS = Path(__file__).resolve().parents[1] / "models"
RAY = ExecutorSettings("ray")
PLACED = re.compile(r"instance-(\d+): Ray actor on node \S+ \((\w+)\), pid (\d+)")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cluster(ray_cluster: Any, s3_env: str) -> Any:
    """The shared cluster, with S3 set up in this process (the actors get it from here)."""
    return ray_cluster


def put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket.removeprefix("s3://"), Key=key, Body=body)


def outputs(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` but batchform's own files (summary, ledger, parts)."""
    name = bucket.removeprefix("s3://")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix):
        for entry in page.get("Contents", []):
            relative = entry["Key"][len(prefix) :]
            if not relative.startswith("_batchform/"):
                found[relative] = s3.get_object(Bucket=name, Key=entry["Key"])["Body"].read()
    return found


def request(bucket: str, name: str, output: str, instances: int = 3, **fields: Any) -> Any:
    body: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3Uri": f"{bucket}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{bucket}/{output}/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": instances},
        "MaxPayloadInMB": 1,
        **fields,
    }
    return parse_transform_request(body)


def rows(seed: int, count: int) -> bytes:
    return b"".join(b"%d,%d,%d\n" % (seed, i, (i * 7919 + seed) % 1000) for i in range(count))


def csv_sum(data: bytes) -> bytes:
    answers = []
    for line in data.decode().splitlines():
        numbers = [int(field) for field in line.split(",")]
        answers.append(f"{sum(numbers)},{max(numbers)}\n")
    return "".join(answers).encode()


def placements(run: TransformRun) -> dict[int, tuple[str, int]]:
    """instance number -> (node id prefix, actor pid), from the job's log."""
    log = run.log_path.read_text() if run.log_path.exists() else ""
    return {int(m[1]): (m[2], int(m[3])) for m in PLACED.finditer(log)}


def in_background(run: TransformRun) -> tuple[threading.Thread, list[TransformOutcome]]:
    outcomes: list[TransformOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run.run()), daemon=True)
    worker.start()
    return worker, outcomes


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def committed(name: str) -> set[str]:
    path = job_dir(name) / "ledger.jsonl"
    if not path.exists():
        return set()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return {line["key"] for line in lines if line.get("event") == "object"}


def leftovers(name: str) -> list[int]:
    """Processes still working in one of the job's instance workspaces on the nodes."""
    prefix = os.path.join(tempfile.gettempdir(), f"batchform-{name}-instance-")
    found = []
    for process in psutil.process_iter(["cwd"]):
        if (process.info.get("cwd") or "").startswith(prefix):
            found.append(process.pid)
    return found


def job_actors(name: str) -> list[str]:
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    return [actor["name"] for actor in named if actor["name"].startswith(f"{name}/")]


def test_three_instances_on_three_nodes_give_the_local_executor_s_bytes(
    cluster: Any, s3_client: Any, s3_bucket: str
) -> None:
    inputs = {f"in/part-{i}.csv": rows(i, 400 + 97 * i) for i in range(7)}
    inputs["in/deep/big.csv"] = rows(99, 160_000)  # ~2 MB: cut in three byte ranges
    put(s3_client, s3_bucket, inputs)
    model = ModelReference(image=str(HANDLERS / "csv_sum"))
    split = {"Environment": {"BATCHFORM_SPLIT_OBJECTS_OVER_MB": "1"}}
    runs = {}
    for executor in ("local", "ray"):
        job = request(s3_bucket, f"same-{executor}", executor, **split)
        run = TransformRun(job, model, executor=ExecutorSettings(executor))
        assert run.run().status is JobStatus.COMPLETED
        runs[executor] = run

    local, remote = outputs(s3_client, s3_bucket, "local/"), outputs(s3_client, s3_bucket, "ray/")
    assert remote == local
    assert local == {f"{key[3:]}.out": csv_sum(data) for key, data in inputs.items()}
    log = runs["ray"].log_path.read_text()
    assert len({node for node, _ in placements(runs["ray"]).values()}) == 3  # one a node
    for field in ("objects_done", "records", "batches", "bytes_read", "bytes_written"):
        assert getattr(runs["ray"].progress.snapshot(), field) == getattr(
            runs["local"].progress.snapshot(), field
        ), field
    assert runs["ray"].progress.snapshot().objects_done == 10  # 7 objects and 3 parts
    assert "[instance-2]" in log  # the model's own lines, in its instance's stream


# Two kinds of model that take 0.3 s a request: a Python handler, and a process container
# (tests/models/echo) whose process does not end with its parent, so what a lost actor
# leaves behind must be swept.
SLOW = {
    "handler": (HANDLERS / "slow", {"SLOW_SECONDS": "0.3"}),
    "container": (MODELS / "echo", {"ECHO_SLEEP_MARKER": ",", "ECHO_SLEEP_SECONDS": "0.3"}),
}


def slow_job(
    s3: Any, bucket: str, name: str, kind: str = "handler", objects: int = 24
) -> tuple[TransformRun, dict[str, bytes]]:
    """A job of `objects` small objects, one request each, on a slow model."""
    inputs = {f"in/k{i:02d}.csv": rows(i, 20) for i in range(objects)}
    put(s3, bucket, inputs)
    image, environment = SLOW[kind]
    job = request(bucket, name, "out", MaxConcurrentTransforms=1, Environment=environment)
    run = TransformRun(job, ModelReference(image=str(image)), executor=RAY)
    return run, {f"{key[3:]}.out": data for key, data in inputs.items()}


def shard_keys(keys: list[str], instance: int, count: int = 3) -> set[str]:
    return set(sorted(keys)[instance - 1 :: count])


def assert_exact(run: TransformRun, s3: Any, bucket: str, expected: dict[str, bytes]) -> None:
    assert outputs(s3, bucket, "out/") == expected
    totals = run.progress.snapshot()
    assert totals.objects_done == len(expected)
    assert totals.records == sum(body.count(b"\n") for body in expected.values())
    assert totals.bytes_read == totals.bytes_written == sum(map(len, expected.values()))


@pytest.mark.parametrize("kind", ["handler", "container"])
def test_an_instance_killed_mid_job_is_replaced_and_the_output_stays_exact(
    cluster: Any, s3_client: Any, s3_bucket: str, kind: str
) -> None:
    run, expected = slow_job(s3_client, s3_bucket, "killed", kind)
    worker, outcomes = in_background(run)
    victims = shard_keys([f"in/{key[:-4]}" for key in expected], 2)
    wait_for(lambda: bool(committed("killed") & {key[3:] for key in victims}))
    _, pid = placements(run)[2]
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    worker.join(120)

    assert outcomes[0].status is JobStatus.COMPLETED
    assert_exact(run, s3_client, s3_bucket, expected)
    log = run.log_path.read_text()
    assert re.search(r"instance-2 was lost: .*; \d+ of its 8 work unit\(s\) will run again", log)
    assert "instance-2: replaced" in log
    ledger = [
        orjson.loads(line)
        for line in (job_dir("killed") / "ledger.jsonl").read_bytes().splitlines()
    ]
    keys = [line["key"] for line in ledger if line["event"] == "object"]
    assert sorted(keys) == sorted(key[:-4] for key in expected)  # each committed once
    wait_for(lambda: leftovers("killed") == [], timeout=20)


def test_a_node_lost_mid_job_leaves_its_work_to_the_other_nodes(
    cluster: Any, s3_client: Any, s3_bucket: str
) -> None:
    run, expected = slow_job(s3_client, s3_bucket, "node-lost", "container")
    worker, outcomes = in_background(run)
    wait_for(lambda: len(placements(run)) == 3)
    head = cluster.head_node.node_id
    instance, (node_prefix, _) = next(
        (number, where)
        for number, where in placements(run).items()
        if not head.startswith(where[0])
    )
    victims = {key[3:] for key in shard_keys([f"in/{k[:-4]}" for k in expected], instance)}
    wait_for(lambda: bool(committed("node-lost") & victims))
    node = next(n for n in cluster.worker_nodes if n.node_id.startswith(node_prefix))
    try:
        cluster.remove_node(node, allow_graceful=False)
        worker.join(120)
    finally:
        add_worker(cluster)

    assert outcomes[0].status is JobStatus.COMPLETED
    assert_exact(run, s3_client, s3_bucket, expected)
    log = run.log_path.read_text()
    assert f"instance-{instance} was lost" in log
    assert re.search(r"instance-\d takes \d+ unit\(s\) of the lost one", log)


def test_stop_ends_the_job_on_every_node_and_resume_finishes_it(
    cluster: Any, s3_client: Any, s3_bucket: str
) -> None:

    run, expected = slow_job(s3_client, s3_bucket, "stopped")
    worker, outcomes = in_background(run)
    wait_for(lambda: len(committed("stopped")) >= 3)
    run.stop.set()
    worker.join(60)

    assert outcomes[0].status is JobStatus.STOPPED
    written = outputs(s3_client, s3_bucket, "out/")
    assert 3 <= len(written) < len(expected)
    assert all(expected[key] == body for key, body in written.items())  # nothing partial
    wait_for(lambda: job_actors("stopped") == [], timeout=20)
    wait_for(lambda: leftovers("stopped") == [], timeout=20)

    again = resume_run("stopped", executor=RAY)
    assert again.run().status is JobStatus.COMPLETED
    assert again.skipped == len(written)
    assert outputs(s3_client, s3_bucket, "out/") == expected


def test_a_local_path_is_refused_on_a_cluster_of_several_nodes(
    cluster: Any, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"1,2\n")
    job = parse_transform_request(
        {
            "TransformJobName": "local-paths",
            "ModelName": "model",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3Uri": str(tmp_path / "in")}},
                "ContentType": "text/csv",
            },
            "TransformOutput": {"S3OutputPath": str(tmp_path / "out")},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        }
    )
    run = TransformRun(job, ModelReference(image=str(HANDLERS / "csv_sum")), executor=RAY)
    outcome = run.run()
    assert outcome.status is JobStatus.FAILED
    assert re.fullmatch(
        r"input '.*/in/a.csv' is a path on this machine, but the job's instances run on a Ray "
        r"cluster of several machines, .* listed in BATCHFORM_SHARED_PATHS",
        outcome.failure_reason or "",
    )
    assert [p.name for p in (tmp_path / "out").rglob("*.out")] == []


def test_more_instances_than_the_cluster_holds_fail_saying_what_is_missing(
    cluster: Any, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("BATCHFORM_RAY_PLACEMENT_TIMEOUT", "6")  # it says so after 5 s
    put(s3_client, s3_bucket, {f"in/k{i}.csv": rows(i, 5) for i in range(4)})
    job = request(s3_bucket, "too-big", "out", instances=4)  # three nodes hold one each
    run = TransformRun(job, ModelReference(image=str(HANDLERS / "csv_sum")), executor=RAY)
    outcome = run.run()
    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == (
        "the Ray cluster could not place 1 of 4 instance(s) (2 CPU, 8 GiB each) within 6 s; "
        "it has 6 CPU, 25.5 GiB in all. Lower InstanceCount, choose a smaller InstanceType "
        "or set BATCHFORM_INSTANCE_CPUS / BATCHFORM_INSTANCE_MEMORY_MB"
    )
    assert "waiting up to 6 s for the cluster to place 1 instance(s)" in run.log_path.read_text()
    wait_for(lambda: not job_actors("too-big"))  # the three it placed are gone
    assert outputs(s3_client, s3_bucket, "out/") == {}


def test_the_cli_runs_a_job_on_the_cluster(
    cluster: Any, s3_client: Any, s3_bucket: str, home: Path
) -> None:
    inputs = {f"in/part-{i}.csv": rows(i, 50) for i in range(3)}
    put(s3_client, s3_bucket, inputs)
    command = [
        *(sys.executable, "-m", "batchform.cli", "transform", "--name", "from-cli"),
        *("--model", str(HANDLERS / "csv_sum"), "--input", f"{s3_bucket}/in/"),
        *("--output", f"{s3_bucket}/cli/", "--content-type", "text/csv"),
        *("--split-type", "Line", "--assemble-with", "Line", "--instances", "3"),
        *("--executor", "ray", "--ray-address", cluster.client_address),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert outputs(s3_client, s3_bucket, "cli/") == {
        f"{key[3:]}.out": csv_sum(data) for key, data in inputs.items()
    }
    log = (home / "jobs" / "from-cli" / "log").read_text()
    assert "starting 3 instance(s) on the ray executor (2 CPU, 8 GiB each)" in log
