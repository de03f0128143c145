"""The CreateModel request (and the ModelName-only inputs): SageMaker's names and rules.

Limits and patterns follow SageMaker's API reference (botocore's service model). Two
deliberate differences, both because batchform runs models without AWS:
- ModelDataUrl is not held to SageMaker's `(https|s3)://` pattern: local paths, `file://`
  and any fsspec URL are model data too.
- A container needs neither Image nor ModelPackageName here: a handler tarball in
  ModelDataUrl alone is runnable. Whether batchform can run a model is checked by the
  service, which knows the runtimes; this module only checks the request's shape.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from batchform.spec.common import EnvironmentKey, Request, ResourceName, Tag

Problem = tuple[str, str, object]

# SageMaker limits a model's Environment values to 1024 characters, where a transform
# job's allow 10240, so the shared `Environment` of spec.common is too lenient here.
ModelEnvironmentValue = Annotated[str, StringConstraints(max_length=1024)]
ModelEnvironment = Annotated[dict[EnvironmentKey, ModelEnvironmentValue], Field(max_length=100)]

ContainerImage = Annotated[str, StringConstraints(max_length=255, pattern=r"^[\S]+$")]
# SageMaker's Url pattern is not enforced (see the module docstring); the length is.
ModelDataUrl = Annotated[str, StringConstraints(max_length=1024)]
ContainerHostname = Annotated[
    str, StringConstraints(max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
]
InferenceSpecificationName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"),
]
RoleArn = Annotated[
    str,
    StringConstraints(
        min_length=20,
        max_length=2048,
        pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$",
    ),
]
VpcResourceId = Annotated[str, StringConstraints(max_length=32, pattern=r"^[-0-9a-zA-Z]+$")]


def sagemaker_pattern(pattern: str) -> AfterValidator:
    """Check `pattern` with Python's `re`, for SageMaker patterns that use look-behind.

    pydantic's default (Rust) regex engine rejects look-around when the model is built;
    raising pydantic's own pattern error keeps the message SageMaker's.
    """
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise PydanticCustomError(
                "string_pattern_mismatch",
                "String should match pattern '{pattern}'",
                {"pattern": f"^{pattern}$"},
            )
        return value

    return AfterValidator(check)


ModelPackageName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=176),
    sagemaker_pattern(
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?"
        r"([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)(\/[0-9]{1,9})?"
    ),
]


class ContainerMode(str, Enum):
    SINGLE_MODEL = "SingleModel"
    MULTI_MODEL = "MultiModel"


class RepositoryAccessMode(str, Enum):
    PLATFORM = "Platform"
    VPC = "Vpc"


class ModelCacheSetting(str, Enum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class InferenceExecutionMode(str, Enum):
    SERIAL = "Serial"
    DIRECT = "Direct"


class RepositoryAuthConfig(Request):
    repository_credentials_provider_arn: Annotated[
        str, StringConstraints(min_length=1, max_length=2048)
    ]


class ImageConfig(Request):
    repository_access_mode: RepositoryAccessMode
    repository_auth_config: RepositoryAuthConfig | None = None


class MultiModelConfig(Request):
    model_cache_setting: ModelCacheSetting | None = None


class ContainerDefinition(Request):
    """One container of a model; batchform runs `Image` with `ModelDataUrl` (DESIGN 3.3)."""

    container_hostname: ContainerHostname | None = None
    image: ContainerImage | None = None
    image_config: ImageConfig | None = None
    mode: ContainerMode | None = None
    model_data_url: ModelDataUrl | None = None
    # Accepted so SDK requests that carry them pass; batchform does not act on them.
    model_data_source: dict[str, Any] | None = None
    additional_model_data_sources: Annotated[list[dict[str, Any]], Field(max_length=5)] | None = (
        None
    )
    environment: ModelEnvironment | None = None
    model_package_name: ModelPackageName | None = None
    inference_specification_name: InferenceSpecificationName | None = None
    multi_model_config: MultiModelConfig | None = None
    container_metrics_config: dict[str, Any] | None = None


class InferenceExecutionConfig(Request):
    mode: InferenceExecutionMode


class VpcConfig(Request):
    security_group_ids: Annotated[list[VpcResourceId], Field(min_length=1, max_length=5)]
    subnets: Annotated[list[VpcResourceId], Field(min_length=1, max_length=16)]


class CreateModelRequest(Request):
    """A CreateModel request body: exactly one of PrimaryContainer and Containers."""

    model_name: ResourceName
    primary_container: ContainerDefinition | None = None
    containers: Annotated[list[ContainerDefinition], Field(max_length=15)] | None = None
    inference_execution_config: InferenceExecutionConfig | None = None
    # Optional in batchform (nothing assumes a role locally); checked like SageMaker when given.
    execution_role_arn: RoleArn | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    vpc_config: VpcConfig | None = None
    # DescribeModel always reports it, so it is kept even when the request leaves it out.
    enable_network_isolation: bool = False

    def cross_field_problems(self) -> list[Problem]:
        return container_problems(self.primary_container, self.containers)

    @property
    def container_list(self) -> list[ContainerDefinition]:
        """The model's containers, whichever of the two fields named them."""
        if self.primary_container is not None:
            return [self.primary_container]
        return list(self.containers or [])


def container_problems(
    primary: ContainerDefinition | None, containers: list[ContainerDefinition] | None
) -> list[Problem]:
    """SageMaker needs the containers named once: by PrimaryContainer or by Containers."""
    if primary is not None and containers:
        rule = "Member must not be given together with PrimaryContainer; use one of them"
        return [("containers", rule, f"[{len(containers)} container definition(s)]")]
    if primary is None and not containers:
        rule = "Member must not be null when Containers is not given"
        return [("primaryContainer", rule, None)]
    return []


class ModelNameRequest(Request):
    """The input of DescribeModel and DeleteModel."""

    model_name: ResourceName


__all__ = [
    "ContainerDefinition",
    "ContainerMode",
    "CreateModelRequest",
    "ImageConfig",
    "InferenceExecutionConfig",
    "ModelNameRequest",
    "MultiModelConfig",
    "VpcConfig",
]
