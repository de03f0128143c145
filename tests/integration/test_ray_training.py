"""Training jobs with InstanceCount > 1: one `train` per host, algo-1 … algo-N, each
told of every host, meeting its peers over TCP (tests/models/multihost_train) — as local
processes, and as Ray actors on the three-node cluster with channels and output on the
S3-compatible server on loopback."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from batchform.engine.executors import ExecutorSettings
from batchform.jobs.lifecycle import JobStatus
from batchform.training import SecondaryStatus, TrainingRun, parse_training_request

MULTIHOST_TRAIN = Path(__file__).resolve().parents[1] / "models" / "multihost_train"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def job(
    name: str, bucket: str, image: Path, hosts: int, distribution: str = "ShardedByS3Key"
) -> Any:
    source = {
        "S3DataType": "S3Prefix",
        "S3Uri": f"{bucket}/train/",
        "S3DataDistributionType": distribution,
    }
    return parse_training_request(
        {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": str(image), "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/training",
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": source}}],
            "OutputDataConfig": {"S3OutputPath": f"{bucket}/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": hosts},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        }
    )


def model_files(s3: Any, url: str) -> dict[str, bytes]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    tarball = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {
            member.name.removeprefix("./"): archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_two_hosts_see_each_other_and_share_the_channel(
    executor: str, request: pytest.FixtureRequest, s3_client: Any, s3_bucket: str
) -> None:
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    name = s3_bucket.removeprefix("s3://")
    for letter in "abcd":
        s3_client.put_object(Bucket=name, Key=f"train/{letter}.csv", Body=b"1,2\n")
    run = TrainingRun(
        job(f"pair-{executor}", s3_bucket, MULTIHOST_TRAIN, hosts=2),
        executor=ExecutorSettings(executor),
    )
    outcome = run.run()

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outcome.model_artifacts_url is not None
    cluster = json.loads(model_files(s3_client, outcome.model_artifacts_url)["cluster.json"])
    assert cluster["resourceconfig"]["current_host"] == cluster["sm_current_host"] == "algo-1"
    assert cluster["resourceconfig"]["hosts"] == ["algo-1", "algo-2"]
    peer = cluster["peers"]["algo-2"]
    assert peer["resourceconfig"]["current_host"] == peer["sm_current_host"] == "algo-2"
    assert peer["resourceconfig"]["hosts"] == ["algo-1", "algo-2"]
    # ShardedByS3Key: each host copied every other object, in key order.
    assert (cluster["files"], peer["files"]) == (["a.csv", "c.csv"], ["b.csv", "d.csv"])
    log = run.log_path.read_text()
    assert "[algo-1] algo-1: done" in log and "[algo-2] algo-2: done" in log
    statuses = [entry.status for entry in outcome.secondary_status_transitions]
    assert statuses == [
        SecondaryStatus.STARTING,
        SecondaryStatus.DOWNLOADING,
        SecondaryStatus.TRAINING,
        SecondaryStatus.UPLOADING,
        SecondaryStatus.COMPLETED,
    ]


def test_a_failing_host_fails_the_job_and_stops_the_others(
    ray_cluster: Any, s3_client: Any, s3_bucket: str
) -> None:
    name = s3_bucket.removeprefix("s3://")
    s3_client.put_object(Bucket=name, Key="train/a.csv", Body=b"1,2\n")
    body = job("one-fails", s3_bucket, MULTIHOST_TRAIN, hosts=2).to_request()
    body["Environment"] = {"FAIL_HOST": "algo-2"}
    run = TrainingRun(parse_training_request(body), executor=ExecutorSettings("ray"))
    outcome = run.run()  # algo-1 would wait two minutes for its peer if not stopped
    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == "AlgorithmError: algo-2 gave up"
    assert "training interrupted: stop requested: SIGTERM to the algorithm" in (
        run.log_path.read_text()
    )
