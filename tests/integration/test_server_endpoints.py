"""Real-time endpoints through boto3 against a real `batchform server` process."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.serverproc import Server, running_server, start_server, stop_server

ECHO = Path(__file__).resolve().parents[1] / "models" / "echo"
SUM_HANDLER = Path(__file__).resolve().parents[1] / "handlers" / "csv_sum"
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("endpoints-home")) as running:
        yield running


def wait_status(sagemaker: Any, name: str, *wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in wanted:
            return described
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {wanted}: {described}")


def deploy(
    sagemaker: Any,
    name: str,
    image: Path,
    count: int = 1,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": str(image), "Environment": environment or {}},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/x",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_status(sagemaker, name, "InService", "Failed")


def invoke(runtime: Any, name: str, body: bytes, **options: Any) -> Any:
    return runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/csv", **options)


def endpoint_processes(server: Server, marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if marker in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_endpoint_goes_creating_to_in_service_and_answers(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    described = deploy(sagemaker, "echo-one", ECHO)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "echo-one"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    answer = invoke(runtime, "echo-one", b"1,2,3\n", Accept="text/csv")
    assert answer["Body"].read() == b"1,2,3\n"
    assert answer["ContentType"] == "text/csv"
    assert answer["InvokedProductionVariant"] == "AllTraffic"


def test_custom_attributes_cross_both_ways(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    deploy(sagemaker, "echo-attributes", ECHO)
    answer = invoke(runtime, "echo-attributes", b"__headers__", CustomAttributes="trace=7")
    seen = json.loads(answer["Body"].read())
    assert seen["X-Amzn-SageMaker-Custom-Attributes"] == "trace=7"
    assert answer["CustomAttributes"] == "echoed:trace=7"


def test_invocation_errors_have_sagemaker_runtime_codes(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    deploy(sagemaker, "echo-failing", ECHO, environment={"ECHO_FAIL_MARKER": "BAD"})
    with pytest.raises(runtime.exceptions.ModelError) as model_error:
        invoke(runtime, "echo-failing", b"a,BAD\n")
    error = model_error.value.response
    assert error["OriginalStatusCode"] == 500
    assert "fail marker" in error["OriginalMessage"]
    assert "/aws/sagemaker/Endpoints/echo-failing" in error["LogStreamArn"]
    with pytest.raises(runtime.exceptions.ValidationError, match="no-such-endpoint"):
        invoke(runtime, "no-such-endpoint", b"1\n")
    with pytest.raises(runtime.exceptions.ValidationError, match="exceeds the limit"):
        invoke(runtime, "echo-failing", b"x" * (6 * 1024 * 1024 + 1))
    answer = invoke(runtime, "echo-failing", b"y" * (6 * 1024 * 1024))
    assert len(answer["Body"].read()) == 6 * 1024 * 1024


def test_two_instances_share_the_traffic_and_a_killed_one_is_replaced(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    deploy(sagemaker, "echo-pair", ECHO, count=2)
    for n in range(20):
        invoke(runtime, "echo-pair", f"{n}\n".encode())
    log = (server.home / "endpoints" / "echo-pair" / "log").read_text()
    answering = {
        line.split("[")[1].split("]")[0] for line in log.splitlines() if "invocation" in line
    }
    assert answering == {
        "AllTraffic/i-echo-pair-alltraffic-1",
        "AllTraffic/i-echo-pair-alltraffic-2",
    }, "both model processes answer"
    victim = endpoint_processes(server, str(ECHO / "serve"))[0]
    victim.kill()
    answers = [invoke(runtime, "echo-pair", f"{n}\n".encode())["Body"].read() for n in range(30)]
    assert answers == [f"{n}\n".encode() for n in range(30)]
    deadline = time.monotonic() + WAIT_SECONDS
    while len(endpoint_processes(server, str(ECHO / "serve"))) < 2:
        assert time.monotonic() < deadline, "the killed instance was never replaced"
        time.sleep(0.2)


def test_update_endpoint_moves_to_the_new_configuration(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    deploy(sagemaker, "moving", ECHO)
    sagemaker.create_model(ModelName="moving-sum", PrimaryContainer={"Image": str(SUM_HANDLER)})
    sagemaker.create_endpoint_config(
        EndpointConfigName="moving-sum",
        ProductionVariants=[
            {"VariantName": "Sum", "ModelName": "moving-sum", "InitialInstanceCount": 1}
        ],
    )
    sagemaker.update_endpoint(EndpointName="moving", EndpointConfigName="moving-sum")
    assert sagemaker.describe_endpoint(EndpointName="moving")["EndpointStatus"] == "Updating"
    with pytest.raises(ClientError, match="in-progress"):
        sagemaker.update_endpoint(EndpointName="moving", EndpointConfigName="moving-sum")
    described = wait_status(sagemaker, "moving", "InService")
    assert described["EndpointConfigName"] == "moving-sum"
    answer = invoke(runtime, "moving", b"1,2,3\n")
    assert answer["InvokedProductionVariant"] == "Sum"
    assert answer["Body"].read().strip() == b"6,3"  # sum, largest


def test_a_model_that_cannot_start_fails_the_endpoint(server: Server) -> None:
    sagemaker = server.client()
    described = deploy(sagemaker, "refusing", ECHO, environment={"ECHO_EXIT_AT_START": "4"})
    assert described["EndpointStatus"] == "Failed"
    assert "refusing to start" in described["FailureReason"]


def test_lists_describes_and_deletes(server: Server) -> None:
    sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
    deploy(sagemaker, "listed", ECHO)
    names = [
        e["EndpointName"] for e in sagemaker.list_endpoints(NameContains="listed")["Endpoints"]
    ]
    assert names == ["listed"]
    configs = sagemaker.list_endpoint_configs(NameContains="listed")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["listed"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName="listed")
    assert config["ProductionVariants"][0]["ModelName"] == "listed"
    with pytest.raises(ClientError, match="already existing endpoint"):
        sagemaker.create_endpoint(EndpointName="listed", EndpointConfigName="listed")
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sagemaker.create_endpoint(EndpointName="other", EndpointConfigName="missing")
    with pytest.raises(ClientError, match="Could not find model"):
        sagemaker.create_endpoint_config(
            EndpointConfigName="bad",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "nope", "InitialInstanceCount": 1}
            ],
        )
    sagemaker.delete_endpoint(EndpointName="listed")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.describe_endpoint(EndpointName="listed")
    with pytest.raises(runtime.exceptions.ValidationError):
        invoke(runtime, "listed", b"1\n")
    assert not endpoint_processes(server, "listed")
    sagemaker.delete_endpoint_config(EndpointConfigName="listed")
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sagemaker.describe_endpoint_config(EndpointConfigName="listed")


def test_endpoints_come_back_in_service_after_a_server_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        deploy(server.client(), "durable", ECHO)
    finally:
        stop_server(server, signal.SIGTERM)
    with running_server(tmp_path) as again:
        described = wait_status(again.client(), "durable", "InService")
        assert described["EndpointStatus"] == "InService"
        answer = invoke(again.client("sagemaker-runtime"), "durable", b"back\n")
        assert answer["Body"].read() == b"back\n"
