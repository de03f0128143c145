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
shared machine can be off by a tenth. Every run but a resume starts from an empty page
cache where that is allowed (root); a resume starts with the cache the killed process
left, as after a real kill. "extra s" is what a cost case adds to its baseline.
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
from typing import Any, TypeVar

import numpy as np

from common import (
    ROOT,
    Measurement,
    drop_page_cache,
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
        lambda: removed_after(
            run_measured(
                "1% bad, isolate",
                transform_argv(FLAKY, dirty, work / "o2", *extra),
                env,
                cold=True,
            ),
            work / "o2",
        ),
        lambda n: removed_after(
            run_measured(
                "clean run", transform_argv(FLAKY, clean, work / f"o1-{n}", *extra), env, cold=True
            ),
            work / f"o1-{n}",
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


def removed_after(result: T, *outputs: Path) -> T:
    """`result`, once the run's outputs are deleted (what a comparison needs of them
    was taken): the disk does not fill over the repeats."""
    for output in outputs:
        shutil.rmtree(output, ignore_errors=True)
    return result


def between_clean_runs(
    measured: Callable[[], T], clean: Callable[[int], Measurement]
) -> tuple[T, list[Measurement]]:
    """`measured` run between two clean runs, whose mean is its baseline: this machine's
    speed drifts by a tenth over a minute, which one clean run before would count."""
    before = clean(0)
    result = measured()
    return result, [before, clean(1)]


def split_into_objects(path: Path, folder: Path, objects: int, total_bytes: int) -> None:
    """The first `total_bytes` of a line file as `objects` newline-aligned objects
    (written beside, then moved into place, so a half-written folder is never reused)."""
    writing = folder.with_name(folder.name + ".partial")
    shutil.rmtree(writing, ignore_errors=True)
    writing.mkdir(parents=True)
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
        (writing / f"part-{index:03d}.csv").write_bytes(data[start:end])
        start = end
    writing.rename(folder)


def resume_case(work: Path, objects: int, scale: float, fraction: float) -> list[dict[str, object]]:
    # Any resume starts an interpreter and a model again (about half a second here),
    # a cost fixed whatever the job's size, so the ratio depends on the job's length:
    # the case runs on 40% of the big-file case's data and on all of it, and the
    # table's "extra s" column gives the cost itself.
    narrow = DATA / f"narrow-{int(1e9 * scale)}.csv"
    ensure(narrow, write_narrow_csv, int(1e9 * scale))
    total_bytes = int(1e9 * scale * fraction)
    source = DATA / f"objects-{objects}-{total_bytes}"
    if not source.exists():
        split_into_objects(narrow, source, objects, total_bytes)
    home = work / "home-resume"
    clean_outputs: list[dict[str, int]] = []

    def clean(n: int) -> Measurement:
        output = work / f"r1-{n}"
        argv = transform_argv(NUMPY, source, output, "--name", f"clean-{n}")
        run = run_measured("clean", argv, {"BATCHFORM_HOME": str(home)}, cold=True)
        clean_outputs.append(_outputs(output))
        return removed_after(run, output)

    (killed_at, resumed), clean_runs = between_clean_runs(
        lambda: kill_and_resume(source, work / "r2", home, objects // 2), clean
    )
    baseline = statistics.mean(run.wall_seconds for run in clean_runs)
    same = clean_outputs[0] == clean_outputs[1] == removed_after(_outputs(work / "r2"), work / "r2")
    total = killed_at + resumed.wall_seconds
    return [
        {
            "case": f"kill -9 at 50% + resume ({objects} objects, {total_bytes / 1e9:.1f} GB)",
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
    """Seconds until the kill once `kill_after` objects are finished, and the resume
    (with the page cache as the killed process left it)."""
    drop_page_cache()
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
        "1 instance",
        transform_argv(NUMPY, path, work / "b1", "--concurrency", "1"),
        env,
        cold=True,
    )
    one_sample = removed_after(_sample(work / "b1"), work / "b1")
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
        cold=True,
    )
    same = _close(one_sample, removed_after(_sample(work / "b2"), work / "b2"))
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


Sample = dict[str, tuple[int, "np.ndarray[Any, Any]"]]


def _sample(root: Path) -> Sample:
    """Each output's line count and the numbers on about 5,000 of its lines."""
    sample: Sample = {}
    for path in sorted(root.glob("*.out")):
        lines = path.read_bytes().splitlines()
        picked = lines[:: max(1, len(lines) // 5000)]
        sample[path.name] = (len(lines), np.loadtxt(picked, delimiter=",", ndmin=2))
    return sample


def _close(first: Sample, second: Sample) -> bool:
    """Same outputs and line counts, and the same numbers up to float rounding.

    A BLAS matrix product may round differently when the payloads around a row differ
    (parts cut the file elsewhere), so the bytes of a float model's answers can differ
    in the last digit while every answer is right.
    """
    if first.keys() != second.keys():
        return False
    return all(
        first[name][0] == second[name][0]
        and np.allclose(first[name][1], second[name][1], rtol=1e-9, atol=1e-12)
        for name in first
    )


def _outputs(root: Path) -> dict[str, int]:
    return {p.name: hash(p.read_bytes()) for p in root.glob("*.out")}


Row = dict[str, object]
CASES = ("isolation", "resume", "resume-1gb", "big-file")


def repeated(case: Callable[[Path], list[Row]], work: Path, times: int) -> Row:
    """The case run `times` times, each in a folder of its own: the median times."""
    runs: list[Row] = []
    for index in range(times):
        folder = work / f"run-{index}"
        runs += case(folder)
        shutil.rmtree(folder, ignore_errors=True)
    base = statistics.median(float(str(run["baseline_s"])) for run in runs)
    measured = statistics.median(float(str(run["measured_s"])) for run in runs)
    speed_up = _is_speed_up(runs[0])
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
        "resume": lambda w: resume_case(w, 20, scale, 0.4),
        "resume-1gb": lambda w: resume_case(w, 20, scale, 1.0),
        "big-file": lambda w: big_file_case(w, int(1e9 * scale)),
    }
    with tempfile.TemporaryDirectory(prefix="bf-fail-") as tmp:
        work = Path(tmp)
        rows = [repeated(cases[name], work, times) for name in args.cases.split(",")]
    print_table(
        f"Failure handling (each case beside its own baseline; medians of {times} runs)",
        [
            "case",
            "baseline s",
            "measured s",
            "ratio",
            "extra s",
            "target",
            "runs' ratios",
            "outputs ok",
        ],
        [
            [
                str(r["case"]),
                f"{r['baseline_s']:.1f}",
                f"{r['measured_s']:.1f}",
                f"{r['ratio']:.2f}",
                _extra_seconds(r),
                str(r["target"]),
                " ".join(f"{float(str(run['ratio'])):.2f}" for run in _runs(r)),
                "yes" if r["ok"] else "NO",
            ]
            for r in rows
        ],
    )
    print(f"\nwritten {save_json('failure_handling', rows)}")


def _extra_seconds(row: Row) -> str:
    """What a cost case adds to its baseline, in seconds (blank for a speed-up)."""
    if _is_speed_up(row):
        return ""
    return f"{float(str(row['measured_s'])) - float(str(row['baseline_s'])):.2f}"


def _is_speed_up(row: Row) -> bool:
    return str(row["target"]).startswith(">=")


def _runs(row: Row) -> list[dict[str, object]]:
    runs = row["runs"]
    assert isinstance(runs, list)
    return runs


if __name__ == "__main__":
    main()
