"""Model containers through `batchform transform`, as a user runs them: what the model
prints lands in the job's log, and a model that dies is quoted in the failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3

from batchform.runtimes.base import RuntimeContext
from batchform.runtimes.registry import ModelReference, RuntimeOptions, runtime_factory

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "models"


def transform(tmp_path: Path, model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # The models' `#!/usr/bin/env python3` should find this interpreter; a wide console
    # keeps rich from wrapping the failure message the assertions read.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {
        **os.environ,
        "BATCHFORM_HOME": str(tmp_path / "home"),
        "PATH": path,
        "COLUMNS": "1000",
    }
    command = [sys.executable, "-m", "batchform.cli", "transform", "--model", str(model)]
    options = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    options += ["--content-type", "text/csv", "--split-type", "Line", "--name", "job"]
    return subprocess.run(
        [*command, *options, *extra],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def write_input(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes(data)


def job_log(tmp_path: Path) -> str:
    return (tmp_path / "home" / "jobs" / "job" / "log").read_text()


def test_what_the_model_prints_is_in_the_job_log(tmp_path: Path) -> None:
    write_input(tmp_path, b"1,2\n3,4\n")

    result = transform(tmp_path, MODELS / "echo")

    assert result.returncode == 0, result.stderr
    log = job_log(tmp_path)
    assert "job/instance-1: echo model: listening on port" in log  # stdout
    assert "job/instance-1: echo model: stderr is captured too" in log  # stderr
    assert "job/instance-1: echo model: invocation 1 with 8 bytes" in log
    assert (tmp_path / "out" / "data.csv.out").read_bytes() == b"1,2\n3,4\n"


def test_a_model_that_dies_at_start_is_quoted(tmp_path: Path) -> None:
    write_input(tmp_path, b"1,2\n")

    result = transform(tmp_path, MODELS / "echo", "--env", "ECHO_EXIT_AT_START=3")

    assert result.returncode == 1
    assert "model process exited with code 3 during start-up" in result.stderr
    assert "last lines: echo model: refusing to start" in result.stderr
    assert "echo model: refusing to start" in job_log(tmp_path)


def test_a_model_that_dies_mid_job_is_quoted(tmp_path: Path) -> None:
    write_input(tmp_path, b"1,2\n3,BOOM\n")
    crash = ("--env", "ECHO_CRASH_MARKER=BOOM", "--env", "ECHO_EXIT_CODE=9")

    result = transform(tmp_path, MODELS / "echo", *crash, "--max-retries", "1")

    assert result.returncode == 1
    (failure,) = [line for line in result.stderr.splitlines() if line.startswith("Failed:")]
    assert "Failed to transform 'data.csv'" in failure
    assert "model process exited with code 9" in failure
    assert "echo model: crashing: crash marker" in failure
    assert not (tmp_path / "out" / "data.csv.out").exists()


def test_a_folder_with_only_an_entrypoint_is_a_container(tmp_path: Path) -> None:
    write_input(tmp_path, b"a,b\nc,d\n")

    result = transform(tmp_path, MODELS / "entrypoint_echo", "--strategy", "SingleRecord")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "data.csv.out").read_bytes() == b"a,b\nc,d\n"
    assert "echo model: invocation 2 with 4 bytes" in job_log(tmp_path)


def test_the_model_is_told_the_requested_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection pool is larger than the request (the model may offer more through
    # /execution-parameters); the contract's variable still says what was asked for.
    factory = runtime_factory(ModelReference(image=str(MODELS / "echo")), RuntimeOptions(3))
    context = RuntimeContext(instance_name="i", workspace=str(tmp_path / "workspace"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with factory(context) as runtime:
        reply = urllib3.request("GET", f"{getattr(runtime, 'url', '')}/env", timeout=5.0)

    assert json.loads(reply.data)["environ"]["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "3"


def test_isolation_through_a_model_server_writes_good_records_and_dead_letters_bad_ones(
    tmp_path: Path,
) -> None:
    rows = [b"BAD-%d\n" % i if i % 101 == 7 else b"row-%d\n" % i for i in range(10_000)]
    write_input(tmp_path, b"".join(rows))
    done = transform(
        tmp_path,
        MODELS / "echo",
        *("--on-error", "isolate", "--max-errors", "1%", "--max-payload", "1"),
        *("--concurrency", "2", "--max-retries", "0", "--env", "ECHO_FAIL_MARKER=BAD"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    good = b"".join(row for row in rows if not row.startswith(b"BAD"))
    assert (tmp_path / "out" / "data.csv.out").read_bytes() == good
    letters = (tmp_path / "out" / "_batchform" / "errors" / "data.csv.jsonl").read_text()
    dead = [json.loads(line) for line in letters.splitlines()]
    assert [letter["record_index"] for letter in dead] == [i for i in range(10_000) if i % 101 == 7]
    assert {letter["status"] for letter in dead} == {500}
    offsets = [sum(map(len, rows[:index])) for index in (d["record_index"] for d in dead)]
    assert [letter["byte_offset"] for letter in dead] == offsets
