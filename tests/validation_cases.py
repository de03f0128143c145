"""Invalid SageMaker requests and the ValidationException each must produce, as plain data.

Every case is a valid base request with one mistake, so the message must hold exactly one
problem and name that field in SageMaker's camelCase path style. The table is shared: the
unit tests parse each body directly, and a server test can send each one through boto3
(with botocore's client-side parameter validation off, so the server is what refuses it).

Where batchform's path differs from SageMaker's the case says so: SageMaker numbers list
items from 1 and adds `.member` (`tags.1.member.key`), batchform says `tags.0.key`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NamedTuple

CREATE_TRANSFORM_JOB = "CreateTransformJob"
CREATE_MODEL = "CreateModel"
VALIDATION_EXCEPTION = "ValidationException"


class ValidationCase(NamedTuple):
    case_id: str
    operation: str
    body: dict[str, Any]
    error_code: str
    #: Must appear in the message: the field's path, as SageMaker spells it.
    field: str
    #: Must appear in the message too: the words of the rule that was broken.
    rule: str


#: Complete as SageMaker requires (TransformResources, S3DataType), not only as batchform does.
VALID_TRANSFORM_JOB: dict[str, Any] = {
    "TransformJobName": "parity-job",
    "ModelName": "parity-model",
    "TransformInput": {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    },
    "TransformOutput": {
        "S3OutputPath": "s3://bucket/out/",
        "Accept": "text/csv",
        "AssembleWith": "Line",
    },
    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
}

VALID_MODEL: dict[str, Any] = {
    "ModelName": "parity-model",
    "PrimaryContainer": {
        "Image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1",
        "ModelDataUrl": "s3://bucket/model/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
    },
    "ExecutionRoleArn": "arn:aws:iam::111111111111:role/SageMakerRole",
}

VALID_REQUESTS: dict[str, dict[str, Any]] = {
    CREATE_TRANSFORM_JOB: VALID_TRANSFORM_JOB,
    CREATE_MODEL: VALID_MODEL,
}

#: A change's value that removes the field instead of setting it.
DELETE = object()


def mutated(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with each dotted path set to its value (or DELETEd)."""
    body = copy.deepcopy(dict(base))
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = copy.deepcopy(value)
    return body


def case(
    case_id: str, operation: str, changes: Mapping[str, Any], field: str, rule: str
) -> ValidationCase:
    body = mutated(VALID_REQUESTS[operation], changes)
    return ValidationCase(case_id, operation, body, VALIDATION_EXCEPTION, field, rule)


def _job(case_id: str, changes: Mapping[str, Any], field: str, rule: str) -> ValidationCase:
    return case(case_id, CREATE_TRANSFORM_JOB, changes, field, rule)


def _model(case_id: str, changes: Mapping[str, Any], field: str, rule: str) -> ValidationCase:
    return case(case_id, CREATE_MODEL, changes, field, rule)


def _entries(count: int) -> dict[str, str]:
    return {f"VAR_{index}": "x" for index in range(count)}


def _tags(count: int) -> list[dict[str, str]]:
    return [{"Key": f"key-{index}", "Value": "v"} for index in range(count)]


NULL = "Member must not be null"
PATTERN = "Member must satisfy regular expression pattern"
ENUM = "Member must satisfy enum value set"
UNKNOWN = "Member is not a known field of this request"
S3_DATA_SOURCE = "TransformInput.DataSource.S3DataSource"
DATA_SOURCE_FIELD = "transformInput.dataSource.s3DataSource"

TRANSFORM_JOB_CASES: list[ValidationCase] = [
    # Required fields, one level at a time.
    _job("job-name-missing", {"TransformJobName": DELETE}, "transformJobName", NULL),
    _job("job-model-name-missing", {"ModelName": DELETE}, "modelName", NULL),
    _job("job-input-missing", {"TransformInput": DELETE}, "transformInput", NULL),
    _job("job-output-missing", {"TransformOutput": DELETE}, "transformOutput", NULL),
    _job(
        "job-data-source-missing",
        {"TransformInput.DataSource": DELETE},
        "transformInput.dataSource",
        NULL,
    ),
    _job(
        "job-s3-data-source-missing",
        {"TransformInput.DataSource.S3DataSource": DELETE},
        DATA_SOURCE_FIELD,
        NULL,
    ),
    _job(
        "job-s3-uri-missing",
        {f"{S3_DATA_SOURCE}.S3Uri": DELETE},
        f"{DATA_SOURCE_FIELD}.s3Uri",
        NULL,
    ),
    _job(
        "job-output-path-missing",
        {"TransformOutput.S3OutputPath": DELETE},
        "transformOutput.s3OutputPath",
        NULL,
    ),
    # Names: pattern and length.
    _job("job-name-underscore", {"TransformJobName": "bad_name"}, "transformJobName", PATTERN),
    _job("job-name-leading-hyphen", {"TransformJobName": "-job"}, "transformJobName", PATTERN),
    _job(
        "job-name-too-long",
        {"TransformJobName": "j" * 64},
        "transformJobName",
        "Member must have length less than or equal to 63",
    ),
    _job(
        "job-name-empty",
        {"TransformJobName": ""},
        "transformJobName",
        "Member must have length greater than or equal to 1",
    ),
    _job("job-model-name-space", {"ModelName": "my model"}, "modelName", PATTERN),
    # Payload and concurrency.
    _job(
        "payload-over-100",
        {"MaxPayloadInMB": 101},
        "maxPayloadInMB",
        "Member must have value less than or equal to 100",
    ),
    _job(
        "payload-negative",
        {"MaxPayloadInMB": -1},
        "maxPayloadInMB",
        "Member must have value greater than or equal to 0",
    ),
    _job(
        "payload-times-concurrency-over-100",
        {"MaxConcurrentTransforms": 4, "MaxPayloadInMB": 30},
        "maxPayloadInMB",
        "MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 MB",
    ),
    _job(
        "concurrency-negative",
        {"MaxConcurrentTransforms": -1},
        "maxConcurrentTransforms",
        "Member must have value greater than or equal to 0",
    ),
    # ModelClientConfig.
    _job(
        "timeout-zero",
        {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 0}},
        "modelClientConfig.invocationsTimeoutInSeconds",
        "Member must have value greater than or equal to 1",
    ),
    _job(
        "timeout-over-an-hour",
        {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 3601}},
        "modelClientConfig.invocationsTimeoutInSeconds",
        "Member must have value less than or equal to 3600",
    ),
    _job(
        "retries-four",
        {"ModelClientConfig": {"InvocationsMaxRetries": 4}},
        "modelClientConfig.invocationsMaxRetries",
        "Member must have value less than or equal to 3",
    ),
    _job(
        "retries-negative",
        {"ModelClientConfig": {"InvocationsMaxRetries": -1}},
        "modelClientConfig.invocationsMaxRetries",
        "Member must have value greater than or equal to 0",
    ),
    # Enumerations.
    _job(
        "split-type-bad",
        {"TransformInput.SplitType": "Lines"},
        "transformInput.splitType",
        f"{ENUM}: [None, Line, RecordIO, TFRecord]",
    ),
    _job(
        "batch-strategy-bad",
        {"BatchStrategy": "Multi"},
        "batchStrategy",
        f"{ENUM}: [MultiRecord, SingleRecord]",
    ),
    _job(
        "assemble-with-bad",
        {"TransformOutput.AssembleWith": "Newline"},
        "transformOutput.assembleWith",
        f"{ENUM}: [None, Line]",
    ),
    _job(
        "compression-type-bad",
        {"TransformInput.CompressionType": "Zip"},
        "transformInput.compressionType",
        f"{ENUM}: [None, Gzip]",
    ),
    _job(
        "s3-data-type-bad",
        {f"{S3_DATA_SOURCE}.S3DataType": "Prefix"},
        f"{DATA_SOURCE_FIELD}.s3DataType",
        f"{ENUM}: [S3Prefix, ManifestFile, AugmentedManifestFile]",
    ),
    # Resources.
    _job(
        "instance-count-zero",
        {"TransformResources.InstanceCount": 0},
        "transformResources.instanceCount",
        "Member must have value greater than or equal to 1",
    ),
    _job(
        "instance-type-bad",
        {"TransformResources.InstanceType": "m5.large"},
        "transformResources.instanceType",
        PATTERN,
    ),
    _job(
        "ami-version-bad",
        {"TransformResources.TransformAmiVersion": "al2_gpu"},
        "transformResources.transformAmiVersion",
        PATTERN,
    ),
    # URIs, media types, keys.
    _job(
        "s3-uri-too-long",
        {f"{S3_DATA_SOURCE}.S3Uri": "s3://bucket/" + "k" * 1013},
        f"{DATA_SOURCE_FIELD}.s3Uri",
        "Member must have length less than or equal to 1024",
    ),
    _job(
        "content-type-too-long",
        {"TransformInput.ContentType": "text/" + "x" * 252},
        "transformInput.contentType",
        "Member must have length less than or equal to 256",
    ),
    _job(
        "kms-key-bad", {"TransformOutput.KmsKeyId": "my key"}, "transformOutput.kmsKeyId", PATTERN
    ),
    # Environment (a transform job allows 16 entries, each value up to 10240 characters).
    _job(
        "job-environment-too-many",
        {"Environment": _entries(17)},
        "environment",
        "Member must have length less than or equal to 16",
    ),
    _job("job-environment-bad-key", {"Environment": {"1BAD": "x"}}, "environment", PATTERN),
    _job(
        "job-environment-value-too-long",
        {"Environment": {"LONG": "x" * 10241}},
        "environment",
        "Member must have length less than or equal to 10240",
    ),
    # Tags.
    _job(
        "job-tags-too-many",
        {"Tags": _tags(51)},
        "tags",
        "Member must have length less than or equal to 50",
    ),
    # SageMaker: 'tags.1.member.key'.
    _job(
        "job-tag-key-empty",
        {"Tags": [{"Key": "", "Value": "v"}]},
        "tags.0.key",
        "Member must have length greater than or equal to 1",
    ),
    # SageMaker: 'tags.1.member.value'.
    _job(
        "job-tag-value-too-long",
        {"Tags": [{"Key": "k", "Value": "v" * 257}]},
        "tags.0.value",
        "Member must have length less than or equal to 256",
    ),
    # Unknown fields.
    _job("job-unknown-field", {"MaxPayloadInMb": 6}, "maxPayloadInMb", UNKNOWN),
    _job(
        "job-unknown-nested-field",
        {"TransformInput.Split": "Line"},
        "transformInput.split",
        UNKNOWN,
    ),
    # DataProcessing.
    _job(
        "input-filter-too-long",
        {"DataProcessing": {"InputFilter": "$[" + ",".join(["1"] * 31) + "]"}},
        "dataProcessing.inputFilter",
        "Member must have length less than or equal to 63",
    ),
    _job(
        "output-filter-too-long",
        {"DataProcessing": {"OutputFilter": "$[" + ",".join(["1"] * 31) + "]"}},
        "dataProcessing.outputFilter",
        "Member must have length less than or equal to 63",
    ),
    _job(
        "join-source-bad",
        {"DataProcessing": {"JoinSource": "Output"}},
        "dataProcessing.joinSource",
        f"{ENUM}: [Input, None]",
    ),
    _job(
        "join-with-unsupported-content-type",
        {"DataProcessing": {"JoinSource": "Input"}, "TransformInput.ContentType": "image/png"},
        "transformInput.contentType",
        "Member must be one of [text/csv, application/json, application/jsonlines]",
    ),
    # batchform's extensions, carried in the Environment.
    _job(
        "on-error-bad",
        {"Environment": {"BATCHFORM_ON_ERROR": "skip"}},
        "environment.BATCHFORM_ON_ERROR",
        "Member must be one of [fail, isolate]",
    ),
    _job(
        "max-errors-bad",
        {"Environment": {"BATCHFORM_ON_ERROR": "isolate", "BATCHFORM_MAX_ERRORS": "lots"}},
        "environment.BATCHFORM_MAX_ERRORS",
        "Member must be a record count or a percentage",
    ),
    _job(
        "split-objects-over-zero",
        {"Environment": {"BATCHFORM_SPLIT_OBJECTS_OVER_MB": "0"}},
        "environment.BATCHFORM_SPLIT_OBJECTS_OVER_MB",
        "Member must be a whole number of MB greater than 0",
    ),
    _job(
        "split-hold-not-a-number",
        {"Environment": {"BATCHFORM_SPLIT_HOLD_MB": "lots"}},
        "environment.BATCHFORM_SPLIT_HOLD_MB",
        "Member must be a whole number of MB",
    ),
]

CONTAINER = "PrimaryContainer"

MODEL_CASES: list[ValidationCase] = [
    # ModelName.
    _model("model-name-missing", {"ModelName": DELETE}, "modelName", NULL),
    _model("model-name-underscore", {"ModelName": "bad_model"}, "modelName", PATTERN),
    _model("model-name-trailing-hyphen", {"ModelName": "model-"}, "modelName", PATTERN),
    _model(
        "model-name-too-long",
        {"ModelName": "m" * 64},
        "modelName",
        "Member must have length less than or equal to 63",
    ),
    # Containers: exactly one of PrimaryContainer and Containers.
    _model("model-without-containers", {CONTAINER: DELETE}, "primaryContainer", NULL),
    _model(
        "model-with-both-container-fields",
        {"Containers": [VALID_MODEL[CONTAINER]]},
        "containers",
        "Member must not be given together with PrimaryContainer",
    ),
    _model(
        "model-too-many-containers",
        {CONTAINER: DELETE, "Containers": [VALID_MODEL[CONTAINER]] * 16},
        "containers",
        "Member must have length less than or equal to 15",
    ),
    # The container.
    _model(
        "image-too-long",
        {f"{CONTAINER}.Image": "i" * 256},
        "primaryContainer.image",
        "Member must have length less than or equal to 255",
    ),
    _model("image-empty", {f"{CONTAINER}.Image": ""}, "primaryContainer.image", PATTERN),
    _model(
        "image-with-space", {f"{CONTAINER}.Image": "my image"}, "primaryContainer.image", PATTERN
    ),
    _model(
        "mode-bad",
        {f"{CONTAINER}.Mode": "Multi"},
        "primaryContainer.mode",
        f"{ENUM}: [SingleModel, MultiModel]",
    ),
    _model(
        "model-data-url-too-long",
        {f"{CONTAINER}.ModelDataUrl": "s3://bucket/" + "k" * 1013},
        "primaryContainer.modelDataUrl",
        "Member must have length less than or equal to 1024",
    ),
    _model(
        "container-hostname-bad",
        {f"{CONTAINER}.ContainerHostname": "host_name"},
        "primaryContainer.containerHostname",
        PATTERN,
    ),
    _model(
        "image-config-access-mode-missing",
        {f"{CONTAINER}.ImageConfig": {}},
        "primaryContainer.imageConfig.repositoryAccessMode",
        NULL,
    ),
    _model(
        "image-config-access-mode-bad",
        {f"{CONTAINER}.ImageConfig": {"RepositoryAccessMode": "Private"}},
        "primaryContainer.imageConfig.repositoryAccessMode",
        f"{ENUM}: [Platform, Vpc]",
    ),
    _model(
        "model-cache-setting-bad",
        {f"{CONTAINER}.MultiModelConfig": {"ModelCacheSetting": "On"}},
        "primaryContainer.multiModelConfig.modelCacheSetting",
        f"{ENUM}: [Enabled, Disabled]",
    ),
    _model(
        "model-package-name-trailing-hyphen",
        {f"{CONTAINER}.ModelPackageName": "package-"},
        "primaryContainer.modelPackageName",
        PATTERN,
    ),
    _model(
        "container-unknown-field",
        {f"{CONTAINER}.ImageUri": "x"},
        "primaryContainer.imageUri",
        UNKNOWN,
    ),
    # A model's Environment: 100 entries, values up to 1024 characters.
    _model(
        "model-environment-bad-key",
        {f"{CONTAINER}.Environment": {"BAD-KEY": "x"}},
        "primaryContainer.environment",
        PATTERN,
    ),
    _model(
        "model-environment-value-too-long",
        {f"{CONTAINER}.Environment": {"LONG": "x" * 1025}},
        "primaryContainer.environment",
        "Member must have length less than or equal to 1024",
    ),
    _model(
        "model-environment-too-many",
        {f"{CONTAINER}.Environment": _entries(101)},
        "primaryContainer.environment",
        "Member must have length less than or equal to 100",
    ),
    # ExecutionRoleArn.
    _model(
        "role-arn-short-account",
        {"ExecutionRoleArn": "arn:aws:iam::1111:role/SageMakerRole"},
        "executionRoleArn",
        PATTERN,
    ),
    _model(
        "role-arn-too-short",
        {"ExecutionRoleArn": "SageMakerRole"},
        "executionRoleArn",
        "Member must have length greater than or equal to 20",
    ),
    # The rest of the request.
    _model(
        "inference-execution-mode-bad",
        {"InferenceExecutionConfig": {"Mode": "Parallel"}},
        "inferenceExecutionConfig.mode",
        f"{ENUM}: [Serial, Direct]",
    ),
    _model(
        "vpc-no-security-groups",
        {"VpcConfig": {"SecurityGroupIds": [], "Subnets": ["subnet-1"]}},
        "vpcConfig.securityGroupIds",
        "Member must have length greater than or equal to 1",
    ),
    _model(
        "vpc-subnets-missing",
        {"VpcConfig": {"SecurityGroupIds": ["sg-1"]}},
        "vpcConfig.subnets",
        NULL,
    ),
    _model(
        "model-tags-too-many",
        {"Tags": _tags(51)},
        "tags",
        "Member must have length less than or equal to 50",
    ),
    _model("model-unknown-field", {"PrimaryContainers": []}, "primaryContainers", UNKNOWN),
]

CASES: list[ValidationCase] = TRANSFORM_JOB_CASES + MODEL_CASES
