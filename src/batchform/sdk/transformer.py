"""`Transformer`: batch transform jobs, as the sagemaker SDK's Transformer starts them.

Beyond SageMaker (DESIGN 3.6), three keyword-only options ride on the job's Environment:
`on_error="isolate"` with `max_errors` (a count or "1%") keeps good records when some
fail, and `split_objects_over_mb` cuts big line files across instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchform.sdk import buckets
from batchform.sdk.jobs import TransformJob
from batchform.sdk.naming import base_name_from_image, name_from_base
from batchform.sdk.requests import Tags, format_tags, without_none
from batchform.sdk.session import Session, default_session

JOB_CLASS_NAME = "transform-job"
ON_ERROR = "BATCHFORM_ON_ERROR"
MAX_ERRORS = "BATCHFORM_MAX_ERRORS"
SPLIT_OVER_MB = "BATCHFORM_SPLIT_OBJECTS_OVER_MB"


class Transformer:
    def __init__(
        self,
        model_name: str,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Tags = None,
        env: Mapping[str, str] | None = None,
        base_transform_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        volume_kms_key: str | None = None,
        *,
        on_error: str | None = None,
        max_errors: int | str | None = None,
        split_objects_over_mb: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = format_tags(tags)
        self.env = _with_extensions(env, on_error, max_errors, split_objects_over_mb)
        self.base_transform_job_name = base_transform_job_name
        self.sagemaker_session = sagemaker_session or default_session()
        self.volume_kms_key = volume_kms_key
        self.latest_transform_job: TransformJob | None = None
        self._current_job_name: str | None = None
        self._reset_output_path = False

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: dict[str, str] | None = None,
        model_client_config: dict[str, Any] | None = None,
        batch_data_capture_config: Any = None,
        wait: bool = True,
        logs: bool = True,
    ) -> None:
        """Start a transform job of `data` (a URL prefix, or a manifest with
        data_type="ManifestFile"); with `wait`, until it ends (printing its log with
        `logs`), raising UnexpectedStatusException unless it completed."""
        self._current_job_name = job_name or name_from_base(self._base_name())
        if self.output_path is None or self._reset_output_path:
            session_bucket = self.sagemaker_session.default_bucket_url()
            self.output_path = buckets.join_url(session_bucket, self._current_job_name)
            self._reset_output_path = True
        transform_input = without_none(
            DataSource={"S3DataSource": {"S3DataType": data_type, "S3Uri": data}},
            ContentType=content_type,
            CompressionType=compression_type,
            SplitType=split_type,
        )
        data_processing = without_none(
            InputFilter=input_filter, OutputFilter=output_filter, JoinSource=join_source
        )
        body = self._request(transform_input, data_processing or None, model_client_config)
        body.update(
            without_none(
                ExperimentConfig=experiment_config,
                BatchDataCaptureConfig=_request_dict(batch_data_capture_config),
            )
        )
        self.sagemaker_session.call("CreateTransformJob", body)
        self.latest_transform_job = TransformJob(self.sagemaker_session, self._current_job_name)
        if wait:
            self.latest_transform_job.wait(logs=logs)

    def _request(
        self,
        transform_input: dict[str, Any],
        data_processing: dict[str, Any] | None,
        model_client_config: dict[str, Any] | None,
    ) -> dict[str, Any]:
        output = without_none(
            S3OutputPath=self.output_path,
            KmsKeyId=self.output_kms_key,
            AssembleWith=self.assemble_with,
            Accept=self.accept,
        )
        resources = without_none(
            InstanceCount=self.instance_count,
            InstanceType=self.instance_type,
            VolumeKmsKeyId=self.volume_kms_key,
        )
        return without_none(
            TransformJobName=self._current_job_name,
            ModelName=self.model_name,
            TransformInput=transform_input,
            TransformOutput=output,
            TransformResources=resources,
            BatchStrategy=self.strategy,
            MaxConcurrentTransforms=self.max_concurrent_transforms,
            MaxPayloadInMB=self.max_payload,
            Environment=self.env or None,
            Tags=self.tags or None,
            DataProcessing=data_processing,
            ModelClientConfig=model_client_config,
        )

    def _base_name(self) -> str:
        """The given base, else the model's image's (as `pca`), else the model's name."""
        if self.base_transform_job_name:
            return self.base_transform_job_name
        model = self.sagemaker_session.describe_model(self.model_name)
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        image = container.get("Image")
        return base_name_from_image(image, JOB_CLASS_NAME) if image else self.model_name

    def wait(self, logs: bool = True) -> None:
        self._latest().wait(logs=logs)

    def stop_transform_job(self, wait: bool = True) -> None:
        """Stop the latest job; with `wait`, until it has stopped."""
        job = self._latest()
        job.stop()
        if wait:
            job.wait(logs=False)

    def delete_model(self) -> None:
        self.sagemaker_session.delete_model(self.model_name)

    def _latest(self) -> TransformJob:
        if self.latest_transform_job is None:
            raise ValueError("No transform job available")
        return self.latest_transform_job

    @classmethod
    def attach(
        cls, transform_job_name: str, sagemaker_session: Session | None = None
    ) -> Transformer:
        """A Transformer for an existing transform job (its latest_transform_job)."""
        session = sagemaker_session or default_session()
        job = session.describe_transform_job(transform_job_name)
        output = job["TransformOutput"]
        resources = job["TransformResources"]
        transformer = cls(
            job["ModelName"],
            resources["InstanceCount"],
            resources["InstanceType"],
            strategy=job.get("BatchStrategy"),
            assemble_with=output.get("AssembleWith"),
            output_path=output["S3OutputPath"],
            output_kms_key=output.get("KmsKeyId"),
            accept=output.get("Accept"),
            max_concurrent_transforms=job.get("MaxConcurrentTransforms"),
            max_payload=job.get("MaxPayloadInMB"),
            env=job.get("Environment"),
            base_transform_job_name=transform_job_name,
            sagemaker_session=session,
            volume_kms_key=resources.get("VolumeKmsKeyId"),
        )
        transformer.latest_transform_job = TransformJob(session, transform_job_name)
        return transformer


def _with_extensions(
    env: Mapping[str, str] | None,
    on_error: str | None,
    max_errors: int | str | None,
    split_objects_over_mb: int | None,
) -> dict[str, str] | None:
    options = without_none(
        **{
            ON_ERROR: on_error,
            MAX_ERRORS: None if max_errors is None else str(max_errors),
            SPLIT_OVER_MB: None if split_objects_over_mb is None else str(split_objects_over_mb),
        }
    )
    if env is None and not options:
        return None
    return {**(env or {}), **options}


def _request_dict(config: Any) -> dict[str, Any] | None:
    """A sagemaker-SDK config object (with `_to_request_dict`) or a plain dict."""
    if config is None or isinstance(config, dict):
        return config
    to_dict = getattr(config, "_to_request_dict", None)
    if to_dict is None:
        raise TypeError(f"expected a dict, got {type(config).__name__}")
    result: dict[str, Any] = to_dict()
    return result
