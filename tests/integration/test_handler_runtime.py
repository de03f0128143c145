"""The Python handler runtime with real worker processes: restarts, timeouts, logs, start-up."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from batchform.errors import ModelConnectionError, ModelTimeoutError, RuntimeStartError
from batchform.runtimes.base import InvocationRequest, RuntimeContext
from batchform.runtimes.handler import HandlerRuntime
from batchform.runtimes.handler_module import find_handler

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
