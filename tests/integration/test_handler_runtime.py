"""The Python handler runtime with real worker processes: restarts, timeouts, logs, start-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import crc32c
import psutil
import pytest

from batchform.errors import (
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import (
    InvocationRequest,
    InvocationResponse,
    IsolationPlan,
    RuntimeContext,
)
from batchform.runtimes.handler import HandlerRuntime, _Worker
from batchform.runtimes.handler_module import find_handler
from batchform.runtimes.spool import SPOOL_MIN_BYTES

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"


def runtime(name: str, tmp_path: Path, lines: list[str], workers: int = 2) -> HandlerRuntime:
    context = RuntimeContext("job/instance-1", str(tmp_path), {}, workers, lines.append)
    return HandlerRuntime(find_handler(str(HANDLERS / name)), context, startup_timeout=60)


def call(rt: HandlerRuntime, payload: bytes, timeout: float = 30) -> bytes:
    return rt.invoke(InvocationRequest(payload, "text/csv", "text/csv", timeout)).body


def test_workers_share_the_load_and_stop_cleanly(tmp_path: Path) -> None:
    lines: list[str] = []
    rt = runtime("misbehaving", tmp_path, lines)
    with rt:
        pids = {int(call(rt, b"PID")) for _ in range(20)}
        assert call(rt, b"1,2\n") == b"1,2\n"
    assert len(pids) == 2
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )
    assert sum("loading model" in line for line in lines) == 2


def test_a_crashed_worker_is_replaced_and_the_error_says_so(tmp_path: Path) -> None:
    rt = runtime("misbehaving", tmp_path, [], workers=1)
    with rt:
        with pytest.raises(ModelConnectionError, match="exited with code 3"):
            call(rt, b"CRASH")
        assert call(rt, b"after") == b"after"
        assert rt.restarts == 1


def test_a_hung_worker_times_out_and_is_replaced(tmp_path: Path) -> None:
    rt = runtime("misbehaving", tmp_path, [], workers=1)
    with rt:
        with pytest.raises(ModelTimeoutError):
            call(rt, b"HANG", timeout=0.5)
        assert call(rt, b"fine") == b"fine"


def test_printed_lines_reach_the_log_with_the_instance_name(tmp_path: Path) -> None:
    lines: list[str] = []
    rt = runtime("misbehaving", tmp_path, lines, workers=1)
    with rt:
        call(rt, b"PRINT")
    assert "job/instance-1: hello from the handler" in lines


def test_a_failing_model_fn_fails_start_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError, match=r"model\.bin is missing"):
        runtime("broken", tmp_path, []).start()


def spooled_call(rt: HandlerRuntime, payload: bytes) -> InvocationResponse:
    return rt.invoke(InvocationRequest(payload, "text/csv", "text/csv", 30, spool_answer=True))


def test_large_payloads_and_answers_travel_as_memfds_with_exact_bytes(tmp_path: Path) -> None:
    payload = b"".join(b"%d,%d\n" % (i, i * 3) for i in range(200_000))  # over 1 MB
    rt = runtime("misbehaving", tmp_path, [], workers=2)
    with rt:
        answers = [spooled_call(rt, payload) for _ in range(4)]
        small = spooled_call(rt, b"1,2\n")
        inline = call(rt, payload)
    for answer in answers:
        assert answer.spooled is not None and answer.body == b""
        assert answer.spooled.read() == payload
        assert answer.spooled.header() == (len(payload), crc32c.crc32c(payload), True)
        answer.spooled.close()
    assert small.spooled is None and small.body == b"1,2\n"
    assert inline == payload


def test_a_worker_dying_before_its_spooled_answer_is_replaced(tmp_path: Path) -> None:
    rt = runtime("misbehaving", tmp_path, [], workers=1)
    big = b"x" * (SPOOL_MIN_BYTES + 1)
    with rt:
        with pytest.raises(ModelConnectionError, match="exited with code 3"):
            spooled_call(rt, b"CRASH" + big)  # the payload itself went as a memfd
        answer = spooled_call(rt, big)
        assert answer.spooled is not None and answer.spooled.read() == big
        answer.spooled.close()
        assert rt.restarts == 1


def test_an_answer_whose_descriptor_never_arrives_is_a_connection_error(tmp_path: Path) -> None:
    """The worker said an answer was spooled, then died before passing the memfd."""
    parent, child = socket.socketpair()
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(9)"])
    exited.wait()
    worker = _Worker(exited, Connection(os.dup(parent.fileno())), parent)
    with Connection(child.detach()) as other_end:
        other_end.send(("spooled", "text/csv", 10, 0, True))
    rt = runtime("misbehaving", tmp_path, [])
    request = InvocationRequest(b"1\n", "text/csv", "text/csv", 5, spool_answer=True)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ModelConnectionError, match="exited with code 9"):
        rt._exchange(worker, request)
    assert set(os.listdir("/proc/self/fd")) <= before
    worker.conn.close()
    worker.sock.close()


def round_of(*payloads: bytes, timeout: float = 30) -> list[InvocationRequest]:
    return [InvocationRequest(p, "text/csv", "text/csv", timeout) for p in payloads]


def test_a_round_of_payloads_is_answered_in_order_with_errors_in_place(tmp_path: Path) -> None:
    rt = runtime("fail_on_marker", tmp_path, [], workers=1)
    with rt:
        answers = rt.invoke_many(round_of(b"1,2\n", b"FAIL\n", b"3,4\n"))
        assert rt.restarts == 0
    assert [type(a).__name__ for a in answers] == [
        "InvocationResponse",
        "ModelError",
        "InvocationResponse",
    ]
    assert isinstance(answers[1], ModelError) and answers[1].status == 500


def test_a_call_hanging_in_a_round_times_out_the_rest_and_is_replaced(tmp_path: Path) -> None:
    rt = runtime("misbehaving", tmp_path, [], workers=1)
    with rt:
        answers = rt.invoke_many(round_of(b"fine", b"HANG", b"never", timeout=0.5))
        # "fine" took no time: it was still waiting to be reported with the next ones.
        assert all(isinstance(a, ModelTimeoutError) for a in answers)
        assert call(rt, b"after") == b"after" and rt.restarts == 1


def test_a_worker_crashing_in_a_round_fails_the_rest_with_the_exit_code(tmp_path: Path) -> None:
    rt = runtime("misbehaving", tmp_path, [], workers=1)
    with rt:
        answers = rt.invoke_many(round_of(b"a", b"CRASH", b"b"))
        assert all(isinstance(a, ModelConnectionError) for a in answers)  # reported as one
        assert "exited with code 3" in str(answers[2])
        assert [a.body for a in rt.invoke_many(round_of(b"c", b"d"))] == [b"c", b"d"]  # type: ignore[union-attr]


def test_the_worker_isolates_failing_records_itself(tmp_path: Path) -> None:
    rows = [b"FAIL-%d\n" % i if i % 97 == 3 else b"row-%d" % i for i in range(60_000)]
    rows = [row if row.endswith(b"\n") else row + b"\n" for row in rows]
    payload = b"".join(rows)  # over the memfd threshold: travels as one
    plan = IsolationPlan("Line", len(rows), True, 0, 0, "Line")
    rt = runtime("fail_on_marker", tmp_path, [], workers=1)
    with rt:
        found = rt.isolate(InvocationRequest(payload, "text/csv", "text/csv", 30), plan)
        assert rt.restarts == 0
    assert found is not None
    bad = [i for i in range(len(rows)) if i % 97 == 3]
    assert sorted(index for index, *_ in found.failed) == bad
    assert {status for *_, status, _ in found.failed} == {500}
    for index, start, end, _, _ in found.failed:
        assert payload[start:end] == rows[index]
    good = b"".join(row.upper() for i, row in enumerate(rows) if i % 97 != 3)
    assert found.body == good  # the pieces' answers joined in record order


def test_the_worker_retries_what_fails_for_a_moment_while_isolating(tmp_path: Path) -> None:
    def row(i: int) -> bytes:
        return (
            b"FAIL-%d\n" % i if i % 97 == 3 else b"FLAKY-%d\n" % i if i % 89 == 5 else b"r%d\n" % i
        )

    rows = [row(i) for i in range(5_000)]
    plan = IsolationPlan("Line", len(rows), True, 0, 1, "Line")  # one retry per call
    rt = runtime("fail_on_marker", tmp_path, [], workers=1)
    with rt:
        found = rt.isolate(InvocationRequest(b"".join(rows), "text/csv", "text/csv", 30), plan)
    assert found is not None
    assert [index for index, *_ in found.failed] == [i for i in range(5_000) if i % 97 == 3]
    assert found.body == b"".join(r.upper() for r in rows if not r.startswith(b"FAIL"))
    # Only lone records are retried: each bad one once, and each flaky one once, as
    # every group holding it failed the first time it was seen and was searched instead.
    failing = sum(1 for r in rows if r.startswith(b"FAIL"))
    flaky = sum(1 for r in rows if r.startswith(b"FLAKY"))
    assert found.retries == failing + flaky


def test_native_threads_follow_the_instance_share_of_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances on two cores: each one worker, one BLAS thread, or four threads spin.

    Workers also keep freed payload buffers for the next request, and a setting the user
    made themselves is left as it is.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    context = RuntimeContext("job/instance-2", str(tmp_path), {}, 1, lambda line: None, cpus=1)
    rt = HandlerRuntime(find_handler(str(HANDLERS / "misbehaving")), context, startup_timeout=60)
    with rt:
        pid = int(call(rt, b"PID"))
        environment = psutil.Process(pid).environ()
    assert environment["OPENBLAS_NUM_THREADS"] == environment["OMP_NUM_THREADS"] == "1"
    assert environment["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert int(environment["MALLOC_MMAP_THRESHOLD_"]) >= 64 * 2**20
    assert environment["MALLOC_TRIM_THRESHOLD_"] == "12345"
