"""Memory stays flat: a 2 GB CSV through the echo handler, peak RSS of the batchform process.

    python benchmarks/transform_memory.py            # 2 GB
    python benchmarks/transform_memory.py --gb 0.2   # a quick look

The bound is by construction, about (MaxConcurrentTransforms + 2) x MaxPayloadInMB of
payloads plus the interpreter; the target is a peak RSS under 300 MB for the main
process (the handler workers are separate processes and are reported apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import ROOT, ensure, print_table, run_measured, save_json, write_narrow_csv

DATA = ROOT / "benchmarks" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0)
    args = parser.parse_args()
    size = int(args.gb * 1e9)
    path = DATA / f"narrow-{size}.csv"
    rows = ensure(path, write_narrow_csv, size)
    rows_out = []
    for concurrency in (1, 4):
        with tempfile.TemporaryDirectory(prefix="bf-mem-") as tmp:
            argv = [
                sys.executable,
                "-m",
                "batchform.cli",
                "transform",
                "--model",
                str(ROOT / "examples" / "echo_handler"),
                "--input",
                str(path),
                "--output",
                f"{tmp}/out",
                "--content-type",
                "text/csv",
                "--split-type",
                "Line",
                "--strategy",
                "MultiRecord",
                "--concurrency",
                str(concurrency),
            ]
            m = run_measured(
                f"echo, concurrency {concurrency}", argv, env={"BATCHFORM_HOME": f"{tmp}/home"}
            )
            out_size = Path(tmp, "out", path.name + ".out").stat().st_size
        rows_out.append(
            {
                "run": m.name,
                "input_bytes": path.stat().st_size,
                "rows": rows,
                "wall_s": m.wall_seconds,
                "main_peak_rss_mb": m.peak_main_rss_mb,
                "tree_peak_rss_mb": m.peak_rss_mb,
                "output_matches_size": out_size == path.stat().st_size,
                "ok": m.returncode == 0,
            }
        )
    print_table(
        f"Peak memory transforming {path.stat().st_size / 1e9:.2f} GB (target: main < 300 MB)",
        ["run", "wall s", "MB/s", "main peak RSS MB", "tree peak RSS MB", "output ok"],
        [
            [
                r["run"],
                f"{r['wall_s']:.1f}",
                f"{r['input_bytes'] / 1e6 / r['wall_s']:.0f}",
                f"{r['main_peak_rss_mb']:.0f}",
                f"{r['tree_peak_rss_mb']:.0f}",
                "yes" if r["output_matches_size"] and r["ok"] else "NO",
            ]
            for r in rows_out
        ],
    )
    print(f"\nwritten {save_json('transform_memory', rows_out)}")


if __name__ == "__main__":
    main()
