"""An Estimator's CreateTrainingJob request, and an Estimator's arguments back from a
training job's description (for `Estimator.attach`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from batchform.sdk.inputs import TrainingInput, channels
from batchform.sdk.naming import base_from_name
from batchform.sdk.requests import without_none

if TYPE_CHECKING:
    from batchform.sdk.estimator import Estimator

DEFAULT_MAX_RUN = 24 * 60 * 60

#: sagemaker SDK options about AWS services around a job (profiling, metrics, warm pools,
#: logging levels): without those services they change nothing, so they are accepted.
_IGNORED_OPTIONS = frozenset(
    {
        "code_location",
        "container_log_level",
        "disable_profiler",
        "enable_infra_check",
        "enable_remote_debug",
        "enable_sagemaker_metrics",
        "enable_session_tag_chaining",
        "keep_alive_period_in_seconds",
        "profiler_config",
        "training_repository_access_mode",
        "training_repository_credentials_provider_arn",
    }
)


def check_options(options: Mapping[str, Any]) -> None:
    """ValueError naming the options batchform cannot honour (script mode, debugger
    rules, instance groups, ...), so nothing is quietly dropped."""
    refused = sorted(name for name in options if name not in _IGNORED_OPTIONS)
    if refused:
        raise ValueError(
            f"Estimator: {', '.join(refused)}: not supported by batchform (training runs "
            "the image's own `train`; put code and dependencies in the image folder)"
        )


def training_request(
    estimator: Estimator,
    job_name: str,
    inputs: Any,
    experiment_config: dict[str, str] | None,
) -> dict[str, Any]:
    """The CreateTrainingJob body for one `fit`."""
    if not (estimator.instance_count and estimator.instance_type):
        raise ValueError("instance_count and instance_type must be set")
    input_data = channels(inputs, estimator.model_uri, estimator.model_channel_name)
    return without_none(
        TrainingJobName=job_name,
        AlgorithmSpecification=_algorithm(estimator, inputs),
        RoleArn=estimator.role,
        HyperParameters={str(k): str(v) for k, v in estimator.hyperparameters().items()},
        InputDataConfig=input_data or None,
        OutputDataConfig=without_none(
            S3OutputPath=estimator.output_path, KmsKeyId=estimator.output_kms_key
        ),
        ResourceConfig=without_none(
            InstanceCount=estimator.instance_count,
            InstanceType=estimator.instance_type,
            VolumeSizeInGB=estimator.volume_size,
            VolumeKmsKeyId=estimator.volume_kms_key,
        ),
        StoppingCondition=without_none(
            MaxRuntimeInSeconds=estimator.max_run, MaxWaitTimeInSeconds=estimator.max_wait
        ),
        Tags=estimator.tags or None,
        Environment=estimator.environment or None,
        VpcConfig=estimator.get_vpc_config(),
        EnableNetworkIsolation=estimator.enable_network_isolation(),
        EnableInterContainerTrafficEncryption=estimator.encrypt_inter_container_traffic,
        EnableManagedSpotTraining=estimator.use_spot_instances or None,
        CheckpointConfig=_checkpoint(estimator),
        RetryStrategy=_retry(estimator.max_retry_attempts),
        ExperimentConfig=experiment_config,
    )


def _algorithm(estimator: Estimator, inputs: Any) -> dict[str, Any]:
    mode = estimator.input_mode
    if isinstance(inputs, TrainingInput) and "InputMode" in inputs.config:
        mode = inputs.config["InputMode"]  # a single input's mode is the job's
    return without_none(
        TrainingImage=estimator.training_image_uri(),
        TrainingInputMode=mode,
        MetricDefinitions=estimator.metric_definitions,
        ContainerEntrypoint=estimator.container_entry_point,
        ContainerArguments=estimator.container_arguments,
    )


def _checkpoint(estimator: Estimator) -> dict[str, Any] | None:
    if estimator.checkpoint_s3_uri is None:
        return None
    return without_none(
        S3Uri=estimator.checkpoint_s3_uri, LocalPath=estimator.checkpoint_local_path
    )


def _retry(attempts: int | None) -> dict[str, Any] | None:
    return None if attempts is None else {"MaximumRetryAttempts": attempts}


def init_params_from_job(job: Mapping[str, Any], model_channel_name: str) -> dict[str, Any]:
    """Estimator arguments that would start a job like `job` (a DescribeTrainingJob answer)."""
    spec = job["AlgorithmSpecification"]
    if "TrainingImage" not in spec:
        raise ValueError("Estimator.attach: the job has no TrainingImage (an AlgorithmName job)")
    resources = job.get("ResourceConfig", {})
    output = job.get("OutputDataConfig", {})
    vpc = job.get("VpcConfig") or {}
    return without_none(
        image_uri=spec["TrainingImage"],
        role=job.get("RoleArn"),
        instance_count=resources.get("InstanceCount"),
        instance_type=resources.get("InstanceType"),
        volume_size=resources.get("VolumeSizeInGB"),
        max_run=job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"),
        input_mode=spec.get("TrainingInputMode"),
        base_job_name=base_from_name(job["TrainingJobName"]),
        output_path=output.get("S3OutputPath"),
        output_kms_key=output.get("KmsKeyId"),
        hyperparameters=job.get("HyperParameters") or {},
        metric_definitions=spec.get("MetricDefinitions"),
        environment=job.get("Environment"),
        enable_network_isolation=job.get("EnableNetworkIsolation"),
        subnets=vpc.get("Subnets"),
        security_group_ids=vpc.get("SecurityGroupIds"),
        model_uri=_model_channel_uri(job, model_channel_name),
        model_channel_name=model_channel_name,
        max_retry_attempts=(job.get("RetryStrategy") or {}).get("MaximumRetryAttempts"),
    )


def _model_channel_uri(job: Mapping[str, Any], name: str) -> str | None:
    for channel in job.get("InputDataConfig") or []:
        if channel.get("ChannelName") == name:
            uri: str | None = channel["DataSource"].get("S3DataSource", {}).get("S3Uri")
            return uri
    return None
