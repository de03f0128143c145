"""The seed workflow's first half through boto3: train built-in PCA, make a model of it,
batch-transform with that model."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from botocore.exceptions import ClientError, WaiterError

from tests.serverproc import running_server

PCA_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"


def training_request(name: str, data: Path, output: Path, **hyperparameters: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": PCA_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::111111111111:role/SageMakerRole",
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(data)}},
                "ContentType": "text/csv;label_size=0",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": str(output)},
        "ResourceConfig": {
            "InstanceType": "ml.c4.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def wait_training(sm: Any, name: str) -> dict[str, Any]:
    with contextlib.suppress(WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 180}
        )
    answer: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
    return answer


def test_train_pca_then_transform_with_its_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = (rng.random((400, 20)) < 0.3).astype(int)
    (tmp_path / "train").mkdir()
    np.savetxt(tmp_path / "train" / "ratings.csv", data, delimiter=",", fmt="%d")
    hps = {
        "feature_dim": "20",
        "num_components": "4",
        "mini_batch_size": "100",
        "subtract_mean": "True",
        "algorithm_mode": "randomized",
    }
    with running_server(tmp_path / "home") as server:
        sm = server.client()
        sm.create_training_job(
            **training_request("pca-train", tmp_path / "train", tmp_path / "models", **hps)
        )
        described = wait_training(sm, "pca-train")
        assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
        artifacts = described["ModelArtifacts"]["S3ModelArtifacts"]
        assert artifacts == str(tmp_path / "models" / "pca-train" / "output" / "model.tar.gz")
        assert Path(artifacts).is_file()
        statuses = [entry["Status"] for entry in described["SecondaryStatusTransitions"]]
        assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
        assert described["HyperParameters"] == hps
        summaries = sm.list_training_jobs(NameContains="pca-")["TrainingJobSummaries"]
        assert [s["TrainingJobName"] for s in summaries] == ["pca-train"]

        logs = server.client("logs")
        streams = logs.describe_log_streams(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="pca-train/"
        )["logStreams"]
        assert streams, "the training job's log streams are served"

        sm.create_model(
            ModelName="pca-model", PrimaryContainer={"Image": PCA_IMAGE, "ModelDataUrl": artifacts}
        )
        sm.create_transform_job(
            TransformJobName="pca-transform",
            ModelName="pca-model",
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(tmp_path / "train")}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            TransformOutput={
                "S3OutputPath": str(tmp_path / "out"),
                "AssembleWith": "Line",
                "Accept": "application/jsonlines",
            },
            TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
            BatchStrategy="MultiRecord",
        )
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="pca-transform", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
        )
    lines = (tmp_path / "out" / "ratings.csv.out").read_text().splitlines()
    assert len(lines) == 400
    assert all(len(orjson.loads(line)["projection"]) == 4 for line in lines)


def test_training_errors(tmp_path: Path) -> None:
    with running_server(tmp_path / "home") as server:
        sm = server.client()
        bad_image = training_request("bad-image", tmp_path, tmp_path / "m")
        bad_image["AlgorithmSpecification"]["TrainingImage"] = (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"
        )
        try:
            sm.create_training_job(**bad_image)
            raise AssertionError("an image batchform cannot run was accepted")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ValidationException"
            assert "builtin:pca" in error.response["Error"]["Message"]
        try:
            sm.describe_training_job(TrainingJobName="nope")
            raise AssertionError("an unknown job was described")
        except ClientError as error:
            assert error.response["Error"]["Message"] == "Requested resource not found."
        (tmp_path / "train").mkdir()
        (tmp_path / "train" / "bad.csv").write_text("1,2,3\n")
        request = training_request(
            "bad-data",
            tmp_path / "train",
            tmp_path / "m",
            feature_dim="5",
            num_components="2",
            mini_batch_size="10",
        )
        sm.create_training_job(**request)
        described = wait_training(sm, "bad-data")
        assert described["TrainingJobStatus"] == "Failed"
        assert "feature_dim" in described["FailureReason"]


def test_stop_training_job_and_a_byo_perl_algorithm(tmp_path: Path) -> None:
    perl = Path(__file__).resolve().parents[1] / "models" / "perl_train"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "rows.csv").write_text("1,2\n3,4\n")
    with running_server(tmp_path / "home", "--heartbeat", "0.5") as server:
        sm = server.client()
        request = training_request(
            "perl-sleeps", tmp_path / "train", tmp_path / "m", mode="sleep", seconds="600"
        )
        request["AlgorithmSpecification"]["TrainingImage"] = str(perl)
        sm.create_training_job(**request)
        for _ in range(120):
            if (
                sm.describe_training_job(TrainingJobName="perl-sleeps")["SecondaryStatus"]
                == "Training"
            ):
                break
            time.sleep(0.25)
        sm.stop_training_job(TrainingJobName="perl-sleeps")
        described = wait_training(sm, "perl-sleeps")
        assert described["TrainingJobStatus"] == "Stopped"
        statuses = [entry["Status"] for entry in described["SecondaryStatusTransitions"]]
        assert statuses[-1] == "Stopped" and "Training" in statuses
