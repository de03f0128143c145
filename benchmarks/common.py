"""Shared helpers for the benchmarks: data generation, process-tree measurement, tables."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Measurement:
    name: str
    wall_seconds: float
    peak_rss_mb: float
    peak_main_rss_mb: float
    returncode: int


def run_measured(
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    interval: float = 0.05,
    *,
    cold: bool = False,
) -> Measurement:
    """Run a command; wall time from launch to exit, peak RSS of its whole process tree.
    `cold`: from an empty page cache (see `drop_page_cache`)."""
    print(f"running {name} ...", file=sys.stderr, flush=True)
    if cold:
        drop_page_cache()
    else:
        os.sync()  # an earlier run's output still being written back would slow this one
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: chatty tools never block
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        root = psutil.Process(process.pid)
        peak_tree = peak_main = 0.0
        while process.poll() is None:
            main, tree = _tree_rss(root)
            peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main)
            time.sleep(interval)
        wall = time.perf_counter() - started
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if process.returncode != 0:
        print(f"{name} failed ({process.returncode}):\n{stderr[-3000:]}", file=sys.stderr)
    return Measurement(name, wall, peak_tree / 1e6, peak_main / 1e6, process.returncode)


def drop_page_cache() -> None:
    """Write back and drop the page cache, where allowed (root on Linux), so that each
    run starts from the same state. On this virtual machine a run whose page cache
    grows into memory the host has not backed (yet, or again) takes up to a third
    longer, in system time, than one that reuses memory just freed; which runs of a
    case did so depended on what the runs before them left behind."""
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("1\n")


def transform_argv(model: Path, source: Path, output: Path, *extra: str) -> list[str]:
    """`batchform transform` of a CSV input, Line split, MultiRecord, one answer a line."""
    return [
        sys.executable,
        "-m",
        "batchform.cli",
        "transform",
        "--model",
        str(model),
        "--input",
        str(source),
        "--output",
        str(output),
        "--content-type",
        "text/csv",
        "--split-type",
        "Line",
        "--strategy",
        "MultiRecord",
        "--assemble-with",
        "Line",
        *extra,
    ]


def _tree_rss(root: psutil.Process) -> tuple[float, float]:
    try:
        main = root.memory_info().rss
        children = root.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0
    total = main
    for child in children:
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return float(main), float(total)


def write_wide_csv(path: Path, target_bytes: int, columns: int = 2348, seed: int = 0) -> int:
    """A 0/1 item x user matrix like the notebook's; returns the number of rows."""
    rng = np.random.default_rng(seed)
    row_bytes = 2 * columns
    rows = max(1, target_bytes // row_bytes)
    block = 2000
    with path.open("wb") as out:
        for start in range(0, rows, block):
            count = min(block, rows - start)
            matrix = (rng.random((count, columns)) < 0.05).astype(np.uint8) + ord("0")
            text = np.full((count, 2 * columns), ord(","), dtype=np.uint8)
            text[:, 0::2] = matrix
            text[:, -1] = ord("\n")
            out.write(text.tobytes())
    return rows


def write_narrow_csv(path: Path, target_bytes: int, columns: int = 8, seed: int = 1) -> int:
    """Numeric rows of a few float columns; returns the number of rows."""
    rng = np.random.default_rng(seed)
    rows_written = 0
    with path.open("wb") as out:
        while out.tell() < target_bytes:
            block = rng.random((50000, columns)) * 100
            lines = "\n".join(",".join(f"{v:.3f}" for v in row) for row in block) + "\n"
            out.write(lines.encode())
            rows_written += len(block)
    return rows_written


def ensure(path: Path, maker: object, target_bytes: int) -> int:
    """Generate the file once; reuse it between runs (the row count is stored beside it)."""
    meta = path.with_suffix(".rows")
    if path.exists() and meta.exists() and path.stat().st_size >= target_bytes * 0.9:
        return int(meta.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = maker(path, target_bytes)  # type: ignore[operator]
    meta.write_text(str(rows))
    return int(rows)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |")


def save_json(name: str, payload: object) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=_jsonable))
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, Measurement):
        return asdict(value)
    return str(value)
