"""The CreateTrainingJob request: SageMaker's field names, defaults and rules.

Limits and patterns follow botocore's service model for CreateTrainingJob; class names are
SageMaker's shape names. Deliberate differences, because batchform trains without AWS:
- S3Uri, S3OutputPath and CheckpointConfig.S3Uri take any storage URL (local paths,
  `file://`, any fsspec URL), as a transform job's do, not only `(https|s3)://`.
- RoleArn is optional (nothing assumes a role locally); it is checked like SageMaker's
  when given, which the sagemaker SDK always does.
- InstanceType is checked by shape, not against SageMaker's list of instance names, and
  also takes SageMaker local mode's `local` and `local_gpu`.
- AlgorithmSpecification and ResourceConfig are required: SageMaker's model leaves them
  optional only for serverless jobs, which batchform does not run.
The rarely used configurations (debugger, profiler, experiments, ...) are accepted as
plain objects so requests that carry them pass; batchform does not act on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from batchform.spec.common import Request, ResourceName, Tag
from batchform.spec.enums import (
    CompressionType,
    OutputCompressionType,
    RecordWrapper,
    S3DataDistribution,
    S3DataType,
    TrainingInputMode,
)
from batchform.spec.model import RepositoryAccessMode, RoleArn, VpcConfig, sagemaker_pattern
from batchform.spec.transform import KmsKeyId, MediaType, Uri

Problem = tuple[str, str, object]

#: SageMaker's MaxRuntimeInSeconds when a request gives none (1 day), and its ceiling.
DEFAULT_MAX_RUNTIME_IN_SECONDS = 24 * 60 * 60
MAX_RUNTIME_IN_SECONDS = 28 * 24 * 60 * 60

TrainingInstanceType = Annotated[
    str, StringConstraints(pattern=r"^(ml\.[a-z0-9-]+\.[a-z0-9]+|local|local_gpu)$")
]
AlgorithmImage = Annotated[str, StringConstraints(max_length=255)]
AlgorithmName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=170),
    sagemaker_pattern(
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?"
        r"([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)"
    ),
]
ChannelName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\.\-_]+$")
]
HyperParameterKey = Annotated[str, StringConstraints(max_length=256)]
HyperParameterValue = Annotated[str, StringConstraints(max_length=2500)]
HyperParameters = Annotated[dict[HyperParameterKey, HyperParameterValue], Field(max_length=100)]
# A training job's Environment: keys and values of at most 512 characters, 100 entries
# (a transform job's values may be 10240 characters, but only 16 entries).
TrainingEnvironmentKey = Annotated[
    str, StringConstraints(max_length=512, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
]
TrainingEnvironmentValue = Annotated[str, StringConstraints(max_length=512)]
TrainingEnvironment = Annotated[
    dict[TrainingEnvironmentKey, TrainingEnvironmentValue], Field(max_length=100)
]
ContainerCommand = Annotated[
    list[Annotated[str, StringConstraints(max_length=256)]], Field(min_length=1, max_length=100)
]
DirectoryPath = Annotated[str, StringConstraints(max_length=4096)]
InstanceGroupName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LambdaArn = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=2048,
        pattern=r"^arn:[a-zA-Z0-9\-]+:lambda:[a-zA-Z0-9\-]+:[0-9]{12}:function:.*$",
    ),
]
TrainingPlanArn = Annotated[
    str,
    StringConstraints(
        min_length=50,
        max_length=2048,
        pattern=r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:training-plan/.*$",
    ),
]
RuleConfigurations = Annotated[list[dict[str, Any]], Field(max_length=20)]


class MetricDefinition(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    regex: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class TrainingRepositoryAuthConfig(Request):
    training_repository_credentials_provider_arn: LambdaArn


class TrainingImageConfig(Request):
    training_repository_access_mode: RepositoryAccessMode
    training_repository_auth_config: TrainingRepositoryAuthConfig | None = None


class AlgorithmSpecification(Request):
    """What to run: an image (TrainingImage) or a subscribed algorithm (AlgorithmName)."""

    training_image: AlgorithmImage | None = None
    algorithm_name: AlgorithmName | None = None
    training_input_mode: TrainingInputMode
    metric_definitions: Annotated[list[MetricDefinition], Field(max_length=40)] | None = None
    enable_sagemaker_metrics_time_series: bool | None = Field(
        default=None, alias="EnableSageMakerMetricsTimeSeries"
    )
    container_entrypoint: ContainerCommand | None = None
    container_arguments: ContainerCommand | None = None
    training_image_config: TrainingImageConfig | None = None


class S3DataSource(Request):
    s3_data_type: S3DataType = S3DataType.S3_PREFIX
    s3_uri: Uri
    s3_data_distribution_type: S3DataDistribution = S3DataDistribution.FULLY_REPLICATED
    attribute_names: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=256)]],
            Field(max_length=16),
        ]
        | None
    ) = None
    instance_group_names: Annotated[list[InstanceGroupName], Field(max_length=5)] | None = None
    model_access_config: dict[str, Any] | None = None
    hub_access_config: dict[str, Any] | None = None


class DataSource(Request):
    """Where a channel's data is: exactly one of the sources (see `channel_problems`)."""

    s3_data_source: S3DataSource | None = None
    file_system_data_source: dict[str, Any] | None = None
    dataset_source: dict[str, Any] | None = None


class ShuffleConfig(Request):
    seed: int


class Channel(Request):
    """One named input of a training job: `<base>/input/data/<channel_name>/` (DESIGN 3.5)."""

    channel_name: ChannelName
    data_source: DataSource
    content_type: MediaType | None = None
    compression_type: CompressionType = CompressionType.NONE
    record_wrapper_type: RecordWrapper = RecordWrapper.NONE
    # None: the job's AlgorithmSpecification.TrainingInputMode (see `effective_input_mode`).
    input_mode: TrainingInputMode | None = None
    shuffle_config: ShuffleConfig | None = None


class OutputDataConfig(Request):
    kms_key_id: KmsKeyId | None = None
    s3_output_path: Uri
    compression_type: OutputCompressionType = OutputCompressionType.GZIP


class InstanceGroup(Request):
    instance_type: TrainingInstanceType
    instance_count: Annotated[int, Field(ge=0)]
    instance_group_name: InstanceGroupName


class ResourceConfig(Request):
    """The instances: InstanceType and InstanceCount, or InstanceGroups (heterogeneous)."""

    instance_type: TrainingInstanceType | None = None
    instance_count: Annotated[int, Field(ge=1)] | None = None
    volume_size_in_gb: Annotated[int | None, Field(ge=0, alias="VolumeSizeInGB")] = None
    volume_kms_key_id: KmsKeyId | None = None
    keep_alive_period_in_seconds: Annotated[int, Field(ge=0, le=21600)] | None = None
    instance_groups: Annotated[list[InstanceGroup], Field(max_length=5)] | None = None
    training_plan_arn: TrainingPlanArn | None = None
    instance_placement_config: dict[str, Any] | None = None
    instance_preferences: (
        Annotated[list[dict[str, Any]], Field(min_length=1, max_length=5)] | None
    ) = None
    selected_instance_type: TrainingInstanceType | None = None
    selected_instance_count: Annotated[int, Field(ge=0)] | None = None


class StoppingCondition(Request):
    max_runtime_in_seconds: Annotated[int, Field(ge=1, le=MAX_RUNTIME_IN_SECONDS)] = (
        DEFAULT_MAX_RUNTIME_IN_SECONDS
    )
    # Managed spot training only, and never below MaxRuntimeInSeconds (`stopping_problems`).
    max_wait_time_in_seconds: Annotated[int, Field(ge=1)] | None = None
    max_pending_time_in_seconds: (
        Annotated[int, Field(ge=1800, le=MAX_RUNTIME_IN_SECONDS)] | None
    ) = None


class CheckpointConfig(Request):
    s3_uri: Uri
    local_path: DirectoryPath | None = None


class RetryStrategy(Request):
    maximum_retry_attempts: Annotated[int, Field(ge=1, le=30)]


class CreateTrainingJobRequest(Request):
    """A CreateTrainingJob request body."""

    training_job_name: ResourceName
    hyper_parameters: HyperParameters = {}
    algorithm_specification: AlgorithmSpecification
    role_arn: RoleArn | None = None
    input_data_config: Annotated[list[Channel], Field(min_length=1, max_length=20)] | None = None
    output_data_config: OutputDataConfig
    resource_config: ResourceConfig
    vpc_config: VpcConfig | None = None
    stopping_condition: StoppingCondition = StoppingCondition()
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    # DescribeTrainingJob always reports these three, so they default to SageMaker's False.
    enable_network_isolation: bool = False
    enable_inter_container_traffic_encryption: bool = False
    enable_managed_spot_training: bool = False
    checkpoint_config: CheckpointConfig | None = None
    debug_hook_config: dict[str, Any] | None = None
    debug_rule_configurations: RuleConfigurations | None = None
    tensor_board_output_config: dict[str, Any] | None = None
    experiment_config: dict[str, Any] | None = None
    profiler_config: dict[str, Any] | None = None
    profiler_rule_configurations: RuleConfigurations | None = None
    environment: TrainingEnvironment = {}
    retry_strategy: RetryStrategy | None = None
    remote_debug_config: dict[str, Any] | None = None
    infra_check_config: dict[str, Any] | None = None
    session_chaining_config: dict[str, Any] | None = None
    serverless_job_config: dict[str, Any] | None = None
    mlflow_config: dict[str, Any] | None = None
    model_package_config: dict[str, Any] | None = None

    def cross_field_problems(self) -> list[Problem]:
        return (
            algorithm_problems(self.algorithm_specification)
            + resource_problems(self.resource_config)
            + channel_problems(self)
            + stopping_problems(self)
        )

    @property
    def channels(self) -> list[Channel]:
        """The input channels; a job may have none (an algorithm that fetches its own data)."""
        return list(self.input_data_config or [])


def effective_input_mode(request: CreateTrainingJobRequest, channel: Channel) -> str:
    """The channel's InputMode, or the job's TrainingInputMode when the channel sets none."""
    mode = channel.input_mode or request.algorithm_specification.training_input_mode
    return mode.value


def exactly_one(path: str, members: Mapping[str, object]) -> list[Problem]:
    """SageMaker wants exactly one of `members` (PascalCase names) under `path`."""
    given = [name for name, value in members.items() if value is not None]
    if not given:
        first, *others = members
        rule = f"Member must not be null unless {' or '.join(others)} is given"
        return [(f"{path}.{_camel(first)}", rule, None)]
    if len(given) > 1:
        rule = f"Member must not be given together with {given[0]}; use one of them"
        return [(f"{path}.{_camel(given[1])}", rule, members[given[1]])]
    return []


def algorithm_problems(spec: AlgorithmSpecification) -> list[Problem]:
    members = {"TrainingImage": spec.training_image, "AlgorithmName": spec.algorithm_name}
    return exactly_one("algorithmSpecification", members)


def resource_problems(resources: ResourceConfig) -> list[Problem]:
    """InstanceType and InstanceCount, or else InstanceGroups: never both, never neither."""
    members = {"InstanceType": resources.instance_type, "InstanceCount": resources.instance_count}
    if resources.instance_groups:
        rule = "Member must not be given together with InstanceGroups; use one of them"
        given = [(name, value) for name, value in members.items() if value is not None]
        return [(f"resourceConfig.{_camel(name)}", rule, value) for name, value in given]
    rule = "Member must not be null unless InstanceGroups is given"
    missing = [name for name, value in members.items() if value is None]
    return [(f"resourceConfig.{_camel(name)}", rule, None) for name in missing]


def channel_problems(request: CreateTrainingJobRequest) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, channel in enumerate(request.channels):
        path = f"inputDataConfig.{index}"
        if channel.channel_name in seen:
            rule = "Member must be unique: another channel of InputDataConfig has this name"
            problems.append((f"{path}.channelName", rule, channel.channel_name))
        seen.add(channel.channel_name)
        problems += _data_source_problems(path, channel.data_source)
        problems += _file_mode_problems(path, channel, effective_input_mode(request, channel))
    return problems


def _data_source_problems(path: str, source: DataSource) -> list[Problem]:
    members = {
        "S3DataSource": source.s3_data_source,
        "FileSystemDataSource": source.file_system_data_source,
        "DatasetSource": source.dataset_source,
    }
    return exactly_one(f"{path}.dataSource", members)


def _file_mode_problems(path: str, channel: Channel, mode: str) -> list[Problem]:
    """File mode copies objects as they are: a RecordIO wrapper belongs to Pipe mode.

    SageMaker also refuses Gzip in File mode; batchform decompresses while copying
    instead, so a gzipped dataset trains in either mode.
    """
    if mode != TrainingInputMode.FILE.value or channel.record_wrapper_type is RecordWrapper.NONE:
        return []
    rule = (
        f"Invalid record wrapper type for channel {channel.channel_name}: File mode only "
        f"supports None, got {channel.record_wrapper_type.value} instead"
    )
    return [(f"{path}.recordWrapperType", rule, channel.record_wrapper_type.value)]


def stopping_problems(request: CreateTrainingJobRequest) -> list[Problem]:
    """MaxWaitTimeInSeconds belongs to managed spot training, which requires it (SageMaker's
    wording); it covers waiting for capacity plus running, so it is at least the runtime."""
    stopping = request.stopping_condition
    wait = stopping.max_wait_time_in_seconds
    field = "stoppingCondition.maxWaitTimeInSeconds"
    if not request.enable_managed_spot_training:
        if wait is None:
            return []
        rule = (
            "Invalid MaxWaitTimeInSeconds. "
            "It is only supported when EnableManagedSpotTraining is set to true"
        )
        return [(field, rule, wait)]
    if wait is None or wait < stopping.max_runtime_in_seconds:
        rule = (
            "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal "
            f"to MaxRuntimeInSeconds ({stopping.max_runtime_in_seconds})"
        )
        return [(field, rule, wait)]
    return []


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


__all__ = [
    "AlgorithmSpecification",
    "Channel",
    "CheckpointConfig",
    "CreateTrainingJobRequest",
    "DataSource",
    "InstanceGroup",
    "MetricDefinition",
    "OutputDataConfig",
    "ResourceConfig",
    "RetryStrategy",
    "S3DataSource",
    "ShuffleConfig",
    "StoppingCondition",
    "TrainingImageConfig",
    "effective_input_mode",
]
