"""A training job's /opt/ml as the SageMaker training toolkit expects it: config files,
SM_* variables, channels copied in with their keys, and the image references batchform
can run. Local files only; no processes."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from batchform.errors import ConfigurationError, StorageError
from batchform.training import SecondaryStatus, parse_training_request, resolve_training_image
from batchform.training.artifacts import upload_files, upload_folder
from batchform.training.channels import (
    ChannelSpec,
    channel_specs,
    check_input_modes,
    copy_channel,
    local_key,
    local_path,
)
from batchform.training.images import training_command
from batchform.training.layout import (
    create_training_workspace,
    toolkit_hyperparameters,
    training_environment,
)
from batchform.training.status import StatusHistory

MODELS = Path(__file__).resolve().parents[1] / "models"
PERL_TRAIN = MODELS / "perl_train"


def body(**overrides: Any) -> dict[str, Any]:
    """A CreateTrainingJob body with two channels, as the sagemaker SDK sends it."""
    request: dict[str, Any] = {
        "TrainingJobName": "toolkit-job",
        "AlgorithmSpecification": {"TrainingImage": "builtin:pca", "TrainingInputMode": "File"},
        "HyperParameters": {"learning-rate": "0.5", "communicator": "pure_nccl", "epochs": "3"},
        "InputDataConfig": [
            _channel("training", "s3://bucket/data/train", ContentType="text/csv"),
            _channel("testing", "s3://bucket/data/test"),
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request.update(overrides)
    return request


def _channel(name: str, uri: str, **fields: Any) -> dict[str, Any]:
    source = {"S3DataType": fields.pop("S3DataType", "S3Prefix"), "S3Uri": uri}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, **fields}


def test_config_files_are_written_as_sagemaker_writes_them(tmp_path: Path) -> None:
    request = parse_training_request(body())
    workspace = create_training_workspace(tmp_path / "ws", request, channel_specs(request))
    config = tmp_path / "ws" / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {
        "learning-rate": "0.5",
        "communicator": "pure_nccl",
        "epochs": "3",
    }
    assert json.loads((config / "inputdataconfig.json").read_text()) == {
        "training": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
            "CompressionType": "None",
        },
        # No ContentType key when the channel names none, as on SageMaker.
        "testing": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
            "CompressionType": "None",
        },
    }
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1"
    assert resources["hosts"] == ["algo-1"]
    assert resources["network_interface_name"] == "eth0"
    assert resources["current_instance_type"] == "ml.m5.xlarge"
    for folder in ("model", "output/data", "input/data/training", "input/data/testing"):
        assert (workspace.root / folder).is_dir(), folder


def test_environment_is_the_training_toolkits(tmp_path: Path) -> None:
    request = parse_training_request(body())
    workspace = create_training_workspace(tmp_path / "ws", request, channel_specs(request))
    env = training_environment(workspace, request, channel_specs(request))
    base = str(workspace.root)
    assert workspace.root.is_absolute()
    assert env["SAGEMAKER_BASE_DIR"] == base
    assert env["TRAINING_JOB_NAME"] == "toolkit-job"
    assert env["SM_MODEL_DIR"] == f"{base}/model"
    assert env["SM_CHANNELS"] == '["testing","training"]'
    assert env["SM_CHANNEL_TRAINING"] == f"{base}/input/data/training"
    assert env["SM_CHANNEL_TESTING"] == f"{base}/input/data/testing"
    # The toolkit decodes JSON values: numbers become numbers, other text stays text.
    assert env["SM_HPS"] == '{"communicator":"pure_nccl","epochs":3,"learning-rate":0.5}'
    assert env["SM_HP_LEARNING-RATE"] == "0.5"
    assert env["SM_HP_EPOCHS"] == "3"
    assert env["SM_HP_COMMUNICATOR"] == "pure_nccl"
    assert env["SM_INPUT_DIR"] == f"{base}/input"
    assert env["SM_INPUT_CONFIG_DIR"] == f"{base}/input/config"
    assert env["SM_OUTPUT_DIR"] == f"{base}/output"
    assert env["SM_OUTPUT_DATA_DIR"] == f"{base}/output/data"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["training"]["ContentType"] == "text/csv"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]


def test_job_environment_comes_last_and_wins(tmp_path: Path) -> None:
    request = parse_training_request(body(Environment={"SM_NUM_GPUS": "8", "MY_FLAG": "on"}))
    workspace = create_training_workspace(tmp_path / "ws", request, channel_specs(request))
    env = training_environment(workspace, request, channel_specs(request))
    assert env["SM_NUM_GPUS"] == "8"
    assert env["MY_FLAG"] == "on"


def test_hyperparameters_that_cannot_be_variables_are_only_in_sm_hps(tmp_path: Path) -> None:
    request = parse_training_request(body(HyperParameters={"a=b": "1", "nul": "x\x00y"}))
    workspace = create_training_workspace(tmp_path / "ws", request, channel_specs(request))
    env = training_environment(workspace, request, channel_specs(request))
    assert not [name for name in env if name.startswith("SM_HP_")]
    assert json.loads(env["SM_HPS"]) == {"a=b": 1, "nul": "x\x00y"}


def test_framework_hyperparameters_stay_out_of_sm_hps() -> None:
    decoded = toolkit_hyperparameters({"sagemaker_program": '"train.py"', "flag": "true"})
    assert decoded == {"flag": True}


def test_fastfile_channels_are_not_supported_yet() -> None:
    algorithm = {"TrainingImage": "builtin:pca", "TrainingInputMode": "FastFile"}
    request = parse_training_request(body(AlgorithmSpecification=algorithm))
    with pytest.raises(ConfigurationError, match="FastFile is not supported yet; use File or Pipe"):
        check_input_modes(channel_specs(request))
    check_input_modes(channel_specs(parse_training_request(body())))  # File
    algorithm["TrainingInputMode"] = "Pipe"
    check_input_modes(channel_specs(parse_training_request(body(AlgorithmSpecification=algorithm))))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    files = {
        "data/train/part-1.csv": b"1,2\n",
        "data/train/deep/part-2.csv": b"3,4\n",
        "data/train.csv": b"5,6\n",
        "data/test.csv": b"7,8\n",
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    return tmp_path / "data"


def copied(target: Path) -> dict[str, bytes]:
    return {
        path.relative_to(target).as_posix(): path.read_bytes()
        for path in sorted(target.rglob("*"))
        if path.is_file()
    }


def test_folder_channel_keeps_keys_relative_to_the_prefix(data: Path, tmp_path: Path) -> None:
    result = copy_channel(ChannelSpec("train", str(data / "train")), tmp_path / "ch")
    assert copied(tmp_path / "ch") == {"deep/part-2.csv": b"3,4\n", "part-1.csv": b"1,2\n"}
    assert (result.objects, result.bytes) == (2, 8)


def test_partial_prefix_copies_every_object_whose_key_starts_with_it(
    data: Path, tmp_path: Path
) -> None:
    copy_channel(ChannelSpec("train", f"{data}/tra"), tmp_path / "ch")
    assert sorted(copied(tmp_path / "ch")) == [
        "train.csv",
        "train/deep/part-2.csv",
        "train/part-1.csv",
    ]


def test_manifest_channel_copies_the_listed_keys(data: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "train.manifest"
    manifest.write_text(json.dumps([{"prefix": f"{data}/"}, "test.csv", "train/deep/part-2.csv"]))
    copy_channel(ChannelSpec("train", str(manifest), "ManifestFile"), tmp_path / "ch")
    assert copied(tmp_path / "ch") == {"test.csv": b"7,8\n", "train/deep/part-2.csv": b"3,4\n"}


def test_gzip_objects_are_decompressed_while_copying(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i * i) for i in range(50_000))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.csv.gz").write_bytes(gzip.compress(rows))
    gzipped = _channel("train", str(tmp_path / "in"), CompressionType="Gzip")
    [channel] = channel_specs(parse_training_request(body(InputDataConfig=[gzipped])))
    result = copy_channel(channel, tmp_path / "ch")
    assert (tmp_path / "ch" / "big.csv.gz").read_bytes() == rows
    assert result.bytes == len(rows)


def test_a_check_that_raises_interrupts_the_copy(data: Path, tmp_path: Path) -> None:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_channel(ChannelSpec("train", str(data)), tmp_path / "ch", check)
    assert len(copied(tmp_path / "ch")) <= 1


@pytest.mark.parametrize(
    ("uri", "key", "expected"),
    [
        ("s3://b/data/train", "train/a.csv", "a.csv"),  # the SDK's usual channel URI
        ("s3://b/data/train", "train.csv", "train.csv"),
        ("s3://b/data/train/", "a.csv", "a.csv"),
        ("s3://b/pca/train/train.csv", "train.csv", "train.csv"),  # upload_data of a file
        ("s3://b", "b/x.csv", "b/x.csv"),  # a whole bucket
    ],
)
def test_local_key_is_relative_to_the_s3_prefix(uri: str, key: str, expected: str) -> None:
    assert local_key(ChannelSpec("train", uri), key) == expected


@pytest.mark.parametrize("key", ["../escape.csv", "a/../../b.csv", "", "/"])
def test_keys_that_leave_the_channel_folder_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        local_path(tmp_path, key)


def test_absolute_looking_keys_stay_below_the_channel_folder(tmp_path: Path) -> None:
    assert local_path(tmp_path, "/a//b.csv") == tmp_path / "a" / "b.csv"


@pytest.mark.parametrize(
    "image",
    [
        "builtin:pca",
        "174872318107.dkr.ecr.us-west-2.amazonaws.com/pca:1",
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:latest",
        "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/pca:1",
    ],
)
def test_pca_images_run_the_builtin(image: str) -> None:
    command = resolve_training_image(image)
    assert command.argv == (sys.executable, "-m", "batchform.algorithms.pca", "train")
    assert command.builtin == "pca"


def test_kmeans_registry_uri_runs_the_builtin_kmeans() -> None:
    command = resolve_training_image("664544806723.dkr.ecr.eu-central-1.amazonaws.com/kmeans:1")
    assert command.argv[2:] == ("batchform.algorithms.kmeans", "train")


@pytest.mark.parametrize(
    "image",
    [
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgboost:1",
        "builtin:xgboost",
        "docker.io/library/python:3.11",
    ],
)
def test_other_images_are_refused_naming_what_can_run(image: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_training_image(image)
    message = str(caught.value)
    assert image in message
    assert "builtin:pca" in message
    assert "'train'" in message
    assert ".dkr.ecr.<region>.amazonaws.com/kmeans:1" in message


def test_a_folder_or_file_uri_runs_its_train_executable() -> None:
    expected = (str(PERL_TRAIN / "train"),)
    assert resolve_training_image(str(PERL_TRAIN)).argv == expected
    assert resolve_training_image(f"file://{PERL_TRAIN}").argv == expected


def test_an_entrypoint_is_given_train_as_docker_run_would(tmp_path: Path) -> None:
    entrypoint = tmp_path / "entrypoint"
    entrypoint.write_text("#!/bin/sh\n")
    entrypoint.chmod(0o755)
    assert resolve_training_image(str(tmp_path)).argv == (str(entrypoint), "train")


def test_a_folder_without_an_executable_train_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no executable 'train'"):
        resolve_training_image(str(tmp_path))
    (tmp_path / "train").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "train", 0o644)
    with pytest.raises(ConfigurationError, match="chmod"):
        resolve_training_image(str(tmp_path))


def test_algorithm_name_and_entrypoint_overrides_are_refused() -> None:
    named = parse_training_request(
        body(AlgorithmSpecification={"AlgorithmName": "my-algo", "TrainingInputMode": "File"})
    )
    with pytest.raises(ConfigurationError, match="AlgorithmName"):
        training_command(named.algorithm_specification)
    spec = {"TrainingImage": "builtin:pca", "TrainingInputMode": "File"}
    overridden = parse_training_request(
        body(AlgorithmSpecification={**spec, "ContainerEntrypoint": ["python3", "x.py"]})
    )
    with pytest.raises(ConfigurationError, match="ContainerEntrypoint"):
        training_command(overridden.algorithm_specification)


def test_status_history_closes_each_status_when_the_next_begins() -> None:
    seen: list[SecondaryStatus] = []
    history = StatusHistory(lambda entry: seen.append(entry.status))
    for status in (SecondaryStatus.STARTING, SecondaryStatus.TRAINING, SecondaryStatus.COMPLETED):
        history.enter(status)
    entries = history.transitions()
    assert seen == [entry.status for entry in entries]
    assert entries[0].end_time == entries[1].start_time
    assert entries[-1].start_time == entries[-1].end_time  # terminal: starts and ends at once
    assert entries[1].to_response() == {
        "Status": "Training",
        "StartTime": entries[1].start_time,
        "EndTime": entries[2].start_time,
        "StatusMessage": "Training image download completed. Training in progress.",
    }
    history.enter(SecondaryStatus.FAILED, "Training job failed")
    assert "EndTime" in history.transitions()[-1].to_response()


def test_model_tarball_holds_the_folder_contents_at_its_top(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01")
    (model / "sub" / "vocab.txt").write_text("a\n")
    upload_folder(model, str(tmp_path / "out" / "model.tar.gz"))
    data = (tmp_path / "out" / "model.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = sorted(archive.getnames())
        weights = archive.extractfile("weights.bin")
        assert weights is not None and weights.read() == b"\x00\x01"
    assert names == ["sub", "sub/vocab.txt", "weights.bin"]
    upload_folder(model, str(tmp_path / "again.tar.gz"))
    assert (tmp_path / "again.tar.gz").read_bytes() == data  # reproducible bytes


def test_uncompressed_model_output_copies_the_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.txt").write_text("w")
    upload_files(model, f"{tmp_path}/out/model/")
    assert (tmp_path / "out" / "model" / "sub" / "w.txt").read_text() == "w"
