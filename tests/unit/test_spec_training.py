"""CreateTrainingJob validation: what the sagemaker SDK sends parses, every mistake is named."""

from __future__ import annotations

from typing import Any

import pytest

from batchform.errors import SpecValidationError
from batchform.server.protocol import ApiError, call
from batchform.spec.common import parse_request
from batchform.spec.enums import (
    CompressionType,
    OutputCompressionType,
    RecordWrapper,
    S3DataDistribution,
    S3DataType,
    TrainingInputMode,
)
from batchform.spec.training import CreateTrainingJobRequest, effective_input_mode
from tests.training_validation_cases import (
    SDK_PCA_TRAINING_JOB,
    TRAIN_CHANNEL,
    TRAINING_CASES,
)
from tests.validation_cases import DELETE, ValidationCase, mutated

MINIMAL: dict[str, Any] = {
    "TrainingJobName": "pca-job",
    "AlgorithmSpecification": {"TrainingImage": "pca:1", "TrainingInputMode": "File"},
    "InputDataConfig": [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "/data/train/"}}}
    ],
    "OutputDataConfig": {"S3OutputPath": "/data/output/"},
    "ResourceConfig": {"InstanceType": "ml.c4.xlarge", "InstanceCount": 1},
}


def parse(body: dict[str, Any]) -> CreateTrainingJobRequest:
    return parse_request(CreateTrainingJobRequest, body)


def with_channel(changes: dict[str, Any], base: dict[str, Any] = SDK_PCA_TRAINING_JOB) -> Any:
    return mutated(base, {"InputDataConfig": [mutated(TRAIN_CHANNEL, changes)]})


def test_the_sdk_pca_request_parses_into_what_the_runner_reads() -> None:
    request = parse(SDK_PCA_TRAINING_JOB)
    assert request.training_job_name == "pca-2024-01-01-00-00-00-000"
    image = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
    assert request.algorithm_specification.training_image == image
    assert request.algorithm_specification.training_input_mode is TrainingInputMode.FILE
    assert request.hyper_parameters == {
        "feature_dim": "2348",
        "num_components": "100",
        "subtract_mean": "True",
        "algorithm_mode": "randomized",
        "mini_batch_size": "500",
    }
    assert request.environment == {}
    assert request.output_data_config.s3_output_path == "s3://bucket/reviews/pca/output"
    resources = request.resource_config
    assert (resources.instance_type, resources.instance_count) == ("ml.c4.xlarge", 1)
    assert request.stopping_condition.max_runtime_in_seconds == 86400


def test_the_sdk_train_channel_keeps_its_settings() -> None:
    request = parse(SDK_PCA_TRAINING_JOB)
    [channel] = request.input_data_config or []
    source = channel.data_source.s3_data_source
    assert source is not None
    assert (channel.channel_name, source.s3_uri, source.s3_data_type) == (
        "train",
        "s3://bucket/reviews/pca/train/train.csv",
        S3DataType.S3_PREFIX,
    )
    assert channel.content_type == "text/csv;label_size=0"
    assert channel.compression_type is CompressionType.NONE
    assert channel.record_wrapper_type is RecordWrapper.NONE
    assert (channel.input_mode, channel.shuffle_config) == (None, None)
    assert effective_input_mode(request, channel) == "File"


def _contains(outer: Any, inner: Any) -> bool:
    """Whether `outer` holds everything `inner` does (dicts recursively; defaults may add)."""
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(
            key in outer and _contains(outer[key], value) for key, value in inner.items()
        )
    if isinstance(inner, list):
        return (
            isinstance(outer, list)
            and len(outer) == len(inner)
            and all(_contains(left, right) for left, right in zip(outer, inner, strict=True))
        )
    return bool(outer == inner)


def test_round_trip_keeps_every_field_the_sdk_sent() -> None:
    """DescribeTrainingJob echoes the request: no field lost or renamed on the way."""
    dumped = parse(SDK_PCA_TRAINING_JOB).to_request()
    assert _contains(dumped, SDK_PCA_TRAINING_JOB)
    assert dumped["ResourceConfig"]["VolumeSizeInGB"] == 30


def test_defaults_are_sagemakers() -> None:
    request = parse(MINIMAL)
    [channel] = request.channels
    assert channel.data_source.s3_data_source is not None
    source = channel.data_source.s3_data_source
    assert source.s3_data_type is S3DataType.S3_PREFIX
    assert source.s3_data_distribution_type is S3DataDistribution.FULLY_REPLICATED
    assert request.stopping_condition.max_runtime_in_seconds == 24 * 60 * 60
    assert request.output_data_config.compression_type is OutputCompressionType.GZIP
    assert request.role_arn is None
    assert request.hyper_parameters == {}
    assert not (request.enable_managed_spot_training or request.enable_network_isolation)


@pytest.mark.parametrize(
    ("channel_mode", "expected"),
    [(None, "File"), ("Pipe", "Pipe"), ("FastFile", "FastFile")],
)
def test_a_channel_input_mode_overrides_the_jobs(channel_mode: str | None, expected: str) -> None:
    changes = {} if channel_mode is None else {"InputMode": channel_mode}
    request = parse(with_channel(changes))
    assert effective_input_mode(request, request.channels[0]) == expected


def test_gzip_in_file_mode_is_accepted_batchform_decompresses_it() -> None:
    request = parse(with_channel({"CompressionType": "Gzip"}))
    assert request.input_data_config[0].compression_type.value == "Gzip"


def test_gzip_and_recordio_are_accepted_in_pipe_mode() -> None:
    body = with_channel({"InputMode": "Pipe", "CompressionType": "Gzip"})
    assert parse(body).channels[0].compression_type is CompressionType.GZIP
    body = with_channel({"RecordWrapperType": "RecordIO"})
    body["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    assert parse(body).channels[0].record_wrapper_type is RecordWrapper.RECORDIO


def test_data_and_output_may_be_any_storage_url() -> None:
    """SageMaker wants s3:// or https://; batchform trains from local and other stores too."""
    for url in ("/data/train/", "file:///data/train/", "gs://bucket/train/"):
        body = mutated(MINIMAL, {"OutputDataConfig.S3OutputPath": url})
        body["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = url
        request = parse(body)
        assert request.output_data_config.s3_output_path == url
        source = request.channels[0].data_source.s3_data_source
        assert source is not None and source.s3_uri == url


def test_a_job_may_have_no_channels() -> None:
    request = parse(mutated(MINIMAL, {"InputDataConfig": DELETE}))
    assert (request.input_data_config, request.channels) == (None, [])


def test_instance_groups_replace_instance_type_and_count() -> None:
    group = {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "InstanceGroupName": "cpu"}
    body = mutated(MINIMAL, {"ResourceConfig": {"InstanceGroups": [group]}})
    resources = parse(body).resource_config
    assert resources.instance_type is None and resources.instance_count is None
    assert [g.instance_group_name for g in resources.instance_groups or []] == ["cpu"]


def test_spot_training_needs_max_wait_at_least_max_runtime() -> None:
    body = mutated(
        SDK_PCA_TRAINING_JOB,
        {"EnableManagedSpotTraining": True, "StoppingCondition.MaxWaitTimeInSeconds": 86400},
    )
    assert parse(body).stopping_condition.max_wait_time_in_seconds == 86400


def test_sdk_flavoured_names_keep_sagemakers_spelling() -> None:
    body = mutated(MINIMAL, {"AlgorithmSpecification.EnableSageMakerMetricsTimeSeries": True})
    request = parse(body)
    assert request.algorithm_specification.enable_sagemaker_metrics_time_series is True
    assert request.to_request()["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"]


CASE_PARAMS = [pytest.param(case, id=case.case_id) for case in TRAINING_CASES]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_invalid_request_fails_like_sagemaker(case: ValidationCase) -> None:
    """The answer a client sees: SageMaker's error code, one named field, its rule."""
    with pytest.raises(ApiError) as caught:
        call(lambda body: parse(body).to_request(), case.body)
    error = caught.value
    assert isinstance(error.__cause__, SpecValidationError)
    assert (error.code, error.status) == (case.error_code, 400)
    # One mistake per case, so exactly one problem: a second would hide a broken base.
    assert error.message.startswith("1 validation error detected: Value "), error.message
    assert f"at '{case.field}" in error.message, error.message
    assert case.rule in error.message, error.message


def test_the_table_has_enough_cases_with_unique_ids() -> None:
    ids = [case.case_id for case in TRAINING_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


def test_all_problems_are_reported_at_once() -> None:
    body = with_channel({"ChannelName": "bad name", "RecordWrapperType": "RecordIO"})
    body["TrainingJobName"] = "bad_name"
    with pytest.raises(SpecValidationError) as caught:
        parse(body)
    assert set(caught.value.fields) == {"trainingJobName", "inputDataConfig.0.channelName"}
    # Cross-field rules run once the shapes are valid, and all of them report together.
    body = with_channel({"RecordWrapperType": "RecordIO"})
    body["EnableManagedSpotTraining"] = True
    with pytest.raises(SpecValidationError) as caught:
        parse(body)
    assert set(caught.value.fields) == {
        "inputDataConfig.0.recordWrapperType",
        "stoppingCondition.maxWaitTimeInSeconds",
    }
