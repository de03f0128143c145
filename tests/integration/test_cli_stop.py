"""Ctrl-C stops a running job: exit 130, no partial output, no processes left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SLOW = Path(__file__).resolve().parents[1] / "handlers" / "slow"


def test_interrupt_leaves_nothing_partial_and_no_orphans(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for index in range(3):
        rows = b"".join(b"%d,%d\n" % (index, i) for i in range(400))
        (tmp_path / "in" / f"part-{index}.csv").write_bytes(rows)
    command = [
        sys.executable,
        "-m",
        "batchform.cli",
        "transform",
        "--model",
        str(SLOW),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--content-type",
        "text/csv",
        "--split-type",
        "Line",
        "--strategy",
        "SingleRecord",
        "--concurrency",
        "2",
        # Requests that would take ten minutes: a stop must not wait for them.
        "--env",
        "SLOW_SECONDS=600",
    ]
    env = {**os.environ, "BATCHFORM_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    parent = psutil.Process(process.pid)
    workers = _wait_for_workers(parent)
    time.sleep(1.5)  # requests are in flight now
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    out = tmp_path / "out"
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert [p.name for p in left] in ([], ["job_summary.json"])
    time.sleep(0.5)
    assert [w.pid for w in workers if _alive(w)] == []


def _wait_for_workers(parent: psutil.Process) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        if len(children) >= 2:
            return children
        time.sleep(0.1)
    raise AssertionError("handler workers never started")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
