"""The CreateTransformJob request: SageMaker's field names, defaults and rules."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from batchform.spec.common import EnvironmentKey, EnvironmentValue, Request, ResourceName, Tag
from batchform.spec.dataprocessing import data_processing_problems
from batchform.spec.enums import (
    AssembleWith,
    BatchStrategy,
    CompressionType,
    JoinSource,
    S3DataType,
    SplitType,
)
from batchform.spec.extensions import extension_problems

#: One MB as SageMaker counts payloads.
MB = 1024 * 1024
#: Defaults when neither the request nor the model's /execution-parameters say.
DEFAULT_MAX_CONCURRENT_TRANSFORMS = 1
DEFAULT_MAX_PAYLOAD_IN_MB = 6


Uri = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
MediaType = Annotated[str, StringConstraints(max_length=256)]
JsonPath = Annotated[str, StringConstraints(max_length=63)]
InstanceType = Annotated[
    str, StringConstraints(pattern=r"^(ml\.[a-z0-9]+\.[a-z0-9]+|local|local_gpu)$")
]
KmsKeyId = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[a-zA-Z0-9:/_-]*$")]
TransformAmiVersion = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$")
]
# A transform job takes at most 16 Environment entries (a model takes 100); SageMaker's
# limit, and BATCHFORM_* options given as `batchform:` tags count towards it.
TransformEnvironment = Annotated[dict[EnvironmentKey, EnvironmentValue], Field(max_length=16)]


class S3DataSource(Request):
    s3_data_type: S3DataType = S3DataType.S3_PREFIX
    s3_uri: Uri


class TransformDataSource(Request):
    s3_data_source: S3DataSource


class TransformInput(Request):
    data_source: TransformDataSource
    content_type: MediaType | None = None
    compression_type: CompressionType = CompressionType.NONE
    split_type: SplitType = SplitType.NONE


class TransformOutput(Request):
    s3_output_path: Uri
    accept: MediaType | None = None
    assemble_with: AssembleWith = AssembleWith.NONE
    kms_key_id: KmsKeyId | None = None


class TransformResources(Request):
    instance_type: InstanceType = "ml.m5.large"
    instance_count: Annotated[int, Field(ge=1)] = 1
    volume_kms_key_id: KmsKeyId | None = None
    # Accepted because SageMaker accepts it; batchform runs no AMIs.
    transform_ami_version: TransformAmiVersion | None = None


class ModelClientConfig(Request):
    invocations_timeout_in_seconds: Annotated[int, Field(ge=1, le=3600)] = 600
    invocations_max_retries: Annotated[int, Field(ge=0, le=3)] = 3


class DataProcessing(Request):
    input_filter: JsonPath | None = None
    output_filter: JsonPath | None = None
    join_source: JoinSource = JoinSource.NONE


class CreateTransformJobRequest(Request):
    """A CreateTransformJob request body.

    MaxConcurrentTransforms, MaxPayloadInMB and BatchStrategy stay None when the request
    leaves them out: the model's /execution-parameters may then choose (see `engine.settings`).
    """

    transform_job_name: ResourceName
    model_name: ResourceName
    transform_input: TransformInput
    transform_output: TransformOutput
    transform_resources: TransformResources = TransformResources()
    max_concurrent_transforms: Annotated[int, Field(ge=0)] | None = None
    max_payload_in_mb: Annotated[int | None, Field(ge=0, le=100, alias="MaxPayloadInMB")] = None
    batch_strategy: BatchStrategy | None = None
    model_client_config: ModelClientConfig = ModelClientConfig()
    environment: TransformEnvironment = {}
    data_processing: DataProcessing | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    experiment_config: dict[str, Any] | None = None
    data_capture_config: dict[str, Any] | None = None
    batch_data_capture_config: dict[str, Any] | None = None

    def cross_field_problems(self) -> list[tuple[str, str, object]]:
        return (
            self._payload_problems()
            + data_processing_problems(self)
            + extension_problems(self.environment)
        )

    def _payload_problems(self) -> list[tuple[str, str, object]]:
        concurrency = self.max_concurrent_transforms or 0
        payload = self.max_payload_in_mb or 0
        if concurrency * payload <= 100:
            return []
        rule = (
            "MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 MB "
            f"(MaxConcurrentTransforms is {concurrency})"
        )
        return [("maxPayloadInMB", rule, payload)]


__all__ = [
    "AssembleWith",
    "BatchStrategy",
    "CompressionType",
    "CreateTransformJobRequest",
    "JoinSource",
    "S3DataType",
    "SplitType",
]
