"""Failure handling costs: isolation, resume after a kill, one big file over two instances.

    python benchmarks/failure_handling.py              # 1 GB for the big-file case
    python benchmarks/failure_handling.py --scale 0.1  # a quick look
    python benchmarks/failure_handling.py --repeat 1   # each case once
    python benchmarks/failure_handling.py --cases resume,isolation

Prints a table of each case beside its baseline and writes
benchmarks/results/failure_handling.json. Each case runs `--repeat` times (5 by
default), baseline and measured side by side each time; for isolation and resume the
baseline is the mean of a clean run just before and one just after, as this machine's
speed drifts. The table shows the medians, as one run of a few seconds on a small
shared machine can be off by a tenth.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from common import (
    ROOT,
    Measurement,
    ensure,
    print_table,
    run_measured,
    save_json,
    write_narrow_csv,
)
from common import transform_argv as common_transform_argv

DATA = ROOT / "benchmarks" / "data"
FLAKY = ROOT / "examples" / "flaky_handler"
NUMPY = ROOT / "examples" / "numpy_handler"
T = TypeVar("T")


def transform_argv(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return common_transform_argv(model, source, out, "--max-retries", "0", *extra)


def write_rows(path: Path, rows: int, bad_fraction: float, seed: int = 7) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for _ in range(rows):
            prefix = "BAD," if rng.random() < bad_fraction else ""
            out.write(prefix + ",".join(f"{rng.random():.4f}" for _ in range(8)) + "\n")


def isolation_case(work: Path, rows: int, payload_mb: int) -> list[dict[str, object]]:
    clean, dirty = work / "clean" / "in.csv", work / "dirty" / "in.csv"
    write_rows(clean, rows, 0.0)
    write_rows(dirty, rows, 0.01)
    extra = ("--max-payload", str(payload_mb), "--on-error", "isolate", "--max-errors", "2%")
    env = {"BATCHFORM_HOME": str(work / "home")}
    iso, clean_runs = between_clean_runs(
        lambda: run_measured(
            "1% bad, isolate", transform_argv(FLAKY, dirty, work / "o2", *extra), env
        ),
        lambda n: run_measured(
            "clean run", transform_argv(FLAKY, clean, work / f"o1-{n}", *extra), env
        ),
    )
    base = statistics.mean(run.wall_seconds for run in clean_runs)
    return [
        {
            "case": f"isolation ({rows:,} rows, {payload_mb} MB payloads)",
            "baseline_s": base,
            "measured_s": iso.wall_seconds,
            "ratio": iso.wall_seconds / base,
            "target": "<= 1.2",
            "ok": all(run.returncode == 0 for run in [*clean_runs, iso]),
        }
    ]


def between_clean_runs(
    measured: Callable[[], T], clean: Callable[[int], Measurement]
) -> tuple[T, list[Measurement]]:
    """`measured` run between two clean runs, whose mean is its baseline: this machine's
    speed drifts by a tenth over a minute, which one clean run before would count."""
    before = clean(0)
    result = measured()
    return result, [before, clean(1)]


def split_into_objects(path: Path, folder: Path, objects: int, total_bytes: int) -> None:
    """The first `total_bytes` of a line file as `objects` newline-aligned objects."""
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as source:
        data = source.read(total_bytes)
    data = data[: data.rfind(b"\n") + 1]
    start = 0
    for index in range(objects):
        end = (
            len(data)
            if index == objects - 1
            else data.rfind(b"\n", 0, len(data) * (index + 1) // objects) + 1
        )
        (folder / f"part-{index:03d}.csv").write_bytes(data[start:end])
        start = end


def resume_case(work: Path, objects: int, scale: float) -> list[dict[str, object]]:
    # A job long enough that the work, not the second start of a process, is what is
    # measured: any resume starts an interpreter and a model again (about half a
    # second here), which alone was a quarter of the 45 MB job this case used to run.
    # The objects are cut from the big-file case's data (400 MB of it at scale 1).
    narrow = DATA / f"narrow-{int(1e9 * scale)}.csv"
    ensure(narrow, write_narrow_csv, int(1e9 * scale))
    source = work / "many"
    split_into_objects(narrow, source, objects, int(400e6 * scale))
    home = work / "home-resume"
    (killed_at, resumed), clean_runs = between_clean_runs(
        lambda: kill_and_resume(source, work / "r2", home, objects // 2),
        lambda n: run_measured(
            "clean",
            transform_argv(NUMPY, source, work / f"r1-{n}", "--name", f"clean-{n}"),
            {"BATCHFORM_HOME": str(home)},
        ),
    )
    baseline = statistics.mean(run.wall_seconds for run in clean_runs)
    clean_outputs = [_outputs(work / f"r1-{n}") for n in range(2)]
    same = clean_outputs[0] == clean_outputs[1] == _outputs(work / "r2")
    total = killed_at + resumed.wall_seconds
    return [
        {
            "case": f"kill -9 at 50% + resume ({objects} objects)",
            "baseline_s": baseline,
            "measured_s": total,
            "ratio": total / baseline,
            "target": "<= 1.1",
            "ok": same and resumed.returncode == 0,
        }
    ]


def kill_and_resume(
    source: Path, output: Path, home: Path, kill_after: int
) -> tuple[float, Measurement]:
    """Seconds until the kill once `kill_after` objects are finished, and the resume."""
    os.sync()
    started = time.perf_counter()
    victim = subprocess.Popen(
        transform_argv(NUMPY, source, output, "--name", "killed"),
        env={**os.environ, "BATCHFORM_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ledger = home / "jobs" / "killed" / "ledger.jsonl"
    while _finished(ledger) < kill_after and victim.poll() is None:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.perf_counter() - started
    resumed = run_measured(
        "resume",
        [sys.executable, "-m", "batchform.cli", "resume", "killed"],
        {"BATCHFORM_HOME": str(home)},
    )
    return killed_at, resumed


def big_file_case(work: Path, size: int) -> list[dict[str, object]]:
    path = DATA / f"narrow-{size}.csv"
    ensure(path, write_narrow_csv, size)
    env = {"BATCHFORM_HOME": str(work / "home-big")}
    one = run_measured(
        "1 instance", transform_argv(NUMPY, path, work / "b1", "--concurrency", "1"), env
    )
    two = run_measured(
        "2 instances",
        transform_argv(
            NUMPY,
            path,
            work / "b2",
            "--concurrency",
            "1",
            "--instances",
            "2",
            "--split-objects-over",
            "64",
        ),
        env,
    )
    same = _close_outputs(work / "b1", work / "b2")
    return [
        {
            "case": f"one {path.stat().st_size / 1e9:.2f} GB line file, 2 instances vs 1",
            "baseline_s": one.wall_seconds,
            "measured_s": two.wall_seconds,
            "ratio": one.wall_seconds / two.wall_seconds,
            "target": ">= 1.7 (speed-up)",
            "ok": same and one.returncode == 0 and two.returncode == 0,
        }
    ]


def _finished(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    lines = ledger.read_text().splitlines()
    return sum(1 for line in lines if line.endswith("}") and '"event":"object"' in line)


def _close_outputs(first: Path, second: Path) -> bool:
    """Same lines, and the same numbers up to float rounding.

    A BLAS matrix product may round differently when the payloads around a row differ
    (parts cut the file elsewhere), so the bytes of a float model's answers can differ
    in the last digit while every answer is right.
    """
    import numpy as np

    for a, b in zip(sorted(first.glob("*.out")), sorted(second.glob("*.out")), strict=True):
        lines_a, lines_b = a.read_bytes().splitlines(), b.read_bytes().splitlines()
        if a.name != b.name or len(lines_a) != len(lines_b):
            return False
        sample = slice(None, None, max(1, len(lines_a) // 5000))
        values_a = np.loadtxt(lines_a[sample], delimiter=",", ndmin=2)
        values_b = np.loadtxt(lines_b[sample], delimiter=",", ndmin=2)
        if not np.allclose(values_a, values_b, rtol=1e-9, atol=1e-12):
            return False
    return True


def _outputs(root: Path) -> dict[str, int]:
    return {p.name: hash(p.read_bytes()) for p in root.glob("*.out")}


Row = dict[str, object]
CASES = ("isolation", "resume", "big-file")


def repeated(case: Callable[[Path], list[Row]], work: Path, times: int) -> Row:
    """The case run `times` times, each in a folder of its own: the median times."""
    runs: list[Row] = []
    for index in range(times):
        folder = work / f"run-{index}"
        runs += case(folder)
        shutil.rmtree(folder, ignore_errors=True)
    base = statistics.median(float(str(run["baseline_s"])) for run in runs)
    measured = statistics.median(float(str(run["measured_s"])) for run in runs)
    speed_up = str(runs[0]["target"]).startswith(">=")
    return {
        **runs[0],
        "baseline_s": base,
        "measured_s": measured,
        "ratio": base / measured if speed_up else measured / base,
        "ok": all(run["ok"] for run in runs),
        "runs": [{key: run[key] for key in ("baseline_s", "measured_s", "ratio")} for run in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    args = parser.parse_args()
    scale, times = args.scale, args.repeat
    cases: dict[str, Callable[[Path], list[Row]]] = {
        "isolation": lambda w: isolation_case(w, int(400_000 * scale), 1),
        "resume": lambda w: resume_case(w, 20, scale),
        "big-file": lambda w: big_file_case(w, int(1e9 * scale)),
    }
    with tempfile.TemporaryDirectory(prefix="bf-fail-") as tmp:
        work = Path(tmp)
        rows = [repeated(cases[name], work, times) for name in args.cases.split(",")]
    print_table(
        f"Failure handling (each case beside its own baseline; medians of {times} runs)",
        ["case", "baseline s", "measured s", "ratio", "target", "runs' ratios", "outputs ok"],
        [
            [
                str(r["case"]),
                f"{r['baseline_s']:.1f}",
                f"{r['measured_s']:.1f}",
                f"{r['ratio']:.2f}",
                str(r["target"]),
                " ".join(f"{float(str(run['ratio'])):.2f}" for run in _runs(r)),
                "yes" if r["ok"] else "NO",
            ]
            for r in rows
        ],
    )
    print(f"\nwritten {save_json('failure_handling', rows)}")


def _runs(row: Row) -> list[dict[str, object]]:
    runs = row["runs"]
    assert isinstance(runs, list)
    return runs


if __name__ == "__main__":
    main()
