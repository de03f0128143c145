"""Ray scaling: throughput with 1, 2 and 4 instances on the Ray executor vs the local
executor, on this machine, and what Ray costs to start.

    python benchmarks/ray_scaling.py              # 160 MB of narrow CSV in 8 objects
    python benchmarks/ray_scaling.py --scale 0.25 # a quick look

Each run is a `batchform transform` process of the numpy handler over the same 8
objects (instances take whole objects, as SageMaker shards them). Ray runs join one Ray
head started here once (its start-up is measured on its own), with each instance
reserving its share of this machine's cores (BATCHFORM_INSTANCE_CPUS = cores / N), as
the local executor shares them. "instances ready" is the time from "starting N
instance(s)" to the last instance's model answering, read from the job log: actor
placement plus model start on Ray, model start alone locally; "wall s" is the whole
command (Ray: joining the cluster too), "job s" the job from its start to its end, and
"ready MB/s" the rate once all instances are ready (job s minus ready s): the steady
per-instance throughput the docs project to larger clusters from.
Results go to benchmarks/results/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, ensure, print_table, run_measured, save_json, transform_argv
from common import write_narrow_csv as write_csv

MODEL = ROOT / "examples" / "numpy_handler"
DATA = ROOT / "benchmarks" / "data"
OBJECTS = 8
INSTANCES = (1, 2, 4)
CORES = os.cpu_count() or 1
# Starts a Ray head in its own process, prints its address and start-up time, and shuts
# it down when its stdin closes: only what this benchmark started is ever stopped.
# Drivers joining it need its authentication mode (Ray turns token auth on for new
# local clusters; the token itself is in ~/.ray/auth_token).
HEAD = """
import json, os, sys, time
started = time.perf_counter()
import ray
ray.init(num_cpus={cores}, object_store_memory=200 * 2**20, include_dashboard=False)
address = ray.get_runtime_context().gcs_address
seconds = time.perf_counter() - started
print(json.dumps([address, seconds, os.environ.get("RAY_AUTH_MODE")]), flush=True)
sys.stdin.read()
ray.shutdown()
"""


def objects(scale: float) -> tuple[Path, int, int]:
    """8 line-aligned pieces of one generated CSV: (folder, bytes, records)."""
    size = int(160e6 * scale)
    source = DATA / f"narrow-{size}.csv"
    records = ensure(source, write_csv, size)
    folder = DATA / f"ray-scaling-{size}"
    if not folder.exists():
        _cut(source, folder)
    return folder, sum(p.stat().st_size for p in folder.iterdir()), records


def _cut(source: Path, folder: Path) -> None:
    data = source.read_bytes()
    folder.mkdir(parents=True)
    start = 0
    for index in range(OBJECTS):
        end = (
            len(data)
            if index == OBJECTS - 1
            else data.index(b"\n", len(data) * (index + 1) // OBJECTS) + 1
        )
        (folder / f"part-{index}.csv").write_bytes(data[start:end])
        start = end


def start_head() -> tuple[subprocess.Popen[str], dict[str, str], float]:
    """A Ray head of this machine's cores; (process, what drivers need to join, seconds)."""
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD.format(cores=CORES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert head.stdout is not None
    address, seconds, auth = json.loads(head.stdout.readline())
    joining = {"RAY_ADDRESS": address, **({"RAY_AUTH_MODE": auth} if auth else {})}
    return head, joining, float(seconds)


def stop_head(head: subprocess.Popen[str]) -> None:
    assert head.stdin is not None
    head.stdin.close()
    head.wait(timeout=60)


def run(
    executor: str, instances: int, folder: Path, work: Path, joining: dict[str, str]
) -> dict[str, Any]:
    name = f"{executor}-{instances}"
    output = work / name
    env = {"BATCHFORM_HOME": str(work / "home")}
    if executor == "ray":
        env.update(
            joining,
            BATCHFORM_INSTANCE_CPUS=f"{CORES / instances:g}",
            BATCHFORM_INSTANCE_MEMORY_MB="1024",
        )
    argv = transform_argv(MODEL, folder, output, "--instances", str(instances))
    argv += ["--executor", executor, "--name", name]
    measured = run_measured(f"{executor}, {instances} instance(s)", argv, env=env)
    summary = json.loads((output / "_batchform" / "job_summary.json").read_text())
    return {
        "executor": executor,
        "instances": instances,
        "ok": measured.returncode == 0 and summary["status"] == "Completed",
        "wall_s": measured.wall_seconds,
        "job_s": summary["wall_seconds"],
        "records": summary["totals"]["records"],
        "bytes": summary["totals"]["bytes_read"],
        "ready_s": _ready_seconds(work / "home" / "jobs" / name / "log"),
        "peak_rss_mb": measured.peak_rss_mb,
    }


def _ready_seconds(log: Path) -> float:
    """From "starting N instance(s)" to the last instance's effective-settings line."""
    stamps = {"start": [], "ready": []}  # type: dict[str, list[datetime]]
    for line in log.read_text().splitlines():
        stamp = datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))
        if "[data-log] starting " in line:
            stamps["start"].append(stamp)
        elif "MaxConcurrentTransforms=" in line:
            stamps["ready"].append(stamp)
    return (max(stamps["ready"]) - min(stamps["start"])).total_seconds()


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    local = {row["instances"]: row for row in rows if row["executor"] == "local"}
    header = ["executor", "instances", "wall s", "job s", "ready s", "MB/s", "job MB/s"]
    header += ["ready MB/s", "vs local", "ok"]
    lines = []
    for row in rows:
        rate = row["bytes"] / 1e6 / row["wall_s"]
        versus = local[row["instances"]]["wall_s"] / row["wall_s"]
        lines.append(
            [
                row["executor"],
                str(row["instances"]),
                f"{row['wall_s']:.1f}",
                f"{row['job_s']:.1f}",
                f"{row['ready_s']:.2f}",
                f"{rate:.1f}",
                f"{row['bytes'] / 1e6 / row['job_s']:.1f}",
                f"{row['bytes'] / 1e6 / (row['job_s'] - row['ready_s']):.1f}",
                f"{versus:.2f}x",
                "yes" if row["ok"] else "NO",
            ]
        )
    return header, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 160 MB in 8 objects")
    args = parser.parse_args()
    folder, size, _ = objects(args.scale)
    print(f"{OBJECTS} objects, {size / 1e6:.0f} MB, {CORES} cores", file=sys.stderr)
    head, joining, head_seconds = start_head()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bf-ray-bench-") as tmp:
            for instances in INSTANCES:
                for executor in ("local", "ray"):
                    rows.append(run(executor, instances, folder, Path(tmp), joining))
    finally:
        stop_head(head)
    print_table(
        f"Ray scaling: numpy handler over {size / 1e6:.0f} MB of CSV in {OBJECTS} objects, "
        f"{CORES} cores (MB/s: over the whole command; job MB/s: the job alone; ready "
        "MB/s: once every instance is ready; vs local: local wall / this wall)",
        *table(rows),
    )
    print(f"\nRay head start-up (ray.init of a new local cluster): {head_seconds:.1f} s")
    payload = {"cores": CORES, "bytes": size, "ray_head_start_s": head_seconds, "rows": rows}
    print(f"written {save_json('ray_scaling', payload)}")


if __name__ == "__main__":
    main()
