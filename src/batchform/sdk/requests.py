"""Pieces of SageMaker request bodies the SDK's classes share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Tags = Mapping[str, str] | list[dict[str, str]] | None


def format_tags(tags: Tags) -> list[dict[str, str]] | None:
    """SageMaker's Tags list from a dict or a list of {"Key", "Value"}."""
    if tags is None:
        return None
    if isinstance(tags, Mapping):
        return [{"Key": str(key), "Value": str(value)} for key, value in tags.items()]
    return [dict(tag) for tag in tags]


def without_none(**fields: Any) -> dict[str, Any]:
    """The fields that are set: a request leaves out what the caller did not give."""
    return {name: value for name, value in fields.items() if value is not None}


def container_def(
    image_uri: str,
    model_data: str | dict[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A model's container: its image, environment and model data (a URL, or a
    ModelDataSource for uncompressed model data)."""
    container: dict[str, Any] = {"Image": image_uri, "Environment": dict(env or {})}
    if isinstance(model_data, dict):
        container["ModelDataSource"] = model_data
    elif model_data:
        container["ModelDataUrl"] = model_data
    return container


def production_variant(
    model_name: str,
    instance_type: str,
    initial_instance_count: int = 1,
    variant_name: str = "AllTraffic",
    initial_weight: float = 1,
    volume_size: int | None = None,
    model_data_download_timeout: int | None = None,
    container_startup_health_check_timeout: int | None = None,
) -> dict[str, Any]:
    """One ProductionVariant of an endpoint config, as the sagemaker SDK builds it."""
    return without_none(
        ModelName=model_name,
        InstanceType=instance_type,
        InitialInstanceCount=initial_instance_count,
        VariantName=variant_name,
        InitialVariantWeight=initial_weight,
        VolumeSizeInGB=volume_size,
        ModelDataDownloadTimeoutInSeconds=model_data_download_timeout,
        ContainerStartupHealthCheckTimeoutInSeconds=container_startup_health_check_timeout,
    )


def refuse_unsupported(where: str, options: Mapping[str, object]) -> None:
    """ValueError naming the options given that batchform has no equivalent for."""
    given = sorted(name for name, value in options.items() if value not in (None, False, {}, []))
    if given:
        raise ValueError(f"{where}: batchform does not support {', '.join(given)}")
