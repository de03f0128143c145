"""Executors without a cluster: the registry, InstanceType resources, errors that travel,
and the scheduler taking over a lost instance's work with exact outputs and totals."""

from __future__ import annotations

import os
import pickle
import stat
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from batchform.engine.executors import ExecutorSettings, get_executor
from batchform.engine.executors.base import (
    InMemory,
    InstanceContext,
    InstanceLost,
    InstanceResources,
    PoolSpec,
    ProgressRecorder,
    RemoteError,
    Shared,
    Task,
    portable,
)
from batchform.engine.executors.resources import aws_resources, instance_resources
from batchform.engine.instance import Committed, TransformWork
from batchform.engine.job import data_processor, shard_by_key
from batchform.engine.objectrun import ObjectResult
from batchform.engine.progress import JobProgress
from batchform.engine.remote import check_reachable, machine_local, pack_folder, unpack
from batchform.engine.schedule import JobEvents, Scheduler
from batchform.errors import ConfigurationError, ModelError, StorageError
from batchform.runtimes.base import RuntimeContext
from batchform.runtimes.mock import MockRuntime
from batchform.storage import list_inputs
from tests.unit.test_engine import request

GIB = 2**30


def test_unknown_executor_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown executor 'spark' \(known: local, ray\)"):
        get_executor("spark")


def test_ray_without_its_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as if absent
    monkeypatch.delitem(sys.modules, "batchform.engine.executors.ray", raising=False)
    with pytest.raises(ConfigurationError, match=r"pip install 'batchform\[ray\]'"):
        get_executor(ExecutorSettings("ray", "ray://head:10001"))


@pytest.mark.parametrize(
    ("instance_type", "cpus", "memory_gib", "gpus"),
    [
        ("ml.m5.large", 2, 8, 0),
        ("ml.m5.xlarge", 4, 16, 0),
        ("ml.c5.4xlarge", 16, 32, 0),
        ("ml.r5.2xlarge", 8, 64, 0),
        ("ml.m5d.24xlarge", 96, 384, 0),
        ("ml.t2.medium", 2, 4, 0),
        ("ml.p3.2xlarge", 8, 61, 1),
        ("ml.p3.16xlarge", 64, 488, 8),
        ("ml.g4dn.xlarge", 4, 16, 1),
        ("ml.g5.12xlarge", 48, 192, 4),
    ],
)
def test_instance_types_reserve_what_aws_gives_them(
    instance_type: str, cpus: int, memory_gib: int, gpus: int
) -> None:
    assert aws_resources(instance_type) == InstanceResources(cpus, memory_gib * GIB, gpus)


def test_an_unknown_shape_reserves_one_cpu() -> None:
    assert aws_resources("local") == InstanceResources(1, 0)


def test_resources_are_overridden_by_the_job_then_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHFORM_INSTANCE_CPUS", "1")
    monkeypatch.setenv("BATCHFORM_INSTANCE_MEMORY_MB", "512")
    job = {"BATCHFORM_INSTANCE_CPUS": "0.5"}
    assert instance_resources("ml.m5.large", job) == InstanceResources(0.5, 512 * 2**20)


def test_a_table_of_instance_types_replaces_aws_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    table = '{"ml.m5.large": {"cpus": 1, "memory_gib": 2}}'
    monkeypatch.setenv("BATCHFORM_INSTANCE_TYPES", table)
    assert instance_resources("ml.m5.large") == InstanceResources(1, 2 * GIB)
    assert instance_resources("ml.m5.xlarge") == InstanceResources(4, 16 * GIB)


def test_a_bad_override_says_which_variable() -> None:
    with pytest.raises(ConfigurationError, match="BATCHFORM_INSTANCE_CPUS must be a number"):
        instance_resources("ml.m5.large", {"BATCHFORM_INSTANCE_CPUS": "two"})


def test_errors_that_cannot_be_unpickled_travel_as_their_message() -> None:
    error = StorageError("s3://b/k", "access denied")
    error.add_note("while reading")
    sent = pickle.loads(pickle.dumps(portable(error)))
    assert isinstance(sent, RemoteError)
    assert (str(sent), sent.kind, sent.__notes__) == (str(error), "StorageError", error.__notes__)
    plain = ConfigurationError("bad")
    assert portable(plain) is plain


def test_a_recorder_hands_over_counts_once() -> None:
    recorder = ProgressRecorder()
    recorder.add(records=3, bytes_read=10)
    recorder.add(records=2)
    recorder.record_latency(0.5)
    taken = recorder.take()
    assert taken is not None
    assert (taken.counts, taken.latencies) == ({"records": 5, "bytes_read": 10}, [0.5])
    assert recorder.take() is None


def test_paths_only_this_machine_reads_are_refused_unless_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert machine_local(str(tmp_path / "in"))
    assert machine_local("memory://bucket/in")
    assert not machine_local("s3://bucket/in")
    with pytest.raises(ConfigurationError, match="is a path on this machine"):
        check_reachable([("S3OutputPath", f"file://{tmp_path}/out")])
    monkeypatch.setenv("BATCHFORM_SHARED_PATHS", str(tmp_path))
    check_reachable([("S3OutputPath", f"file://{tmp_path}/out"), ("input", str(tmp_path))])


def test_a_shipped_model_folder_keeps_its_executables(tmp_path: Path) -> None:
    (tmp_path / "model" / "code").mkdir(parents=True)
    serve = tmp_path / "model" / "serve"
    serve.write_text("#!/bin/sh\n")
    serve.chmod(0o755)
    (tmp_path / "model" / "code" / "inference.py").write_text("x = 1\n")
    unpack(pack_folder(str(tmp_path / "model")), tmp_path / "there")
    assert (tmp_path / "there" / "code" / "inference.py").read_text() == "x = 1\n"
    assert os.stat(tmp_path / "there" / "serve").st_mode & stat.S_IXUSR


# -- the scheduler, with instances that report like remote ones and one that dies ------


class LosingPool:
    """Instances in threads that send their counts home as events (as Ray actors do);
    instance `victim` dies once it has committed its first object: what it reports after
    that never arrives, and its task fails with InstanceLost."""

    spans_machines = False

    def __init__(self, spec: PoolSpec, victim: int, room: bool) -> None:
        self.spec, self.victim, self.room = spec, victim, room
        self.lost = threading.Event()
        self.contexts = [self._context(index) for index in range(spec.count)]
        self.replaced: list[int] = []

    @property
    def count(self) -> int:
        return self.spec.count

    def _context(self, index: int) -> InstanceContext:
        recorder = ProgressRecorder()

        def emit(event: object) -> None:
            if index == self.victim and self.lost.is_set():
                return  # dead: nothing it says arrives
            self.spec.on_event(index, event)
            if index == self.victim and isinstance(event, Committed):
                self._flush(index, recorder)  # the last drain before it died
                self.lost.set()
                self.contexts[index].stop.set()

        return InstanceContext(
            index, str(Path(self.spec.workspace) / str(index)), 1, recorder, emit
        )

    def _flush(self, index: int, recorder: Any) -> None:
        counts = recorder.take()
        if counts is not None:
            self.spec.on_event(index, counts)

    def submit(self, index: int, task: Task) -> Future[Any]:
        future: Future[Any] = Future()
        context = self.contexts[index]

        def run() -> None:
            dying = index == self.victim and not self.lost.is_set()
            try:
                value = task(context)
            except BaseException as exc:
                value = exc
            if dying and self.lost.is_set():
                future.set_exception(InstanceLost(f"instance-{index + 1} was lost: killed"))
                return
            self._flush(index, context.progress)
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

        threading.Thread(target=run, daemon=True).start()
        return future

    def replace(self, index: int) -> bool:
        if self.room:
            self.replaced.append(index)
            self.victim = -1  # the replacement lives
            self.contexts[index] = self._context(index)
        return self.room

    def share(self, data: bytes) -> Shared:
        return InMemory(data)

    def stop(self) -> None:
        for context in self.contexts:
            context.stop.set()

    def close(self) -> None:
        for context in self.contexts:
            context.cleanup.close()


def _job(tmp_path: Path, objects: int, instances: int = 3) -> tuple[Any, dict[str, bytes]]:
    expected = {}
    for index in range(objects):
        rows = b"".join(b"%d,%d\n" % (index, i) for i in range(50 + index))
        path = tmp_path / "in" / f"k{index:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rows)
        expected[f"k{index:02d}.csv.out"] = rows.upper()
    job = request(tmp_path, TransformResources={"InstanceCount": instances}, MaxPayloadInMB=1)
    return job, expected


def _upper_slowly(payload: bytes) -> bytes:
    time.sleep(0.01)  # every instance still has work when the victim commits its first
    return payload.upper()


def _slow_upper(context: RuntimeContext) -> MockRuntime:
    return MockRuntime(_upper_slowly)


@pytest.mark.parametrize("room", [True, False], ids=["replacement", "survivors"])
def test_a_lost_instance_s_work_runs_again_with_exact_outputs_and_totals(
    tmp_path: Path, room: bool
) -> None:
    request, expected = _job(tmp_path, objects=12)
    units = list_inputs(str(tmp_path / "in") + "/", "S3Prefix")
    progress, lines, commits = JobProgress(), [], Counter[str]()
    events = JobEvents(progress, lines.append, lambda result, _: commits.update([result.key]))
    spec = PoolSpec("job", 3, InstanceResources(1, 0), str(tmp_path / "ws"), events, progress)
    pool = LosingPool(spec, victim=1, room=room)
    work = TransformWork(request, _slow_upper, data_processor)
    results = Scheduler(pool, work, events, threading.Event()).run(shard_by_key(units, 3))

    outputs = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert outputs == expected
    assert sorted(result.key for result in results) == sorted(unit.key for unit in units)
    assert all(result.succeeded for result in results)
    assert set(commits) == {unit.key for unit in units} and max(commits.values()) == 1
    totals = progress.snapshot()
    assert totals.records == sum(body.count(b"\n") for body in expected.values())
    assert totals.bytes_read == totals.bytes_written == sum(map(len, expected.values()))
    assert totals.objects_done == 12
    assert any("instance-2 was lost: killed" in line and "will run again" in line for line in lines)
    if room:
        assert pool.replaced == [1]
    else:
        assert any("takes" in line and "of the lost one" in line for line in lines)


def test_the_job_fails_for_lack_of_capacity_only_when_no_instance_is_left(
    tmp_path: Path,
) -> None:
    request, _ = _job(tmp_path, objects=3, instances=1)
    units = list_inputs(str(tmp_path / "in") + "/", "S3Prefix")
    progress = JobProgress()
    events = JobEvents(progress, lambda line: None)
    spec = PoolSpec("job", 1, InstanceResources(1, 0), str(tmp_path / "ws"), events, progress)
    pool = LosingPool(spec, victim=0, room=False)
    work = TransformWork(request, _slow_upper, data_processor)
    with pytest.raises(Exception, match="no instance is left to take its 2 unfinished"):
        Scheduler(pool, work, events, threading.Event()).run([units])


def test_a_model_error_still_fails_its_object_not_the_instance(tmp_path: Path) -> None:
    error = ModelError(500, "boom")
    result = ObjectResult("k", "u", "o", error=portable(error))
    assert str(pickle.loads(pickle.dumps(result)).error) == str(error)
