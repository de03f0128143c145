"""Kill -9 mid-job, then `batchform resume`: outputs byte-identical to a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
OBJECTS = 12


def command(tmp_path: Path, out: str, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batchform.cli",
        "transform",
        "--model",
        str(HANDLERS / "slow"),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / out),
        "--content-type",
        "text/csv",
        "--split-type",
        "Line",
        "--strategy",
        "SingleRecord",
        "--concurrency",
        "2",
        "--assemble-with",
        "Line",
        "--env",
        "SLOW_SECONDS=0.002",
        "--name",
        name,
    ]


def make_inputs(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for index in range(OBJECTS):
        rows = b"".join(b"%d,%d\n" % (index, i) for i in range(150))
        (tmp_path / "in" / f"part-{index:02d}.csv").write_bytes(rows)


def outputs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.glob("*.out")}


def finished_in_ledger(home: Path, name: str) -> list[str]:
    ledger = home / "jobs" / name / "ledger.jsonl"
    if not ledger.exists():
        return []
    events = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    return [event["key"] for event in events if event["event"] == "object"]


def run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHFORM_HOME": str(home)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_kill_at_half_then_resume_gives_a_clean_runs_outputs(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    home = tmp_path / "home"
    clean = run(command(tmp_path, "clean", "clean-run"), home)
    assert clean.returncode == 0, clean.stderr

    env = {**os.environ, "BATCHFORM_HOME": str(home)}
    victim = subprocess.Popen(
        command(tmp_path, "out", "killed"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(finished_in_ledger(home, "killed")) < OBJECTS // 2:
        assert victim.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = finished_in_ledger(home, "killed")
    assert len(done_before) < OBJECTS

    resumed = run([sys.executable, "-m", "batchform.cli", "resume", "killed"], home)
    assert resumed.returncode == 0, resumed.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")
    assert len(outputs(tmp_path / "out")) == OBJECTS
    after = finished_in_ledger(home, "killed")
    redone = after[len(done_before) :]
    assert sorted(redone) == sorted(set(after) - set(done_before)), "finished objects redone"
    summary = json.loads((tmp_path / "out" / "_batchform" / "job_summary.json").read_text())
    assert summary["resumed_objects_kept"] == len(done_before)


def test_resume_is_refused_when_an_input_changed(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    home = tmp_path / "home"
    assert run(command(tmp_path, "out", "finished"), home).returncode == 0
    time.sleep(0.01)
    (tmp_path / "in" / "part-03.csv").write_bytes(b"changed\n")
    resumed = run([sys.executable, "-m", "batchform.cli", "resume", "finished"], home)
    assert resumed.returncode == 1
    assert "part-03.csv" in resumed.stderr and "changed" in resumed.stderr


def test_resume_after_a_spec_change_is_refused(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    home = tmp_path / "home"
    assert run(command(tmp_path, "out", "specced"), home).returncode == 0
    definition = home / "jobs" / "specced" / "job.json"
    saved = json.loads(definition.read_text())
    saved["request"]["MaxConcurrentTransforms"] = 1
    definition.write_text(json.dumps(saved))
    resumed = run([sys.executable, "-m", "batchform.cli", "resume", "specced"], home)
    assert resumed.returncode == 1
    assert "spec changed" in resumed.stderr


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_resume_redoes_outputs_that_were_lost_or_damaged(tmp_path: Path, damage: str) -> None:
    make_inputs(tmp_path)
    home = tmp_path / "home"
    assert run(command(tmp_path, "out", "damaged"), home).returncode == 0
    expected = outputs(tmp_path / "out")
    target = tmp_path / "out" / "part-05.csv.out"
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:-3])
    resumed = run([sys.executable, "-m", "batchform.cli", "resume", "damaged"], home)
    assert resumed.returncode == 0, resumed.stderr
    assert outputs(tmp_path / "out") == expected
    assert finished_in_ledger(home, "damaged")[-1] == "part-05.csv.out".removesuffix(".out")


def ledger_events(home: Path, name: str, kind: str) -> list[dict[str, object]]:
    ledger = home / "jobs" / name / "ledger.jsonl"
    if not ledger.exists():
        return []
    lines = [line for line in ledger.read_text().splitlines() if line.endswith("}")]
    return [event for event in map(json.loads, lines) if event["event"] == kind]


def test_a_split_object_killed_mid_join_resumes_from_what_was_joined(tmp_path: Path) -> None:
    """One 6 MB file in 1 MB parts over 2 instances: the parts are joined as they finish,
    a resumed job keeps the joined ones, and the `.out` is a clean run's."""
    (tmp_path / "in").mkdir()
    rows = b"".join(b"%07d,%s\n" % (i, b"v" * (i % 40)) for i in range(180_000))
    (tmp_path / "in" / "big.csv").write_bytes(rows)
    home = tmp_path / "home"

    def split_command(out: str, name: str) -> list[str]:
        argv = command(tmp_path, out, name)
        argv[argv.index("SingleRecord")] = "MultiRecord"
        argv[argv.index("SLOW_SECONDS=0.002")] = "SLOW_SECONDS=0.25"
        return [*argv, "--max-payload", "1", "--instances", "2", "--split-objects-over", "1"]

    env = {**os.environ, "BATCHFORM_HOME": str(home)}
    victim = subprocess.Popen(split_command("out", "killed"), env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(ledger_events(home, "killed", "joined")) < 2:
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    joined_before = ledger_events(home, "killed", "joined")
    assert not (tmp_path / "out" / "big.csv.out").exists()

    resumed = run([sys.executable, "-m", "batchform.cli", "resume", "killed"], home)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "out" / "big.csv.out").read_bytes() == rows
    # The resumed run grew the output on from where the killed one left it.
    joined_after = ledger_events(home, "killed", "joined")[len(joined_before) :]
    assert [event["parts"] for event in joined_after] == list(
        range(int(str(joined_before[-1]["parts"])) + 1, 7)
    )
    assert [event["key"] for event in ledger_events(home, "killed", "object")] == ["big.csv"]
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and "parts" in p.parts]
    assert not leftovers
