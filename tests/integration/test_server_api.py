"""The server through boto3, as a SageMaker user drives it: models, jobs, errors, logs."""

from __future__ import annotations

import contextlib
import datetime
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.serverproc import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "echo_handler"
HANDLERS = ROOT / "tests" / "handlers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("server-home")
    with running_server(home, "--max-concurrent-jobs", "2", "--max-instances-per-job", "4") as s:
        yield s


@pytest.fixture(scope="module")
def sm(server: Server) -> Any:
    return server.client()


def make_inputs(folder: Path, objects: int = 3, rows: int = 50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(objects):
        lines = b"".join(b"%d,%d,%d\n" % (index, row, row * row) for row in range(rows))
        (folder / f"part-{index}.csv").write_bytes(lines)
    return folder


def create_model(sm: Any, name: str, image: Path = ECHO, **env: str) -> str:
    container: dict[str, Any] = {"Image": str(image)}
    if env:
        container["Environment"] = env
    answer = sm.create_model(ModelName=name, PrimaryContainer=container)
    return str(answer["ModelArn"])


def job_request(name: str, model: str, source: Path, output: Path, **extra: Any) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(source)}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": str(output), "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    }


def wait_done(sm: Any, name: str) -> dict[str, Any]:
    waiter = sm.get_waiter("transform_job_completed_or_stopped")
    # The waiter raises when the job failed; the caller checks the status.
    with contextlib.suppress(WaiterError):
        waiter.wait(TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    answer: dict[str, Any] = sm.describe_transform_job(TransformJobName=name)
    return answer


def error_of(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response
    return (
        error["Error"]["Code"],
        error["Error"]["Message"],
        error["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_models_create_describe_list_delete(sm: Any) -> None:
    arn = create_model(sm, "model-crud", SOME_ENV="1")
    assert arn.startswith("arn:aws:sagemaker:us-east-1:") and arn.endswith(":model/model-crud")
    described = sm.describe_model(ModelName="model-crud")
    assert described["PrimaryContainer"]["Image"] == str(ECHO)
    assert described["PrimaryContainer"]["Environment"] == {"SOME_ENV": "1"}
    assert described["ModelArn"] == arn
    names = [m["ModelName"] for m in sm.list_models(NameContains="model-crud")["Models"]]
    assert names == ["model-crud"]
    code, message, _ = error_of(
        sm.create_model, ModelName="model-crud", PrimaryContainer={"Image": str(ECHO)}
    )
    assert code == "ValidationException" and "already existing model" in message
    sm.delete_model(ModelName="model-crud")
    code, message, _ = error_of(sm.describe_model, ModelName="model-crud")
    assert code == "ValidationException" and "Could not find model" in message


def test_model_with_an_image_batchform_cannot_run_is_refused(sm: Any, tmp_path: Path) -> None:
    code, message, status = error_of(
        sm.create_model, ModelName="no-image", PrimaryContainer={"Image": str(tmp_path / "nope")}
    )
    assert (code, status) == ("ValidationException", 400)
    assert "nope" in message


def test_transform_job_runs_to_completion_with_every_describe_field(
    sm: Any, tmp_path: Path
) -> None:
    create_model(sm, "echo-complete")
    source = make_inputs(tmp_path / "in")
    request = job_request("job-complete", "echo-complete", source, tmp_path / "out")
    arn = sm.create_transform_job(**request)["TransformJobArn"]
    assert arn.endswith(":transform-job/job-complete")
    described = wait_done(sm, "job-complete")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    for index in range(3):
        written = (tmp_path / "out" / f"part-{index}.csv.out").read_bytes()
        assert written == (source / f"part-{index}.csv").read_bytes()
    assert described["TransformJobArn"] == arn
    assert described["ModelName"] == "echo-complete"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["MaxPayloadInMB"] == 6
    assert described["MaxConcurrentTransforms"] >= 1
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["TransformOutput"]["AssembleWith"] == "Line"
    created = described["CreationTime"].timestamp()
    started = described["TransformStartTime"].timestamp()
    ended = described["TransformEndTime"].timestamp()
    assert created <= started <= ended <= time.time() + 1
    assert "FailureReason" not in described


def test_job_errors_carry_sagemaker_codes(sm: Any, tmp_path: Path) -> None:
    create_model(sm, "echo-errors")
    source = make_inputs(tmp_path / "in", objects=1)
    sm.create_transform_job(**job_request("job-dup", "echo-errors", source, tmp_path / "o1"))
    code, message, _ = error_of(
        sm.create_transform_job, **job_request("job-dup", "echo-errors", source, tmp_path / "o2")
    )
    assert code == "ResourceInUse" and "job-dup" in message
    code, message, _ = error_of(sm.describe_transform_job, TransformJobName="no-such-job")
    assert code == "ResourceNotFound" and "no-such-job" in message
    code, message, _ = error_of(
        sm.create_transform_job, **job_request("job-nomodel", "no-model", source, tmp_path / "o")
    )
    assert code == "ValidationException" and "no-model" in message
    big = job_request("job-big", "echo-errors", source, tmp_path / "o3")
    big["TransformResources"]["InstanceCount"] = 5
    code, message, _ = error_of(sm.create_transform_job, **big)
    assert code == "ResourceLimitExceeded" and "5 Instances" in message
    code, message, _ = error_of(
        sm.create_transform_job,
        **job_request("job-payload", "echo-errors", source, tmp_path / "o4", MaxPayloadInMB=101),
    )
    assert code == "ValidationException" and "maxPayloadInMB" in message
    wait_done(sm, "job-dup")


def test_list_transform_jobs_filters_sorts_and_pages(sm: Any, tmp_path: Path) -> None:
    create_model(sm, "echo-list")
    source = make_inputs(tmp_path / "in", objects=1, rows=3)
    names = [f"listing-{index}" for index in range(5)]
    for index, name in enumerate(names):
        if index == 2:
            time.sleep(1.2)  # boto3 sends time filters in whole seconds
        sm.create_transform_job(**job_request(name, "echo-list", source, tmp_path / name))
    for name in names:
        wait_done(sm, name)
    seen: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"NameContains": "listing-", "MaxResults": 2}
        kwargs.update({"SortBy": "Name", "SortOrder": "Ascending"})
        if token:
            kwargs["NextToken"] = token
        answer = sm.list_transform_jobs(**kwargs)
        assert len(answer["TransformJobSummaries"]) <= 2
        seen += [job["TransformJobName"] for job in answer["TransformJobSummaries"]]
        token = answer.get("NextToken")
        if not token:
            break
    assert seen == names
    completed = sm.list_transform_jobs(NameContains="listing-", StatusEquals="Completed")
    assert len(completed["TransformJobSummaries"]) == 5
    newest_first = sm.list_transform_jobs(NameContains="listing-", SortBy="CreationTime")
    assert [j["TransformJobName"] for j in newest_first["TransformJobSummaries"]] == names[::-1]
    summary = newest_first["TransformJobSummaries"][0]
    assert {"TransformJobArn", "CreationTime", "LastModifiedTime", "TransformEndTime"} <= set(
        summary
    )
    # A moment inside the pause between the second and the third job
    gap = sm.describe_transform_job(TransformJobName=names[2])["CreationTime"]
    gap -= datetime.timedelta(seconds=0.6)
    after = sm.list_transform_jobs(NameContains="listing-", CreationTimeAfter=gap)
    assert {j["TransformJobName"] for j in after["TransformJobSummaries"]} == set(names[2:])
    before = sm.list_transform_jobs(NameContains="listing-", CreationTimeBefore=gap)
    assert {j["TransformJobName"] for j in before["TransformJobSummaries"]} == set(names[:2])
    code, _, _ = error_of(sm.list_transform_jobs, MaxResults=101)
    assert code == "ValidationException"
    code, _, _ = error_of(sm.list_transform_jobs, StatusEquals="Running")
    assert code == "ValidationException"


def test_a_failing_model_fails_the_job_with_a_reason(sm: Any, tmp_path: Path) -> None:
    create_model(sm, "fails-on-marker", HANDLERS / "fail_on_marker")
    source = make_inputs(tmp_path / "in", objects=2, rows=5)
    (source / "part-1.csv").write_bytes(b"1,FAIL\n")
    request = job_request("job-fails", "fails-on-marker", source, tmp_path / "out")
    request["ModelClientConfig"] = {"InvocationsMaxRetries": 0}
    sm.create_transform_job(**request)
    described = wait_done(sm, "job-fails")
    assert described["TransformJobStatus"] == "Failed"
    assert "part-1.csv" in described["FailureReason"]
    assert "FAIL marker" in described["FailureReason"]
    assert (tmp_path / "out" / "part-0.csv.out").exists()
    assert not (tmp_path / "out" / "part-1.csv.out").exists()


def test_stop_leaves_no_partial_output(sm: Any, tmp_path: Path) -> None:
    create_model(sm, "slow-stop", HANDLERS / "slow", SLOW_SECONDS="600")
    source = make_inputs(tmp_path / "in", objects=2, rows=20)
    request = job_request("job-stop", "slow-stop", source, tmp_path / "out")
    request["BatchStrategy"] = "SingleRecord"
    sm.create_transform_job(**request)
    _wait_for(lambda: _started(sm, "job-stop"))
    sm.stop_transform_job(TransformJobName="job-stop")
    status = sm.describe_transform_job(TransformJobName="job-stop")["TransformJobStatus"]
    assert status in ("Stopping", "Stopped")
    described = wait_done(sm, "job-stop")
    assert described["TransformJobStatus"] == "Stopped"
    assert "TransformEndTime" in described
    assert not list((tmp_path / "out").glob("*.out")) if (tmp_path / "out").exists() else True
    sm.stop_transform_job(TransformJobName="job-stop")  # stopping a stopped job is a no-op


def test_logs_through_the_cloudwatch_operations(server: Server, sm: Any, tmp_path: Path) -> None:
    create_model(sm, "echo-logs")
    source = make_inputs(tmp_path / "in", objects=1)
    sm.create_transform_job(**job_request("job-logs", "echo-logs", source, tmp_path / "out"))
    wait_done(sm, "job-logs")
    logs = server.client("logs")
    group = "/aws/sagemaker/TransformJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="job-logs/")
    names = [stream["logStreamName"] for stream in streams["logStreams"]]
    assert "job-logs/data-log" in names
    events = logs.get_log_events(
        logGroupName=group, logStreamName="job-logs/data-log", startFromHead=True
    )["events"]
    text = "\n".join(event["message"] for event in events)
    assert "MaxConcurrentTransforms=" in text and "BatchStrategy=MULTI_RECORD" in text


def test_health_metrics_and_unknown_operations(server: Server, sm: Any) -> None:
    with urllib.request.urlopen(server.url + "/healthz") as answer:
        assert answer.status == 200
    with urllib.request.urlopen(server.url + "/metrics") as answer:
        text = answer.read().decode()
    assert 'batchform_transform_jobs{status="Completed"}' in text
    assert "batchform_invocation_latency_seconds_bucket" in text
    assert "batchform_records_total" in text
    request = urllib.request.Request(
        server.url + "/",
        data=b"{}",
        headers={"X-Amz-Target": "SageMaker.NoSuchThing", "Content-Type": CONTENT},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 400
    assert b"UnknownOperationException" in raised.value.read()


CONTENT = "application/x-amz-json-1.1"


def _started(sm: Any, name: str) -> bool:
    return "TransformStartTime" in sm.describe_transform_job(TransformJobName=name)


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
