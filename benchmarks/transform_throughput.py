"""Transform throughput: batchform vs the handler called directly vs Ray Data, in one run.

    python benchmarks/transform_throughput.py              # ~500 MB wide + ~250 MB narrow CSV
    python benchmarks/transform_throughput.py --scale 0.1  # a quick look

Each approach runs as its own process tree; the table shows wall time (start-up
included), MB/s, records/s and the peak RSS of the whole tree (for Ray: driver, raylet,
GCS and workers). Results go to benchmarks/results/transform_throughput.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import join_cost
from common import (
    ROOT,
    Measurement,
    ensure,
    print_table,
    run_measured,
    save_json,
    transform_argv,
    write_narrow_csv,
    write_wide_csv,
)

MODEL = ROOT / "examples" / "numpy_handler"
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DATA = ROOT / "benchmarks" / "data"


def approaches(
    input_path: Path, work: Path, rows: int, row_bytes: float, with_ray: bool
) -> list[tuple[str, list[str]]]:
    python = sys.executable
    out = work / "out"
    rows_per_batch = max(1, int(6 * 1024 * 1024 // row_bytes))
    runs = [
        (
            "(a) handler in-process, 1 core",
            [
                python,
                "benchmarks/direct_handler.py",
                str(MODEL),
                str(input_path),
                str(work / "a.out"),
            ],
        ),
        (
            "(b) batchform transform MultiRecord",
            transform_argv(MODEL, input_path, out / "b"),
        ),
    ]
    if with_ray:
        runs.append(
            (
                "(c) Ray Data map_batches, 2 CPUs",
                [
                    python,
                    "benchmarks/ray_data_job.py",
                    str(MODEL),
                    str(input_path),
                    str(out / "c"),
                    str(rows_per_batch),
                ],
            )
        )
    return runs


def bench_dataset(
    label: str, input_path: Path, rows: int, with_ray: bool
) -> list[dict[str, object]]:
    size = input_path.stat().st_size
    results = []
    with tempfile.TemporaryDirectory(prefix="bf-bench-") as tmp:
        work = Path(tmp)
        for name, argv in approaches(input_path, work, rows, size / rows, with_ray):
            env = {"BATCHFORM_HOME": str(work / "home")}
            if name.startswith("(a)"):
                env.update(ONE_CORE)  # the one-core limit: numpy's BLAS on one thread too
            measurement = run_measured(name, argv, env=env)
            results.append(_row(label, size, rows, measurement))
            shutil.rmtree(work / "out", ignore_errors=True)
    return results


def _row(label: str, size: int, rows: int, m: Measurement) -> dict[str, object]:
    return {
        "dataset": label,
        "approach": m.name,
        "ok": m.returncode == 0,
        "wall_s": m.wall_seconds,
        "mb_per_s": size / 1e6 / m.wall_seconds,
        "records_per_s": rows / m.wall_seconds,
        "peak_rss_mb": m.peak_rss_mb,
        "bytes": size,
        "records": rows,
    }


def ratios(results: list[dict[str, object]]) -> list[str]:
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = {str(r["approach"])[:3]: r for r in results if r["dataset"] == dataset}
        b = rows["(b)"]
        a = rows["(a)"]
        lines.append(
            f"{dataset}: (b) throughput / (a) = "
            f"{float(a['wall_s']) / float(b['wall_s']):.2f}x (target >= 1.7)"
        )  # type: ignore[arg-type]
        if "(c)" in rows:
            c = rows["(c)"]
            lines.append(
                f"{dataset}: (c) wall / (b) wall = "
                f"{float(c['wall_s']) / float(b['wall_s']):.2f}x (target >= 1.5); "  # type: ignore[arg-type]
                f"(b) peak RSS / (c) = "
                f"{float(b['peak_rss_mb']) / float(c['peak_rss_mb']):.2f} (target <= 0.5)"
            )  # type: ignore[arg-type]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 500 MB wide CSV")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data baseline")
    args = parser.parse_args()
    with_ray = not args.no_ray and _has_ray()
    wide_bytes, narrow_bytes = int(500e6 * args.scale), int(250e6 * args.scale)
    wide = DATA / f"wide-{wide_bytes}.csv"
    narrow = DATA / f"narrow-{narrow_bytes}.csv"
    results = bench_dataset(
        "wide 0/1 CSV (2348 cols)", wide, ensure(wide, write_wide_csv, wide_bytes), with_ray
    )
    results += bench_dataset(
        "narrow numeric CSV (8 cols)",
        narrow,
        ensure(narrow, write_narrow_csv, narrow_bytes),
        with_ray,
    )
    header = ["dataset", "approach", "wall s", "MB/s", "records/s", "peak RSS MB", "ok"]
    table = [
        [
            str(r["dataset"]),
            str(r["approach"]),
            f"{r['wall_s']:.1f}",
            f"{r['mb_per_s']:.1f}",
            f"{r['records_per_s']:,.0f}",
            f"{r['peak_rss_mb']:.0f}",
            "yes" if r["ok"] else "NO",
        ]
        for r in results
    ]
    print_table(
        "Transform throughput (numpy handler: parse CSV, multiply by a matrix)", header, table
    )
    summary = ratios(results)
    print("\n".join(summary))
    joins = join_cost.join_rows(args.scale)
    print_table(
        "DataProcessing: InputFilter '$[1:]' + JoinSource Input vs plain (20-column CSV)",
        *join_cost.table(joins),
    )
    summary += join_cost.verdicts(joins)
    print("\n".join(join_cost.verdicts(joins)))
    payload = {"rows": results, "join_rows": joins, "ratios": summary}
    print(f"\nwritten {save_json('transform_throughput', payload)}")


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray is not installed (pip install -e '.[bench]'): skipping (c)", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    main()
