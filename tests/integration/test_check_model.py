"""`batchform check-model` as a user runs it, against real models on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_serve_handler import SERVING, start_server

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "tests" / "models" / "echo"
NUMPY = ROOT / "examples" / "numpy_handler"
CSV_HEADER = ROOT / "tests" / "handlers" / "csv_header"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.csv"
    path.write_bytes(b"".join(b"%d,%d,%d\n" % (i, i % 3, i * 2) for i in range(2000)))
    return path


def check_model(*args: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "batchform.cli", "check-model", *args],
        capture_output=True,
        text=True,
        # The report is a table: wide enough that no detail is wrapped.
        env={**os.environ, "PATH": path, "COLUMNS": "250"},
        timeout=120,
        check=False,
    )


def rows(report: str) -> dict[str, str]:
    """Each table row's cells after the check's name, joined."""
    found = {}
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells:
            found[cells[0]] = " | ".join(cells[1:])
    return found


def test_a_container_passes_and_its_parameters_are_shown(sample: Path) -> None:
    offered = '{"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD"}'
    result = check_model(
        str(ECHO),
        "--sample",
        str(sample),
        "--content-type",
        "text/csv",
        "--env",
        f"ECHO_EXECUTION_PARAMETERS={offered}",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = rows(result.stdout)
    assert report["GET /ping"].startswith("PASS")
    assert (
        "MaxConcurrentTransforms=4, BatchStrategy=MultiRecord"
        in report["GET /execution-parameters"]
    )
    assert report["SingleRecord x5"].startswith("PASS")
    assert "2,000 records in and out" in report["MultiRecord"]
    assert "PASS: the model honours the contract on this sample" in result.stdout


def test_a_python_handler_passes(sample: Path) -> None:
    result = check_model(str(NUMPY), "--sample", str(sample), "--content-type", "text/csv")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(handler)" in result.stdout
    assert rows(result.stdout)["MultiRecord"].startswith("PASS")


def test_a_running_server_passes(sample: Path, tmp_path: Path) -> None:
    server = start_server(SERVING, tmp_path / "server.log", "--workers", "1")
    try:
        result = check_model(
            "--model-url",
            server.url,
            "--sample",
            str(sample),
            "--content-type",
            "text/csv",
            "--records",
            "2",
        )
    finally:
        server.stop()

    assert result.returncode == 0, result.stdout + result.stderr
    report = rows(result.stdout)
    assert report["SingleRecord x2"].startswith("PASS")
    assert "MaxConcurrentTransforms=1" in report["GET /execution-parameters"]


def test_a_model_with_a_header_row_fails(sample: Path) -> None:
    result = check_model(str(CSV_HEADER), "--sample", str(sample), "--content-type", "text/csv")

    assert result.returncode == 1
    report = rows(result.stdout)
    assert report["SingleRecord x5"].startswith("FAIL")
    assert "record 0: 1 record(s) in, 2 out" in report["SingleRecord x5"]
    assert "records 0-1999: 2000 record(s) in, 2001 out" in report["MultiRecord"]
    assert "FAIL: 2 check(s) failed" in result.stdout


def test_a_model_that_cannot_start_fails_with_its_last_lines(sample: Path) -> None:
    result = check_model(
        str(ECHO),
        "--sample",
        str(sample),
        "--content-type",
        "text/csv",
        "--env",
        "ECHO_EXIT_AT_START=3",
    )

    assert result.returncode == 1
    assert "exited with code 3 during start-up" in rows(result.stdout)["start"]
    assert "the model's last lines:" in result.stdout
    assert "check: echo model: refusing to start" in result.stdout
