"""CreateEndpointConfig and CreateEndpoint / UpdateEndpoint requests."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from batchform.spec.common import Request, ResourceName, Tag

VariantName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"),
]


class HostingRequest(Request):
    """Hosting options batchform has no use for (volume sizes, AMI versions, routing,
    data capture) are accepted and ignored, so SDK-built requests go through."""

    model_config = ConfigDict(**{**Request.model_config, "extra": "ignore"})


class ProductionVariant(HostingRequest):
    variant_name: VariantName
    model_name: ResourceName
    initial_instance_count: Annotated[int, Field(ge=1, le=100)] | None = None
    instance_type: str | None = None
    initial_variant_weight: Annotated[float, Field(ge=0)] = 1.0
    serverless_config: dict[str, Any] | None = None

    def problems(self, index: int) -> list[tuple[str, str, object]]:
        where = f"productionVariants.{index}"
        if self.serverless_config is not None:
            return [
                (
                    f"{where}.serverlessConfig",
                    "serverless endpoints are not supported; "
                    "give InitialInstanceCount and InstanceType",
                    "ServerlessConfig",
                )
            ]
        if self.initial_instance_count is None:
            return [(f"{where}.initialInstanceCount", "Member must not be null", None)]
        return []


class CreateEndpointConfigRequest(HostingRequest):
    endpoint_config_name: ResourceName
    production_variants: Annotated[list[ProductionVariant], Field(min_length=1, max_length=10)]
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
    async_inference_config: dict[str, Any] | None = None

    def cross_field_problems(self) -> list[tuple[str, str, object]]:
        problems = [
            problem
            for index, variant in enumerate(self.production_variants)
            for problem in variant.problems(index)
        ]
        names = [variant.variant_name for variant in self.production_variants]
        if len(set(names)) != len(names):
            problems.append(("productionVariants", "variant names must be unique", names))
        if self.async_inference_config is not None:
            problems.append(
                (
                    "asyncInferenceConfig",
                    "asynchronous endpoints are not supported",
                    "AsyncInferenceConfig",
                )
            )
        return problems


class CreateEndpointRequest(HostingRequest):
    endpoint_name: ResourceName
    endpoint_config_name: ResourceName
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
