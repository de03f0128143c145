"""The cost of DataProcessing: one job with and without `InputFilter '$[1:]' + JoinSource Input`.

    python benchmarks/join_cost.py              # ~200 MB CSV (an id and 19 numbers), best of 3
    python benchmarks/join_cost.py --scale 0.1  # a quick look

Every job is `batchform transform` (MultiRecord, Line, text/csv in and out) in its own
process tree. The echo handler answers each payload with itself, so its rows measure
batchform's own overhead, where the join's cost shows most; the numpy handler is a
model doing real work. "join cost" is the throughput the join takes away from the plain
job: 1 - join MB/s / plain MB/s (target <= 25 %). Results go to
benchmarks/results/join_cost.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, Measurement, ensure, print_table, run_measured, save_json
from common import transform_argv as common_transform_argv

DATA = ROOT / "benchmarks" / "data"
HANDLERS = {
    "echo": ROOT / "examples" / "echo_handler",
    "numpy": ROOT / "examples" / "numpy_handler",
}
JOIN_FLAGS = ["--input-filter", "$[1:]", "--join-source", "Input"]
TARGET = 0.25
COLUMNS = 20  # the id and 19 features
ID_DIGITS = 9
VALUE_DIGITS = 5  # each feature is dd.ddd


def write_id_csv(path: Path, target_bytes: int, seed: int = 2) -> int:
    """Rows `<9-digit id>,<19 x dd.ddd>`: numeric, so the plain job's model reads all 20."""
    rng = np.random.default_rng(seed)
    features = COLUMNS - 1
    row_bytes = ID_DIGITS + features * (VALUE_DIGITS + 2) + 1
    rows = max(1, target_bytes // row_bytes)
    with path.open("wb") as out:
        for start in range(0, rows, 50_000):
            count = min(50_000, rows - start)
            ids = np.arange(start, start + count)
            values = rng.integers(0, 10**VALUE_DIGITS, (count, features))
            out.write(_csv_block(ids, values, row_bytes).tobytes())
    return rows


def _csv_block(ids: np.ndarray, values: np.ndarray, row_bytes: int) -> np.ndarray:
    """Format fixed-width rows as one uint8 matrix: no per-value Python formatting."""
    text = np.full((len(ids), row_bytes), ord(","), dtype=np.uint8)
    text[:, :ID_DIGITS] = _digits(ids, ID_DIGITS)
    for column in range(values.shape[1]):
        start = ID_DIGITS + 1 + column * (VALUE_DIGITS + 2)
        digits = _digits(values[:, column], VALUE_DIGITS)
        text[:, start : start + 2] = digits[:, :2]
        text[:, start + 2] = ord(".")
        text[:, start + 3 : start + VALUE_DIGITS + 1] = digits[:, 2:]
    text[:, -1] = ord("\n")
    return text


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (numbers[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def transform_argv(handler: Path, input_path: Path, output: Path, joins: bool) -> list[str]:
    extra = ["--accept", "text/csv", *(JOIN_FLAGS if joins else [])]
    return common_transform_argv(handler, input_path, output, *extra)


def join_rows(scale: float, repeat: int = 1) -> list[dict[str, object]]:
    """Plain and joined jobs for each handler on the ~200 MB x scale CSV (best of `repeat`)."""
    target = int(200e6 * scale)
    path = DATA / f"ids{COLUMNS}-{target}.csv"
    rows = ensure(path, write_id_csv, target)
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bf-join-") as tmp:
        for label, handler in HANDLERS.items():
            plain, joined = _best_pair(label, handler, path, Path(tmp), repeat)
            cost = 1 - plain.wall_seconds / joined.wall_seconds  # 1 - join MB/s / plain MB/s
            results += [_row(label, path, rows, plain, None), _row(label, path, rows, joined, cost)]
    return results


def _best_pair(
    label: str, handler: Path, path: Path, work: Path, repeat: int
) -> tuple[Measurement, Measurement]:
    """Plain and joined runs taken in turns, so a busy spell on the machine hits both."""
    runs: dict[bool, list[Measurement]] = {False: [], True: []}
    for _ in range(max(1, repeat)):
        for joins in (False, True):
            name = f"{label}: {'$[1:] + join' if joins else 'plain'}"
            argv = transform_argv(handler, path, work / "out", joins)
            runs[joins].append(run_measured(name, argv, {"BATCHFORM_HOME": str(work / "home")}))
            shutil.rmtree(work / "out", ignore_errors=True)
    best = [
        min(runs[joins], key=lambda m: (m.returncode != 0, m.wall_seconds))
        for joins in (False, True)
    ]
    return best[0], best[1]


def _row(
    handler: str, path: Path, rows: int, m: Measurement, join_cost: float | None
) -> dict[str, object]:
    size = path.stat().st_size
    return {
        "dataset": f"numeric CSV, id + {COLUMNS - 1} features",
        "handler": handler,
        "job": m.name.split(": ", 1)[1],
        "ok": m.returncode == 0,
        "wall_s": m.wall_seconds,
        "mb_per_s": size / 1e6 / m.wall_seconds,
        "records_per_s": rows / m.wall_seconds,
        "peak_rss_mb": m.peak_rss_mb,
        "bytes": size,
        "records": rows,
        "join_cost": join_cost,
    }


def table(results: list[dict[str, object]]) -> tuple[list[str], list[list[str]]]:
    header = ["handler", "job", "wall s", "MB/s", "records/s", "peak RSS MB", "join cost", "ok"]
    body = [
        [
            str(r["handler"]),
            str(r["job"]),
            f"{r['wall_s']:.1f}",
            f"{r['mb_per_s']:.1f}",
            f"{r['records_per_s']:,.0f}",
            f"{r['peak_rss_mb']:.0f}",
            "-" if r["join_cost"] is None else f"{r['join_cost']:.1%}",
            "yes" if r["ok"] else "NO",
        ]
        for r in results
    ]
    return header, body


def verdicts(results: list[dict[str, object]]) -> list[str]:
    lines = []
    for r in results:
        cost = r["join_cost"]
        if isinstance(cost, float):
            verdict = "met" if cost <= TARGET else "MISSED"
            lines.append(
                f"{r['handler']}: the join costs {cost:.1%} of the plain job's throughput "
                f"(target <= {TARGET:.0%}): {verdict}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 200 MB of CSV")
    parser.add_argument("--repeat", type=int, default=3, help="runs per job; the best counts")
    args = parser.parse_args()
    results = join_rows(args.scale, args.repeat)
    header, body = table(results)
    size = f"{results[0]['bytes']:,} bytes"
    print_table(f"Join cost ({size} of CSV, {COLUMNS} columns, MultiRecord)", header, body)
    summary = verdicts(results)
    print("\n".join(summary))
    print(f"\nwritten {save_json('join_cost', {'rows': results, 'verdicts': summary})}")


if __name__ == "__main__":
    main()
