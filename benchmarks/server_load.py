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
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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
        os.nice(int(os.environ.get("LOAD_CLIENT_NICENESS", "0")))
        _client_worker(args)
        return
    source = _dataset(args.job_mb)
    with tempfile.TemporaryDirectory(prefix="batchform-load-") as folder:
        server = start_server(Path(folder) / "home", "--max-concurrent-jobs", str(args.jobs))
        try:
            names = _start_jobs(server.client(), source, Path(folder), args.jobs)
            time.sleep(2)  # let the jobs get past their model start
            latencies, errors = _load(server.url, names, args)
            wrk = _wrk(server.url, names, args) if shutil.which("wrk") else None
            statuses = _statuses(server.client(), names)
            inside = _server_side(server.url)
        finally:
            stop_server(server)
    _report(args, latencies, errors, statuses, inside)
    _report_wrk(args, wrk)


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


_WRK_SCRIPT = """
local names = {%s}
local headers = {["Content-Type"] = "application/x-amz-json-1.1"}
local count = 0
request = function()
  count = count + 1
  if count %% 2 == 0 then
    headers["X-Amz-Target"] = "SageMaker.DescribeTransformJob"
    local name = names[(count / 2) %% #names + 1]
    return wrk.format("POST", "/", headers, '{"TransformJobName":"' .. name .. '"}')
  end
  headers["X-Amz-Target"] = "SageMaker.ListTransformJobs"
  return wrk.format("POST", "/", headers, '{"MaxResults":10}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"errors":%%d}\\n', summary.requests, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _wrk(url: str, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The same mix from wrk (C, event-driven): what the server does when its clients
    are other machines rather than Python threads competing with it for these cores."""
    quoted = ", ".join(f'"{name}"' for name in names)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_SCRIPT % quoted)
        script.flush()
        command = [
            "wrk",
            "-t",
            "2",
            "-c",
            str(args.clients),
            "-d",
            f"{args.seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK "))
    result: dict[str, Any] = json.loads(line[4:])
    return result


def _report_wrk(args: argparse.Namespace, wrk: dict[str, Any] | None) -> None:
    if wrk is None:
        print("\nwrk is not installed (apt-get install wrk): no C-driver run")
        return
    row = [
        str(args.clients),
        f"{args.seconds:.0f}",
        str(wrk["requests"]),
        f"{wrk['requests'] / args.seconds:.0f}",
        f"{wrk['p50_us'] / 1000:.1f}",
        f"{wrk['p99_us'] / 1000:.1f}",
        f"{wrk['max_us'] / 1000:.1f}",
        str(wrk["errors"]),
    ]
    header = ["clients", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"]
    print_table("The same load from wrk (keep-alive connections)", header, [row])
    verdict = "met" if wrk["errors"] == 0 and wrk["p99_us"] < 100_000 else "NOT met"
    print(f"\ntarget with wrk (0 errors, p99 < 100 ms): {verdict}")
    save_json("server_load_wrk", {"clients": args.clients, "seconds": args.seconds, **wrk})


def _server_side(url: str) -> dict[str, float]:
    """p50/p99 (bucket upper bounds) of the server's own API latency histogram."""
    with urllib.request.urlopen(url + "/metrics") as answer:
        text = answer.read().decode()
    counts: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("batchform_api_request_seconds_bucket") and (
            'operation="DescribeTransformJob"' in line or 'operation="ListTransformJobs"' in line
        ):
            bound = line.split('le="')[1].split('"')[0]
            value = float("inf") if bound == "+Inf" else float(bound)
            counts[value] = counts.get(value, 0.0) + float(line.rsplit(" ", 1)[1])
    total = counts.get(float("inf"), 0.0)
    bounds = sorted(counts)
    return {
        name: next((b for b in bounds if counts[b] >= fraction * total), float("inf"))
        for name, fraction in (("p50", 0.5), ("p99", 0.99))
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _report(
    args: argparse.Namespace,
    latencies: list[float],
    errors: int,
    statuses: dict[str, str],
    inside: dict[str, float],
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
        f"≤{inside['p50'] * 1000:g}",
        f"≤{inside['p99'] * 1000:g}",
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
        "server-side p50 ms",
        "server-side p99 ms",
        "jobs running after both loads",
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
            "server_side_p50_ms_at_most": inside["p50"] * 1000,
            "server_side_p99_ms_at_most": inside["p99"] * 1000,
            "p50_ms": p50 * 1000,
            "p99_ms": p99 * 1000,
            "errors": errors,
            "job_statuses": statuses,
        },
    )


if __name__ == "__main__":
    main()
