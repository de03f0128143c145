"""Pipe input mode against File mode: built-in PCA trained from an S3-compatible server.

    python benchmarks/pipe_vs_file.py                 # 2 GB of CSV
    python benchmarks/pipe_vs_file.py --size-gb 0.5   # a quicker look

The dataset (numeric CSV, 8 columns, generated once into benchmarks/data/) is cut at
line ends into objects of --object-mb and put on moto's S3 server on loopback (the one
the integration tests use). Each mode runs `batchform train --image builtin:pca` as a
user would, as its own process, measured from launch:
- time to first record: until the algorithm logs its first rows (its own log line,
  `channel train, epoch 0: first N rows read`, echoed by `-v`), counted from the job's
  start (its Starting status) and, for reference, from the command's launch (which adds
  the CLI's own start-up, the same in both modes);
- total: until the command exits, the model uploaded;
- peak disk: the most the job's BATCHFORM_HOME held (File mode copies the dataset there);
- peak RSS: of the command's whole process tree.
Targets: Pipe's time to first record (from the job's start) <= 0.1x File's, its total
<= File's, and no dataset-sized disk use.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from common import ROOT, ensure, print_table, save_json, write_narrow_csv

sys.path.insert(0, str(ROOT))
from tests.s3server import moto_server  # the tests' S3-compatible server on loopback

DATA = ROOT / "benchmarks" / "data"
BUCKET = "pipe-vs-file"
PREFIX = "dataset/"
FIRST_RECORD = "channel train, epoch 0: first"
JOB_STARTED = "Starting - Starting the training job"
HYPERPARAMETERS = {"feature_dim": "8", "num_components": "4", "mini_batch_size": "5000"}
_POLL_SECONDS = 0.1


@dataclass
class ModeResult:
    mode: str
    job_started: float | None  # seconds from launch: the job's Starting status
    first_record: float | None  # seconds from launch: the algorithm's first rows
    total_seconds: float
    peak_disk_mb: float
    peak_rss_mb: float
    returncode: int

    @property
    def first_record_in_job(self) -> float | None:
        """From the job's start: what the input mode decides, without the CLI's own start."""
        if self.first_record is None or self.job_started is None:
            return None
        return self.first_record - self.job_started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, default=2.0, help="dataset size in GB")
    parser.add_argument("--object-mb", type=float, default=32.0, help="size of each object")
    args = parser.parse_args()
    size = int(args.size_gb * 1e9)
    data = DATA / f"narrow-{size}.csv"
    rows = ensure(data, write_narrow_csv, size)
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="bf-pipe-") as tmp:
        env = _s3_environment(endpoint)
        objects = upload(data, int(args.object_mb * 1e6), env)
        results = [run_mode(mode, Path(tmp) / mode, env) for mode in ("File", "Pipe")]
    report(data, rows, objects, results)


def _s3_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def upload(data: Path, object_bytes: int, env: dict[str, str]) -> int:
    """Put the CSV on the server as objects of about `object_bytes`, cut at line ends."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=BUCKET)
    print(f"uploading {data.name} in objects of {object_bytes / 1e6:.0f} MB ...", file=sys.stderr)
    count, carry = 0, b""
    with data.open("rb") as source:
        while block := source.read(object_bytes):
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            client.put_object(Bucket=BUCKET, Key=f"{PREFIX}part-{count:05d}.csv", Body=block[:cut])
            count += 1
    if carry:
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}part-{count:05d}.csv", Body=carry)
        count += 1
    return count


def run_mode(mode: str, home: Path, env: dict[str, str]) -> ModeResult:
    argv = [sys.executable, "-m", "batchform.cli", "train", "--image", "builtin:pca"]
    argv += ["--input-mode", mode, "--channel", f"train=s3://{BUCKET}/{PREFIX}"]
    argv += ["--content-type", "text/csv", "--output", f"s3://{BUCKET}/models/", "-v"]
    argv += ["--job-name", f"pca-{mode.lower()}"]
    for name, value in HYPERPARAMETERS.items():
        argv += ["--hp", f"{name}={value}"]
    environment = {**os.environ, **env, "BATCHFORM_HOME": str(home), "COLUMNS": "250"}
    print(f"training in {mode} mode ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    marks: dict[str, float] = {}
    lines: list[str] = []
    watcher = threading.Thread(target=_watch, args=(process, started, marks, lines))
    watcher.start()
    peak_disk, peak_rss = _sample_until_exit(process, home)
    total = time.perf_counter() - started
    watcher.join()
    if process.returncode != 0:
        print(f"{mode} mode failed:\n" + "".join(lines[-40:]), file=sys.stderr)
    job_started, first_record = marks.get(JOB_STARTED), marks.get(FIRST_RECORD)
    disk, rss = peak_disk / 1e6, peak_rss / 1e6
    return ModeResult(mode, job_started, first_record, total, disk, rss, process.returncode)


def _watch(
    process: subprocess.Popen[bytes], started: float, marks: dict[str, float], lines: list[str]
) -> None:
    """Note when each marked line of the CLI's output (statuses, the job log) arrives."""
    assert process.stderr is not None
    for raw in process.stderr:
        line = raw.decode(errors="replace")
        lines.append(line)
        for mark in (JOB_STARTED, FIRST_RECORD):
            if mark in line and mark not in marks:
                marks[mark] = time.perf_counter() - started


def _sample_until_exit(process: subprocess.Popen[bytes], home: Path) -> tuple[float, float]:
    root = psutil.Process(process.pid)
    peak_disk = peak_rss = 0.0
    while process.poll() is None:
        peak_disk = max(peak_disk, _disk_use(home))
        peak_rss = max(peak_rss, _tree_rss(root))
        time.sleep(_POLL_SECONDS)
    return peak_disk, peak_rss


def _disk_use(folder: Path) -> float:
    """Bytes of disk the folder's files take (allocated blocks, as `du` counts them)."""
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # removed while walking
    return float(total)


def _tree_rss(root: psutil.Process) -> float:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return float(total)


def report(data: Path, rows: int, objects: int, results: list[ModeResult]) -> None:
    file_mode, pipe_mode = results
    size_mb = data.stat().st_size / 1e6
    header = ["mode", "first record s (job)", "first record s (launch)", "total s"]
    header += ["peak disk MB", "peak RSS MB", "exit"]
    table = [_cells(result) for result in results]
    table.append(
        [
            "Pipe / File",
            _ratio(pipe_mode.first_record_in_job, file_mode.first_record_in_job),
            _ratio(pipe_mode.first_record, file_mode.first_record),
            _ratio(pipe_mode.total_seconds, file_mode.total_seconds),
            _ratio(pipe_mode.peak_disk_mb, file_mode.peak_disk_mb),
            _ratio(pipe_mode.peak_rss_mb, file_mode.peak_rss_mb),
            "",
        ]
    )
    title = (
        f"Built-in PCA, {rows} rows x 8 features ({size_mb:.0f} MB CSV in {objects} objects) "
        "on a loopback S3 server"
    )
    print_table(title, header, table)
    print(
        "first record (job): from the job's start (Starting) to the algorithm's first rows; "
        "(launch): from the command's launch, its own start-up included"
    )
    print("targets: first record (job) ratio <= 0.1, total ratio <= 1.0, Pipe disk << dataset")
    payload: dict[str, Any] = {
        "dataset_mb": size_mb,
        "rows": rows,
        "objects": objects,
        "results": [{**asdict(r), "first_record_in_job": r.first_record_in_job} for r in results],
    }
    print(f"wrote {save_json('pipe_vs_file', payload)}")


def _cells(result: ModeResult) -> list[str]:
    return [
        result.mode,
        _seconds(result.first_record_in_job),
        _seconds(result.first_record),
        f"{result.total_seconds:.1f}",
        f"{result.peak_disk_mb:.0f}",
        f"{result.peak_rss_mb:.0f}",
        str(result.returncode),
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or not theirs:
        return "-"
    return f"{ours / theirs:.3f}"


if __name__ == "__main__":
    main()
