"""InvokeEndpoint through `batchform server` vs calling the model processes directly.

Part 1: the same wrk load (keep-alive connections, a small CSV body) against the model
processes' own ports and against the server's /endpoints/<name>/invocations, with 1
and 2 instances behind the endpoint; the ratio is what the proxy keeps of the direct
throughput (target >= 0.7). Each run also reports the CPU time spent per request by
the load generator, the server process and the model processes: on a machine whose
cores the direct run already fills, the proxy's own CPU per request bounds the ratio.

Part 2, the seed notebook's comparison made concrete: PCA projections of a training
matrix by one batch transform job vs by the notebook's loop of `predict` calls over 500
mini-batches against an endpoint.

Needs wrk (apt-get install wrk) for part 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.serverproc

from tests.serverproc import Server, start_server, stop_server

from common import ROOT, print_table, save_json

HANDLER = ROOT / "tests" / "handlers" / "csv_sum"
BODY = "1,2,3,4,5,6,7,8\n" * 4
ROLE = "arn:aws:iam::000000000000:role/bench"
PCA_MODEL = "notebook-pca"

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "%s"
wrk.headers["Content-Type"] = "text/csv"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%%d,"p50_us":%%d,"p99_us":%%d,"errors":%%d}\\n',
    summary.requests, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory(prefix="batchform-endpoint-bench-") as folder:
        server = start_server(Path(folder) / "home")
        try:
            notebook = _notebook_comparison(server, Path(folder), args)
            rows = _proxy_rows(server, args) if shutil.which("wrk") else []
        finally:
            stop_server(server)
    _report(rows, notebook, args)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--items", type=int, default=3000, help="rows of the notebook matrix")
    parser.add_argument("--users", type=int, default=500, help="columns (PCA feature_dim)")
    return parser.parse_args()


# Part 1 ------------------------------------------------------------------------------


def _proxy_rows(server: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    sagemaker = server.client()
    sagemaker.create_model(
        ModelName="sum",
        PrimaryContainer={
            "Image": str(HANDLER),
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        },
        ExecutionRoleArn=ROLE,
    )
    pca_row = ",".join(["0", "1"] * (args.users // 2)) + "\n"
    rows = []
    for model, label, body in (("sum", "csv_sum", BODY), (PCA_MODEL, "built-in PCA", pca_row)):
        for count in (1, 2):
            name = f"{model}-{count}"
            _deploy(sagemaker, name, model, count)
            ports = _model_ports(server, name)
            urls = [f"http://127.0.0.1:{port}/invocations" for port in ports]
            direct = _wrk_split(urls, body, args, server)
            proxied = _wrk_split([f"{server.url}/endpoints/{name}/invocations"], body, args, server)
            rows.append(
                {"model": label, "bytes": len(body), "instances": count,
                 "direct": direct, "proxied": proxied}
            )  # fmt: skip
            sagemaker.delete_endpoint(EndpointName=name)
    return rows


def _deploy(sagemaker: Any, name: str, model: str, count: int) -> None:
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": count}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    while (status := sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]) not in (
        "InService",
        "Failed",
    ):
        time.sleep(0.2)
    if status != "InService":
        raise SystemExit(f"endpoint {name}: {sagemaker.describe_endpoint(EndpointName=name)}")


def _model_ports(server: Server, endpoint: str) -> list[int]:
    """The ports of the endpoint's model processes, from their contract environment."""
    ports = set()
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            environment = process.environ()
        except psutil.Error:
            continue
        if f"/endpoints/{endpoint}/" in environment.get("SAGEMAKER_BASE_DIR", ""):
            ports.add(int(environment["SAGEMAKER_BIND_TO_PORT"]))
    return sorted(ports)


def _wrk_split(
    urls: list[str], body: str, args: argparse.Namespace, server: Server
) -> dict[str, float]:
    """One wrk per URL at once, the connections shared out; requests summed, with the
    CPU seconds each side spent meanwhile."""
    cpu_before = _cpu_seconds(server)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_SCRIPT % body.replace("\n", "\\n"))
        script.flush()
        each = max(1, args.connections // len(urls))
        runs = [
            subprocess.Popen(
                [
                    "wrk",
                    "-t",
                    "1",
                    "-c",
                    str(each),
                    "-d",
                    f"{args.seconds:.0f}s",
                    "-s",
                    script.name,
                    url,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for url in urls
        ]
        results = [_wrk_result(run.communicate()[0]) for run in runs]
    requests = sum(r["requests"] for r in results)
    cpu = {side: after - cpu_before[side] for side, after in _cpu_seconds(server).items()}
    return {
        "rps": requests / args.seconds,
        "p50_ms": max(r["p50_us"] for r in results) / 1000,
        "p99_ms": max(r["p99_us"] for r in results) / 1000,
        "errors": sum(r["errors"] for r in results),
        **{f"cpu_us_{side}": 1e6 * seconds / max(1, requests) for side, seconds in cpu.items()},
    }


def _cpu_seconds(server: Server) -> dict[str, float]:
    """User + system CPU so far of the load generators (this process's finished
    children), the server process, and the model processes under it."""
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    root = psutil.Process(server.process.pid)
    models = 0.0
    for process in root.children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        models += times.user + times.system
    own = root.cpu_times()
    return {
        "client": finished.ru_utime + finished.ru_stime,
        "server": own.user + own.system,
        "models": models,
    }


def _wrk_result(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    result: dict[str, Any] = json.loads(line[4:])
    return result


# Part 2 ------------------------------------------------------------------------------


def _notebook_comparison(
    server: Server, folder: Path, args: argparse.Namespace
) -> dict[str, float]:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    matrix = (np.random.default_rng(0).random((args.items, args.users)) < 0.05).astype(np.int8)
    data = folder / "train"
    data.mkdir()
    np.savetxt(data / "train.csv", matrix, delimiter=",", fmt="%d")
    model = _train_pca(sagemaker, data, folder, args.users)
    started = time.perf_counter()
    sagemaker.create_transform_job(
        TransformJobName="notebook-batch",
        ModelName=model,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": str(folder / "batch-out"), "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    )
    _wait(
        lambda: sagemaker.describe_transform_job(TransformJobName="notebook-batch"),
        "TransformJobStatus",
    )
    batch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _deploy(sagemaker, "notebook-endpoint", model, 1)
    deploy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for array in np.array_split(matrix, 500):
        text = "\n".join(",".join(str(v) for v in row) for row in array)
        answer = runtime.invoke_endpoint(
            EndpointName="notebook-endpoint", Body=text, ContentType="text/csv",
            Accept="application/json",
        )  # fmt: skip
        json.loads(answer["Body"].read())
    loop_seconds = time.perf_counter() - started
    sagemaker.delete_endpoint(EndpointName="notebook-endpoint")
    return {"batch_s": batch_seconds, "deploy_s": deploy_seconds, "loop_s": loop_seconds}


def _train_pca(sagemaker: Any, data: Path, folder: Path, features: int) -> str:
    sagemaker.create_training_job(
        TrainingJobName="notebook-pca",
        AlgorithmSpecification={"TrainingImage": "builtin:pca", "TrainingInputMode": "File"},
        HyperParameters={"feature_dim": str(features), "num_components": "10",
                         "mini_batch_size": "500", "algorithm_mode": "randomized"},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv",
                          "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                          "S3Uri": f"{data}/"}}}],
        OutputDataConfig={"S3OutputPath": str(folder / "models")},
        ResourceConfig={"InstanceType": "ml.c4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        RoleArn=ROLE,
    )  # fmt: skip
    _wait(
        lambda: sagemaker.describe_training_job(TrainingJobName="notebook-pca"),
        "TrainingJobStatus",
    )
    artifacts = sagemaker.describe_training_job(TrainingJobName="notebook-pca")["ModelArtifacts"]
    sagemaker.create_model(
        ModelName=PCA_MODEL,
        PrimaryContainer={
            "Image": "builtin:pca",
            "ModelDataUrl": artifacts["S3ModelArtifacts"],
            "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        },
        ExecutionRoleArn=ROLE,
    )
    return PCA_MODEL


def _wait(describe: Any, field: str) -> None:
    while (current := describe())[field] not in ("Completed", "Failed", "Stopped"):
        time.sleep(0.2)
    if current[field] != "Completed":
        raise SystemExit(f"job ended {current[field]}: {current.get('FailureReason')}")


# Report ------------------------------------------------------------------------------


def _report(
    rows: list[dict[str, Any]], notebook: dict[str, float], args: argparse.Namespace
) -> None:
    if not rows:
        print("wrk is not installed (apt-get install wrk): no proxy throughput run")
    table = []
    for row in rows:
        direct, proxied = row["direct"], row["proxied"]
        for label, result in (
            ("direct to the model", direct),
            ("InvokeEndpoint (server)", proxied),
        ):
            figures = [f"{result['rps']:.0f}", f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}"]
            cpu = [f"{result[f'cpu_us_{side}']:.0f}" for side in ("client", "server", "models")]
            table.append(
                [row["model"], str(row["instances"]), label, *figures, str(result["errors"]), *cpu]
            )
        table.append([row["model"], str(row["instances"]), "ratio server / direct",
                      f"{proxied['rps'] / direct['rps']:.2f}", "", "", "", "", "", ""])  # fmt: skip
    if table:
        print_table(
            f"InvokeEndpoint, one small CSV request at a time per connection, "
            f"{args.connections} keep-alive connections, {args.seconds:.0f} s, "
            "1 model worker per instance",
            [
                "model",
                "instances",
                "path",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "CPU us/req wrk",
                "server",
                "models",
            ],
            table,
        )
    print_table(
        f"The notebook's comparison: PCA projections of a {args.items} x {args.users} matrix",
        ["way", "seconds"],
        [
            ["one batch transform job (MultiRecord, Line)", f"{notebook['batch_s']:.1f}"],
            ["deploy an endpoint", f"{notebook['deploy_s']:.1f}"],
            ["loop of predict over 500 mini-batches", f"{notebook['loop_s']:.1f}"],
        ],
    )
    save_json("endpoint_throughput", {"proxy": rows, "notebook": notebook, "args": vars(args)})


if __name__ == "__main__":
    main()
