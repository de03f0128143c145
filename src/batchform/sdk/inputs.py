"""Training inputs: `TrainingInput`, a channel of a training job, as in the sagemaker SDK.

`s3_data` takes any storage URL batchform reads: `s3://`, a local path or `file://`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FileSystemInput", "ShuffleConfig", "TrainingInput"]


@dataclass(frozen=True)
class ShuffleConfig:
    """Shuffles a Pipe-mode channel's objects with this seed each epoch."""

    seed: int


class TrainingInput:
    """One channel: where its data is and how it reaches the algorithm.

    `config` is the channel as CreateTrainingJob's InputDataConfig takes it (without
    ChannelName), as in the sagemaker SDK.
    """

    def __init__(
        self,
        s3_data: str,
        distribution: str | None = None,
        compression: str | None = None,
        content_type: str | None = None,
        record_wrapping: str | None = None,
        s3_data_type: str = "S3Prefix",
        instance_groups: list[str] | None = None,
        input_mode: str | None = None,
        attribute_names: list[str] | None = None,
        target_attribute_name: str | None = None,
        shuffle_config: ShuffleConfig | None = None,
    ) -> None:
        source: dict[str, Any] = {"S3DataType": s3_data_type, "S3Uri": s3_data}
        if distribution is None and target_attribute_name is None:
            distribution = "FullyReplicated"
        _put(source, "S3DataDistributionType", distribution)
        _put(source, "AttributeNames", attribute_names)
        _put(source, "InstanceGroupNames", instance_groups)
        self.config: dict[str, Any] = {"DataSource": {"S3DataSource": source}}
        _put(self.config, "CompressionType", compression)
        _put(self.config, "ContentType", content_type)
        _put(self.config, "RecordWrapperType", record_wrapping)
        _put(self.config, "InputMode", input_mode)
        _put(self.config, "TargetAttributeName", target_attribute_name)
        if shuffle_config is not None:
            self.config["ShuffleConfig"] = {"Seed": shuffle_config.seed}

    def __repr__(self) -> str:
        return f"TrainingInput({self.config!r})"


class FileSystemInput:
    """EFS and FSx for Lustre channels: batchform has no such file systems."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        raise ValueError(
            "FileSystemInput: batchform cannot mount EFS or FSx file systems; give the data "
            "as a TrainingInput with a local path, file:// or s3:// URL instead"
        )


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def channels(
    inputs: object, model_uri: str | None = None, model_channel_name: str = "model"
) -> list[dict[str, Any]]:
    """InputDataConfig for `fit`'s inputs: a URL (channel "training"), a TrainingInput,
    or a dict of channel name → URL or TrainingInput; plus the model channel when the
    estimator starts from a model."""
    if inputs is None:
        named: dict[str, object] = {}
    elif isinstance(inputs, str | TrainingInput):
        named = {"training": inputs}
    elif isinstance(inputs, dict):
        named = dict(inputs)
    else:
        raise TypeError(
            "inputs must be a URL, a TrainingInput, or a dict of channel names to URLs or "
            f"TrainingInputs; got {type(inputs).__name__}"
        )
    if model_uri is not None:
        named[model_channel_name] = TrainingInput(
            model_uri, content_type="application/x-sagemaker-model", input_mode="File"
        )
    return [_channel(name, value) for name, value in named.items()]


def _channel(name: str, value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = TrainingInput(value)
    if not isinstance(value, TrainingInput):
        raise TypeError(f"channel {name!r}: expected a URL or a TrainingInput, got {value!r}")
    return {"ChannelName": name, **value.config}
