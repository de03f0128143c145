"""Invalid CreateTrainingJob requests and the ValidationException each must produce.

The same kind of table as tests/validation_cases.py, kept apart because the server does
not serve CreateTrainingJob yet (a server test sends every case of that file's CASES).
Each case is the base request below with one mistake, so the message must hold exactly
one problem, named in SageMaker's camelCase path style with batchform's list indexes
(`inputDataConfig.0.channelName`; SageMaker says `inputDataConfig.1.member.channelName`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.validation_cases import (
    DELETE,
    ENUM,
    NULL,
    PATTERN,
    UNKNOWN,
    VALIDATION_EXCEPTION,
    ValidationCase,
    mutated,
)

CREATE_TRAINING_JOB = "CreateTrainingJob"

#: What the sagemaker SDK (v2.257.7) sends to create_training_job for the seed notebook's
#: PCA: `Estimator(image_uri=<pca image>, instance_type="ml.c4.xlarge", output_path=...)`,
#: its hyperparameters, and `fit({"train": TrainingInput(train_s3,
#: content_type="text/csv;label_size=0")})`; recorded from a stubbed sagemaker_client.
SDK_PCA_TRAINING_JOB: dict[str, Any] = {
    "AlgorithmSpecification": {
        "TrainingInputMode": "File",
        "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1",
    },
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/reviews/pca/output"},
    "TrainingJobName": "pca-2024-01-01-00-00-00-000",
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.c4.xlarge"},
    "RoleArn": "arn:aws:iam::111111111111:role/SageMakerRole",
    "InputDataConfig": [
        {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://bucket/reviews/pca/train/train.csv",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/csv;label_size=0",
            "ChannelName": "train",
        }
    ],
    "HyperParameters": {
        "feature_dim": "2348",
        "num_components": "100",
        "subtract_mean": "True",
        "algorithm_mode": "randomized",
        "mini_batch_size": "500",
    },
    "DebugHookConfig": {
        "S3OutputPath": "s3://bucket/reviews/pca/output",
        "CollectionConfigurations": [],
    },
    "ProfilerConfig": {"S3OutputPath": "s3://bucket/reviews/pca/output", "DisableProfiler": False},
}

TRAIN_CHANNEL: dict[str, Any] = SDK_PCA_TRAINING_JOB["InputDataConfig"][0]
SPEC = "AlgorithmSpecification"
S3_SOURCE = "DataSource.S3DataSource"
CHANNEL_FIELD = "inputDataConfig.0"
SOURCE_FIELD = f"{CHANNEL_FIELD}.dataSource.s3DataSource"


def _job(case_id: str, changes: Mapping[str, Any], field: str, rule: str) -> ValidationCase:
    body = mutated(SDK_PCA_TRAINING_JOB, changes)
    return ValidationCase(case_id, CREATE_TRAINING_JOB, body, VALIDATION_EXCEPTION, field, rule)


def _channel(case_id: str, changes: Mapping[str, Any], field: str, rule: str) -> ValidationCase:
    """A case whose one mistake is in the `train` channel (`changes` are relative to it)."""
    channels = [mutated(TRAIN_CHANNEL, changes)]
    return _job(case_id, {"InputDataConfig": channels}, f"{CHANNEL_FIELD}.{field}", rule)


def _at_most(limit: int) -> str:
    return f"Member must have length less than or equal to {limit}"


def _at_least(limit: int) -> str:
    return f"Member must have length greater than or equal to {limit}"


def _channels(count: int) -> list[dict[str, Any]]:
    return [{**TRAIN_CHANNEL, "ChannelName": f"channel-{index}"} for index in range(count)]


MAX_WAIT = "Invalid MaxWaitTimeInSeconds"

TRAINING_CASES: list[ValidationCase] = [
    # TrainingJobName.
    _job("training-job-name-missing", {"TrainingJobName": DELETE}, "trainingJobName", NULL),
    _job(
        "training-job-name-underscore", {"TrainingJobName": "pca_job"}, "trainingJobName", PATTERN
    ),
    _job(
        "training-job-name-too-long", {"TrainingJobName": "t" * 64}, "trainingJobName", _at_most(63)
    ),
    # AlgorithmSpecification.
    _job("algorithm-specification-missing", {SPEC: DELETE}, "algorithmSpecification", NULL),
    _job(
        "training-input-mode-missing",
        {f"{SPEC}.TrainingInputMode": DELETE},
        "algorithmSpecification.trainingInputMode",
        NULL,
    ),
    _job(
        "training-input-mode-bad",
        {f"{SPEC}.TrainingInputMode": "Stream"},
        "algorithmSpecification.trainingInputMode",
        f"{ENUM}: [Pipe, File, FastFile]",
    ),
    _job(
        "training-image-and-algorithm-name-missing",
        {f"{SPEC}.TrainingImage": DELETE},
        "algorithmSpecification.trainingImage",
        "Member must not be null unless AlgorithmName is given",
    ),
    _job(
        "training-image-with-algorithm-name",
        {f"{SPEC}.AlgorithmName": "my-algorithm"},
        "algorithmSpecification.algorithmName",
        "Member must not be given together with TrainingImage",
    ),
    _job(
        "algorithm-name-trailing-hyphen",
        {f"{SPEC}.TrainingImage": DELETE, f"{SPEC}.AlgorithmName": "my-algorithm-"},
        "algorithmSpecification.algorithmName",
        PATTERN,
    ),
    _job(
        "training-image-too-long",
        {f"{SPEC}.TrainingImage": "i" * 256},
        "algorithmSpecification.trainingImage",
        _at_most(255),
    ),
    _job(
        "metric-definitions-too-many",
        {f"{SPEC}.MetricDefinitions": [{"Name": "loss", "Regex": "loss=(.*)"}] * 41},
        "algorithmSpecification.metricDefinitions",
        _at_most(40),
    ),
    _job(
        "metric-definition-regex-missing",
        {f"{SPEC}.MetricDefinitions": [{"Name": "loss"}]},
        "algorithmSpecification.metricDefinitions.0.regex",
        NULL,
    ),
    _job(
        "container-entrypoint-empty",
        {f"{SPEC}.ContainerEntrypoint": []},
        "algorithmSpecification.containerEntrypoint",
        _at_least(1),
    ),
    _job(
        "training-repository-access-mode-bad",
        {f"{SPEC}.TrainingImageConfig": {"TrainingRepositoryAccessMode": "Private"}},
        "algorithmSpecification.trainingImageConfig.trainingRepositoryAccessMode",
        f"{ENUM}: [Platform, Vpc]",
    ),
    # HyperParameters: 100 entries, keys up to 256 characters, values up to 2500.
    _job(
        "hyperparameters-too-many",
        {"HyperParameters": {f"p{index}": "1" for index in range(101)}},
        "hyperParameters",
        _at_most(100),
    ),
    _job(
        "hyperparameter-key-too-long",
        {"HyperParameters": {"k" * 257: "1"}},
        "hyperParameters",
        _at_most(256),
    ),
    _job(
        "hyperparameter-value-too-long",
        {"HyperParameters.feature_dim": "9" * 2501},
        "hyperParameters.feature_dim",
        _at_most(2500),
    ),
    # RoleArn: optional here, but checked like SageMaker's when given.
    _job(
        "role-arn-short-account",
        {"RoleArn": "arn:aws:iam::1111:role/SageMakerRole"},
        "roleArn",
        PATTERN,
    ),
    # InputDataConfig and its channels.
    _job("input-data-config-empty", {"InputDataConfig": []}, "inputDataConfig", _at_least(1)),
    _job(
        "input-data-config-too-many",
        {"InputDataConfig": _channels(21)},
        "inputDataConfig",
        _at_most(20),
    ),
    _job(
        "channel-names-duplicate",
        {"InputDataConfig": [TRAIN_CHANNEL, TRAIN_CHANNEL]},
        "inputDataConfig.1.channelName",
        "Member must be unique",
    ),
    _channel("channel-name-missing", {"ChannelName": DELETE}, "channelName", NULL),
    _channel("channel-name-space", {"ChannelName": "train data"}, "channelName", PATTERN),
    _channel("channel-name-too-long", {"ChannelName": "c" * 65}, "channelName", _at_most(64)),
    _channel("channel-data-source-missing", {"DataSource": DELETE}, "dataSource", NULL),
    _channel(
        "channel-data-source-empty",
        {"DataSource": {}},
        "dataSource.s3DataSource",
        "Member must not be null unless FileSystemDataSource or DatasetSource is given",
    ),
    _channel(
        "channel-two-data-sources",
        {"DataSource.FileSystemDataSource": {"FileSystemId": "fs-0123456789abcdef0"}},
        "dataSource.fileSystemDataSource",
        "Member must not be given together with S3DataSource",
    ),
    _channel(
        "s3-uri-missing", {f"{S3_SOURCE}.S3Uri": DELETE}, "dataSource.s3DataSource.s3Uri", NULL
    ),
    _channel(
        "s3-data-type-bad",
        {f"{S3_SOURCE}.S3DataType": "Prefix"},
        "dataSource.s3DataSource.s3DataType",
        f"{ENUM}: [S3Prefix, ManifestFile, AugmentedManifestFile]",
    ),
    _channel(
        "s3-data-distribution-bad",
        {f"{S3_SOURCE}.S3DataDistributionType": "Sharded"},
        "dataSource.s3DataSource.s3DataDistributionType",
        f"{ENUM}: [FullyReplicated, ShardedByS3Key]",
    ),
    _channel(
        "attribute-names-too-many",
        {f"{S3_SOURCE}.AttributeNames": [f"attribute-{index}" for index in range(17)]},
        "dataSource.s3DataSource.attributeNames",
        _at_most(16),
    ),
    _channel(
        "channel-content-type-too-long",
        {"ContentType": "text/" + "x" * 252},
        "contentType",
        _at_most(256),
    ),
    _channel(
        "channel-compression-bad",
        {"CompressionType": "Zip"},
        "compressionType",
        f"{ENUM}: [None, Gzip]",
    ),
    _channel(
        "channel-record-wrapper-bad",
        {"RecordWrapperType": "recordio"},
        "recordWrapperType",
        f"{ENUM}: [None, RecordIO]",
    ),
    _channel(
        "channel-input-mode-bad",
        {"InputMode": "Streaming"},
        "inputMode",
        f"{ENUM}: [Pipe, File, FastFile]",
    ),
    # The job is in File mode and the channel does not override it.
    _channel(
        "channel-recordio-in-file-mode",
        {"RecordWrapperType": "RecordIO"},
        "recordWrapperType",
        "Invalid record wrapper type for channel train: File mode only supports None",
    ),
    _channel("shuffle-seed-missing", {"ShuffleConfig": {}}, "shuffleConfig.seed", NULL),
    _channel("channel-unknown-field", {"Mode": "File"}, "mode", UNKNOWN),
    # OutputDataConfig.
    _job("output-data-config-missing", {"OutputDataConfig": DELETE}, "outputDataConfig", NULL),
    _job(
        "output-path-missing",
        {"OutputDataConfig.S3OutputPath": DELETE},
        "outputDataConfig.s3OutputPath",
        NULL,
    ),
    _job(
        "output-compression-bad",
        {"OutputDataConfig.CompressionType": "Gzip"},
        "outputDataConfig.compressionType",
        f"{ENUM}: [GZIP, NONE]",
    ),
    _job(
        "output-kms-key-bad",
        {"OutputDataConfig.KmsKeyId": "my key"},
        "outputDataConfig.kmsKeyId",
        PATTERN,
    ),
    # ResourceConfig.
    _job("resource-config-missing", {"ResourceConfig": DELETE}, "resourceConfig", NULL),
    _job(
        "instance-type-bad",
        {"ResourceConfig.InstanceType": "c4.xlarge"},
        "resourceConfig.instanceType",
        PATTERN,
    ),
    _job(
        "instance-count-zero",
        {"ResourceConfig.InstanceCount": 0},
        "resourceConfig.instanceCount",
        "Member must have value greater than or equal to 1",
    ),
    _job(
        "instance-count-missing",
        {"ResourceConfig.InstanceCount": DELETE},
        "resourceConfig.instanceCount",
        "Member must not be null unless InstanceGroups is given",
    ),
    _job(
        "instance-type-with-instance-groups",
        {
            "ResourceConfig.InstanceCount": DELETE,
            "ResourceConfig.InstanceGroups": [
                {"InstanceType": "ml.c4.xlarge", "InstanceCount": 2, "InstanceGroupName": "cpu"}
            ],
        },
        "resourceConfig.instanceType",
        "Member must not be given together with InstanceGroups",
    ),
    _job(
        "volume-size-negative",
        {"ResourceConfig.VolumeSizeInGB": -1},
        "resourceConfig.volumeSizeInGB",
        "Member must have value greater than or equal to 0",
    ),
    _job(
        "keep-alive-over-six-hours",
        {"ResourceConfig.KeepAlivePeriodInSeconds": 21601},
        "resourceConfig.keepAlivePeriodInSeconds",
        "Member must have value less than or equal to 21600",
    ),
    # StoppingCondition and managed spot training.
    _job(
        "max-runtime-zero",
        {"StoppingCondition.MaxRuntimeInSeconds": 0},
        "stoppingCondition.maxRuntimeInSeconds",
        "Member must have value greater than or equal to 1",
    ),
    _job(
        "max-runtime-over-28-days",
        {"StoppingCondition.MaxRuntimeInSeconds": 2419201},
        "stoppingCondition.maxRuntimeInSeconds",
        "Member must have value less than or equal to 2419200",
    ),
    _job(
        "max-pending-under-30-minutes",
        {"StoppingCondition.MaxPendingTimeInSeconds": 1799},
        "stoppingCondition.maxPendingTimeInSeconds",
        "Member must have value greater than or equal to 1800",
    ),
    _job(
        "max-wait-without-spot",
        {"StoppingCondition.MaxWaitTimeInSeconds": 172800},
        "stoppingCondition.maxWaitTimeInSeconds",
        f"{MAX_WAIT}. It is only supported when EnableManagedSpotTraining is set to true",
    ),
    _job(
        "spot-without-max-wait",
        {"EnableManagedSpotTraining": True},
        "stoppingCondition.maxWaitTimeInSeconds",
        f"{MAX_WAIT}. It must be present and be greater than or equal to MaxRuntimeInSeconds",
    ),
    _job(
        "spot-max-wait-below-max-runtime",
        {"EnableManagedSpotTraining": True, "StoppingCondition.MaxWaitTimeInSeconds": 3600},
        "stoppingCondition.maxWaitTimeInSeconds",
        f"{MAX_WAIT}. It must be present and be greater than or equal to MaxRuntimeInSeconds",
    ),
    # Environment: 100 entries, keys and values up to 512 characters.
    _job(
        "training-environment-bad-key",
        {"Environment": {"BAD-KEY": "x"}},
        "environment",
        PATTERN,
    ),
    _job(
        "training-environment-value-too-long",
        {"Environment": {"LONG": "x" * 513}},
        "environment",
        _at_most(512),
    ),
    _job(
        "training-environment-too-many",
        {"Environment": {f"VAR_{index}": "x" for index in range(101)}},
        "environment",
        _at_most(100),
    ),
    # The rest of the request.
    _job(
        "training-tags-too-many",
        {"Tags": [{"Key": f"key-{index}", "Value": "v"} for index in range(51)]},
        "tags",
        _at_most(50),
    ),
    _job(
        "vpc-subnets-missing",
        {"VpcConfig": {"SecurityGroupIds": ["sg-1"]}},
        "vpcConfig.subnets",
        NULL,
    ),
    _job(
        "checkpoint-s3-uri-missing",
        {"CheckpointConfig": {"LocalPath": "/opt/ml/checkpoints"}},
        "checkpointConfig.s3Uri",
        NULL,
    ),
    _job(
        "retry-attempts-over-30",
        {"RetryStrategy": {"MaximumRetryAttempts": 31}},
        "retryStrategy.maximumRetryAttempts",
        "Member must have value less than or equal to 30",
    ),
    _job("training-unknown-field", {"HyperParameter": {"k": "v"}}, "hyperParameter", UNKNOWN),
]
