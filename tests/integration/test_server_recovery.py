"""Jobs survive the server: kill -9 and restart resumes them, SIGTERM hands them back."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.integration.test_server_api import (
    HANDLERS,
    create_model,
    job_request,
    make_inputs,
    wait_done,
)
from tests.serverproc import Server, start_server, stop_server

FAST = ("--heartbeat", "0.4")


def slow_job(sm: Any, tmp_path: Path, name: str, objects: int = 6) -> Path:
    create_model(sm, f"{name}-model", HANDLERS / "slow", SLOW_SECONDS="0.15")
    source = make_inputs(tmp_path / "in", objects=objects, rows=4)
    request = job_request(name, f"{name}-model", source, tmp_path / "out")
    request["BatchStrategy"] = "SingleRecord"
    request["MaxConcurrentTransforms"] = 1
    sm.create_transform_job(**request)
    return source


def wait_for_outputs(folder: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("*.out"))) < count:
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.1)


def job_log(home: Path, name: str) -> str:
    return (home / "jobs" / name / "log").read_text()


def assert_outputs_equal_inputs(source: Path, output: Path) -> None:
    for path in sorted(source.iterdir()):
        assert (output / (path.name + ".out")).read_bytes() == path.read_bytes(), path.name


def test_killed_server_resumes_its_job_after_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home, *FAST)
    source = slow_job(first.client(), tmp_path, "survivor")
    wait_for_outputs(tmp_path / "out", 2)
    stop_server(first, signal.SIGKILL)
    second = start_server(home, *FAST)
    try:
        described = wait_done(second.client(), "survivor")
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        assert_outputs_equal_inputs(source, tmp_path / "out")
        log = job_log(home, "survivor")
        assert "resuming:" in log
        kept = int(log.split("resuming: ")[1].split(" of ")[0])
        assert kept >= 2, "objects finished before the kill were done again"
    finally:
        stop_server(second)


def test_a_job_that_cannot_resume_fails_saying_the_server_restarted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home, *FAST)
    source = slow_job(first.client(), tmp_path, "changed")
    wait_for_outputs(tmp_path / "out", 1)
    stop_server(first, signal.SIGKILL)
    (source / "part-0.csv").write_bytes(b"changed,while,the,server,was,down\n")
    second = start_server(home, *FAST)
    try:
        described = wait_done(second.client(), "changed")
        assert described["TransformJobStatus"] == "Failed"
        assert "server restarted" in described["FailureReason"]
        assert "part-0.csv" in described["FailureReason"]
    finally:
        stop_server(second)


def test_sigterm_hands_running_jobs_back_and_the_next_server_finishes_them(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = start_server(home, *FAST)
    source = slow_job(first.client(), tmp_path, "handed-back")
    wait_for_outputs(tmp_path / "out", 1)
    started = time.monotonic()
    assert stop_server(first, signal.SIGTERM) == 0
    assert time.monotonic() - started < 30
    described = describe_locally(home, "handed-back")
    assert described["TransformJobStatus"] == "InProgress"
    second = start_server(home, *FAST)
    try:
        described = wait_done(second.client(), "handed-back")
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        assert_outputs_equal_inputs(source, tmp_path / "out")
    finally:
        stop_server(second)


def test_stop_reaches_a_job_run_by_another_server_process(tmp_path: Path) -> None:
    """`batchform jobs stop` on the local store: the running server sees it and stops."""
    home = tmp_path / "home"
    server: Server = start_server(home, *FAST)
    try:
        slow_job(server.client(), tmp_path, "stopped-locally", objects=20)
        wait_for_outputs(tmp_path / "out", 1)
        run_cli(home, "jobs", "stop", "stopped-locally")
        described = wait_done(server.client(), "stopped-locally")
        assert described["TransformJobStatus"] == "Stopped"
    finally:
        stop_server(server)


def describe_locally(home: Path, name: str) -> dict[str, Any]:
    answer: dict[str, Any] = orjson.loads(run_cli(home, "jobs", "describe", name))
    return answer


def run_cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "batchform.cli", *args],
        env={**_environ(), "BATCHFORM_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "BATCHFORM_ENDPOINT_URL"}
