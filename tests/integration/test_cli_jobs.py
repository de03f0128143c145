"""`batchform jobs …` against a server (--endpoint-url) and on the local store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.test_server_api import HANDLERS, create_model, job_request, make_inputs
from tests.serverproc import running_server


def batchform(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHFORM_ENDPOINT_URL"}
    return subprocess.run(
        [sys.executable, "-m", "batchform.cli", *args],
        env={**env, "BATCHFORM_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_jobs_commands_list_describe_and_follow_logs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_server(home, "--max-concurrent-jobs", "1") as server:
        sm = server.client()
        create_model(sm, "slowish", HANDLERS / "slow", SLOW_SECONDS="0.05")
        source = make_inputs(tmp_path / "in", objects=3, rows=10)
        request = job_request("followed", "slowish", source, tmp_path / "out")
        request["BatchStrategy"] = "SingleRecord"
        sm.create_transform_job(**request)
        queued = job_request("queued", "slowish", source, tmp_path / "out2")
        sm.create_transform_job(**queued)
        # One job at a time: the second waits InProgress, not started, as on SageMaker
        waiting = sm.describe_transform_job(TransformJobName="queued")
        assert waiting["TransformJobStatus"] == "InProgress"
        assert "TransformStartTime" not in waiting

        followed = batchform(home, "jobs", "--endpoint-url", server.url, "logs", "followed", "-f")
        assert followed.returncode == 0, followed.stderr
        assert "MaxConcurrentTransforms=" in followed.stdout
        assert "[data-log]" in followed.stdout and "[instance-1]" in followed.stdout
        assert "job followed Completed" in followed.stdout  # followed to the very end

        listed = batchform(home, "jobs", "--endpoint-url", server.url, "list")
        assert listed.returncode == 0, listed.stderr
        assert "followed" in listed.stdout and "Completed" in listed.stdout

    # Without a server, the same commands read the local store and log files.
    described = batchform(home, "jobs", "describe", "followed")
    assert described.returncode == 0, described.stderr
    answer = orjson.loads(described.stdout)
    assert answer["TransformJobStatus"] == "Completed"
    assert answer["BatchStrategy"] == "SingleRecord"
    local_logs = batchform(home, "jobs", "logs", "followed")
    assert "job followed Completed" in local_logs.stdout
    missing = batchform(home, "jobs", "describe", "no-such-job")
    assert missing.returncode == 1
    assert "no-such-job" in missing.stderr
