"""CreateTransformJob validation: SageMaker's defaults, and every rule names its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from batchform.engine.settings import resolve_settings
from batchform.errors import SpecValidationError
from batchform.runtimes.base import ExecutionParameters
from batchform.service import parse_transform_request
from batchform.spec.enums import AssembleWith, BatchStrategy, CompressionType, SplitType

VALID: dict[str, Any] = {
    "TransformJobName": "my-job-1",
    "ModelName": "pca-model",
    "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://bucket/in/"}}},
    "TransformOutput": {"S3OutputPath": "s3://bucket/out/"},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return body


_DELETE = object()


def test_defaults_are_sagemakers() -> None:
    request = parse_transform_request(VALID)
    assert request.transform_input.split_type is SplitType.NONE
    assert request.transform_input.compression_type is CompressionType.NONE
    assert request.transform_output.assemble_with is AssembleWith.NONE
    assert request.transform_resources.instance_count == 1
    assert request.model_client_config.invocations_timeout_in_seconds == 600
    assert request.model_client_config.invocations_max_retries == 3
    settings = resolve_settings(request, ExecutionParameters())
    assert (
        settings.max_concurrent_transforms,
        settings.max_payload_in_mb,
        settings.batch_strategy,
    ) == (1, 6, BatchStrategy.MULTI_RECORD)


def test_round_trip_keeps_sagemaker_field_names() -> None:
    body = with_change("MaxPayloadInMB", 0)
    dumped = parse_transform_request(body).to_request()
    assert dumped["MaxPayloadInMB"] == 0
    assert dumped["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://bucket/in/"


def test_execution_parameter_spellings_are_both_accepted() -> None:
    request = parse_transform_request(VALID)
    for spelling in ("SINGLE_RECORD", "SingleRecord"):
        params = ExecutionParameters(batch_strategy=spelling)
        assert resolve_settings(request, params).batch_strategy is BatchStrategy.SINGLE_RECORD


INVALID = [
    ("TransformJobName", "bad_name", "transformJobName", "regular expression"),
    ("TransformJobName", "-leading", "transformJobName", "regular expression"),
    ("TransformJobName", "x" * 64, "transformJobName", "length"),
    ("TransformJobName", _DELETE, "transformJobName", "must not be null"),
    ("ModelName", "has space", "modelName", "regular expression"),
    ("MaxPayloadInMB", 101, "maxPayloadInMB", "less than or equal to 100"),
    ("MaxPayloadInMB", -1, "maxPayloadInMB", "greater than or equal to 0"),
    ("MaxConcurrentTransforms", -2, "maxConcurrentTransforms", "greater than or equal to 0"),
    ("BatchStrategy", "Multi", "batchStrategy", "enum value set"),
    ("TransformInput.SplitType", "Lines", "transformInput.splitType", "enum value set"),
    ("TransformInput.CompressionType", "Zip", "transformInput.compressionType", "enum"),
    (
        "TransformInput.DataSource.S3DataSource.S3DataType",
        "Prefix",
        "transformInput.dataSource.s3DataSource.s3DataType",
        "enum value set",
    ),
    ("TransformInput.DataSource.S3DataSource.S3Uri", "", "s3Uri", "length"),
    ("TransformInput.ContentType", "x" * 257, "transformInput.contentType", "length"),
    ("TransformOutput.AssembleWith", "Newline", "transformOutput.assembleWith", "enum"),
    ("TransformOutput.S3OutputPath", _DELETE, "transformOutput.s3OutputPath", "null"),
    (
        "TransformResources.InstanceCount",
        0,
        "transformResources.instanceCount",
        "greater than or equal to 1",
    ),
    (
        "TransformResources.InstanceType",
        "m5.large",
        "transformResources.instanceType",
        "regular expression",
    ),
    (
        "ModelClientConfig.InvocationsTimeoutInSeconds",
        0,
        "modelClientConfig.invocationsTimeoutInSeconds",
        "greater than or equal to 1",
    ),
    (
        "ModelClientConfig.InvocationsTimeoutInSeconds",
        3601,
        "modelClientConfig.invocationsTimeoutInSeconds",
        "less than or equal to 3600",
    ),
    (
        "ModelClientConfig.InvocationsMaxRetries",
        4,
        "modelClientConfig.invocationsMaxRetries",
        "less than or equal to 3",
    ),
    ("Environment", {"1BAD": "x"}, "environment", "regular expression"),
    ("Environment", {"OK": "x" * 10241}, "environment", "length"),
    ("Tags", [{"Key": ""}], "tags.0.key", "length"),
    ("Unknown", 1, "unknown", "not a known field"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "rule"),
    INVALID,
    ids=[f"{row[0]}={str(row[1])[:12]}" for row in INVALID],
)
def test_invalid_requests_name_the_field_and_rule(
    path: str, value: Any, field: str, rule: str
) -> None:
    with pytest.raises(SpecValidationError) as caught:
        parse_transform_request(with_change(path, value))
    message = str(caught.value)
    assert field in message, message
    assert rule in message, message
    assert message.startswith("1 validation error detected: ")


def test_payload_times_concurrency_may_not_exceed_100_mb() -> None:
    body = with_change("MaxPayloadInMB", 30)
    body["MaxConcurrentTransforms"] = 4
    with pytest.raises(SpecValidationError) as caught:
        parse_transform_request(body)
    assert caught.value.fields == ["maxPayloadInMB"]
    body["MaxConcurrentTransforms"] = 3
    assert parse_transform_request(body).max_payload_in_mb == 30


def test_all_problems_are_reported_at_once() -> None:
    body = with_change("TransformJobName", "a_b")
    body["MaxPayloadInMB"] = 500
    with pytest.raises(SpecValidationError) as caught:
        parse_transform_request(body)
    assert str(caught.value).startswith("2 validation errors detected")
    assert set(caught.value.fields) == {"transformJobName", "maxPayloadInMB"}
