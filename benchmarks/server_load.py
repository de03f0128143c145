"""Load test of `batchform server`: many clients polling Describe/List while jobs run.

    python benchmarks/server_load.py [--clients 50] [--seconds 30] [--jobs 4]

Starts a real server on loopback, starts --jobs transform jobs (echo handler, SingleRecord,
so the engine works per record), then runs --clients clients (keep-alive AWS JSON 1.1
connections, threads spread over a few processes) that alternate DescribeTransformJob
and ListTransformJobs for --seconds. Prints latency percentiles and errors; target: 0 errors,
p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.serverproc

from tests.serverproc import start_server, stop_server

from common import ROOT, ensure, print_table, save_json, write_narrow_csv

ECHO = ROOT / "examples" / "echo_handler"
DATA = ROOT / "benchmarks" / "data" / "server-load"
CLIENT_PROCESSES = 5
STRATEGY = os.environ.get("LOAD_STRATEGY", "SingleRecord")


def main() -> None:
    args = _arguments()
    if args.client_worker:
        _client_worker(args)
        return
    source = _dataset(args.job_mb)
    with tempfile.TemporaryDirectory(prefix="batchform-load-") as folder:
        server = start_server(Path(folder) / "home", "--max-concurrent-jobs", str(args.jobs))
        try:
            names = _start_jobs(server.client(), source, Path(folder), args.jobs)
            time.sleep(2)  # let the jobs get past their model start
            latencies, errors = _load(server.url, names, args)
            statuses = _statuses(server.client(), names)
        finally:
            stop_server(server)
    _report(args, latencies, errors, statuses)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--job-mb", type=int, default=40, help="input size of each job")
    parser.add_argument("--client-worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--names", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def _dataset(job_mb: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    for index in range(4):
        ensure(DATA / f"part-{index}.csv", write_narrow_csv, job_mb * 1024 * 1024 // 4)
    return DATA


def _start_jobs(sm: Any, source: Path, folder: Path, count: int) -> list[str]:
    sm.create_model(ModelName="load-echo", PrimaryContainer={"Image": str(ECHO)})
    names = [f"load-job-{index}" for index in range(count)]
    for name in names:
        sm.create_transform_job(
            TransformJobName=name,
            ModelName="load-echo",
            BatchStrategy=STRATEGY,
            MaxConcurrentTransforms=2,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{source}/"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": str(folder / name), "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
    return names


def _load(url: str, names: list[str], args: argparse.Namespace) -> tuple[list[float], int]:
    per_process = [args.clients // CLIENT_PROCESSES] * CLIENT_PROCESSES
    for index in range(args.clients % CLIENT_PROCESSES):
        per_process[index] += 1
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client-worker",
                url,
                "--threads",
                str(threads),
                "--seconds",
                str(args.seconds),
                "--names",
                ",".join(names),
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "AWS_ACCESS_KEY_ID": "load", "AWS_SECRET_ACCESS_KEY": "load"},
        )
        for threads in per_process
        if threads
    ]
    latencies: list[float] = []
    errors = 0
    for worker in workers:
        out, _ = worker.communicate()
        result = json.loads(out)
        latencies += result["latencies"]
        errors += result["errors"]
    return latencies, errors


def _client_worker(args: argparse.Namespace) -> None:
    """One process of the load: --threads clients, each its own boto3 client."""
    names = args.names.split(",")
    results: list[tuple[list[float], int]] = []
    ready = threading.Barrier(args.threads)
    threads = [
        threading.Thread(
            target=lambda: results.append(_client(args.client_worker, names, args.seconds, ready))
        )
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [value for mine, _ in results for value in mine]
    print(json.dumps({"latencies": latencies, "errors": sum(failed for _, failed in results)}))


def _client(
    url: str, names: list[str], seconds: float, ready: threading.Barrier
) -> tuple[list[float], int]:
    """A keep-alive JSON 1.1 client, light enough that the clients do not starve the server."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    ready.wait()
    mine: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if random.random() < 0.5:
            call = ("DescribeTransformJob", {"TransformJobName": random.choice(names)})
        else:
            call = ("ListTransformJobs", {"MaxResults": 10})
        started = time.perf_counter()
        try:
            _send(connection, *call)
            mine.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException, ValueError):
            failed += 1
            connection.close()
    return mine, failed


def _send(connection: http.client.HTTPConnection, operation: str, body: dict[str, Any]) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"SageMaker.{operation}",
    }
    connection.request("POST", "/", json.dumps(body), headers)
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise ValueError(f"{operation}: HTTP {response.status}: {payload[:200]!r}")
    json.loads(payload)


def _statuses(sm: Any, names: list[str]) -> dict[str, str]:
    return {
        name: sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"]
        for name in names
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _report(
    args: argparse.Namespace, latencies: list[float], errors: int, statuses: dict[str, str]
) -> None:
    ordered = sorted(latencies)
    p50, p99 = _percentile(ordered, 0.5), _percentile(ordered, 0.99)
    running = sum(1 for status in statuses.values() if status == "InProgress")
    row = [
        str(args.clients),
        f"{args.seconds:.0f}",
        str(len(ordered)),
        f"{len(ordered) / args.seconds:.0f}",
        f"{p50 * 1000:.1f}",
        f"{p99 * 1000:.1f}",
        f"{(ordered[-1] if ordered else 0) * 1000:.1f}",
        str(errors),
        f"{running}/{len(statuses)}",
    ]
    header = [
        "clients",
        "seconds",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "jobs still running at end",
    ]
    print_table("Describe/List under load while transform jobs run", header, [row])
    verdict = "met" if errors == 0 and p99 < 0.1 else "NOT met"
    print(f"\ntarget (0 errors, p99 < 100 ms): {verdict}")
    save_json(
        "server_load",
        {
            "clients": args.clients,
            "seconds": args.seconds,
            "requests": len(ordered),
            "p50_ms": p50 * 1000,
            "p99_ms": p99 * 1000,
            "errors": errors,
            "job_statuses": statuses,
        },
    )


if __name__ == "__main__":
    main()
