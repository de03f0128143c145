"""A training job's input channels: what each one is, and copying it into the workspace.

File mode as SageMaker does it: every object of the channel lands under
`<base>/input/data/<channel>/`, named by its key relative to the channel's S3 prefix, before
the algorithm starts. Objects are streamed to disk in fixed-size chunks (Gzip ones
decompressed on the way), so memory stays flat whatever their size. Pipe-mode channels
are not copied but streamed while the algorithm runs (training/pipes.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from batchform.errors import ConfigurationError, StorageError
from batchform.spec.training import Channel, CreateTrainingJobRequest, effective_input_mode
from batchform.storage import InputObject, list_inputs, open_input
from batchform.storage.filesystems import translate_errors

_CHUNK_BYTES = 1 << 20
_SUPPORTED_MODES = ("File", "Pipe")


@dataclass(frozen=True)
class ChannelSpec:
    """One `InputDataConfig` channel with the job's defaults filled in."""

    name: str
    uri: str
    data_type: str = "S3Prefix"
    content_type: str | None = None
    compression: str = "None"
    input_mode: str = "File"
    record_wrapper: str = "None"
    distribution: str = "FullyReplicated"
    #: ShuffleConfig.Seed: Pipe mode streams the objects in a new order each epoch.
    shuffle_seed: int | None = None

    @property
    def piped(self) -> bool:
        return self.input_mode == "Pipe"


def channel_specs(request: CreateTrainingJobRequest) -> list[ChannelSpec]:
    return [_channel_spec(request, channel) for channel in request.channels]


def _channel_spec(request: CreateTrainingJobRequest, channel: Channel) -> ChannelSpec:
    source = channel.data_source.s3_data_source
    if source is None:
        raise ConfigurationError(
            f"channel {channel.channel_name!r}: only S3DataSource channels can be read "
            "(any storage URL); FileSystemDataSource and DatasetSource are not supported"
        )
    return ChannelSpec(
        name=channel.channel_name,
        uri=source.s3_uri,
        data_type=source.s3_data_type.value,
        content_type=channel.content_type or None,
        compression=channel.compression_type.value,
        input_mode=effective_input_mode(request, channel),
        record_wrapper=channel.record_wrapper_type.value,
        distribution=source.s3_data_distribution_type.value,
        shuffle_seed=channel.shuffle_config.seed if channel.shuffle_config else None,
    )


def check_input_modes(channels: list[ChannelSpec]) -> None:
    """FastFile mode is not implemented: say so before anything is copied."""
    for channel in channels:
        if channel.input_mode not in _SUPPORTED_MODES:
            raise ConfigurationError(
                f"channel {channel.name!r}: TrainingInputMode {channel.input_mode} is not "
                "supported yet; use File or Pipe"
            )


@dataclass(frozen=True)
class CopiedChannel:
    name: str
    objects: int
    bytes: int


def copy_channel(
    channel: ChannelSpec,
    target: Path,
    check: Callable[[], None] = lambda: None,
    shard: tuple[int, int] = (0, 1),
) -> CopiedChannel:
    """Copy every object of `channel` (this host's share of them) below `target`;
    `check` may raise to interrupt.

    `check` runs between chunks, so a stop or a runtime limit takes effect within one
    chunk even in the middle of a large object.
    """
    objects = host_share(channel, list_inputs(channel.uri, channel.data_type), shard)
    total = 0
    for obj in objects:
        check()
        destination = local_path(target, local_key(channel, obj.key))
        total += _copy_object(obj, channel.compression, destination, check)
    return CopiedChannel(channel.name, len(objects), total)


def host_share(
    channel: ChannelSpec, objects: list[InputObject], shard: tuple[int, int]
) -> list[InputObject]:
    """The objects host `index` of `count` gets: all of them (FullyReplicated), or with
    ShardedByS3Key every count-th in key order, as SageMaker deals them."""
    index, count = shard
    if channel.distribution != "ShardedByS3Key" or count < 2:
        return objects
    return objects[index::count]


def local_key(channel: ChannelSpec, key: str) -> str:
    """The object's path below the channel folder: its key relative to the S3 prefix.

    `list_inputs` names keys from the prefix's last '/', so `s3://b/data/train` lists
    `train/a.csv`; SageMaker puts that object at `<channel>/a.csv`, as scripts expect.
    """
    if channel.data_type != "S3Prefix":
        return key  # manifest keys are already relative to the manifest's prefix
    stem = _prefix_stem(channel.uri)
    if stem and key.startswith(stem + "/"):
        return key[len(stem) + 1 :]
    return key


def _prefix_stem(uri: str) -> str:
    """The partial name after the prefix's last '/' that listed keys still start with."""
    path = uri.removeprefix("file://")
    # list_inputs takes an existing local folder named without its '/' as the folder.
    if uri.endswith("/") or ("://" not in path and os.path.isdir(path)):
        return ""
    _, separator, rest = uri.rpartition("://")
    if separator and "/" not in rest:
        return ""  # a whole bucket
    return rest.rpartition("/")[2]


def local_path(target: Path, key: str) -> Path:
    """`target/key`, refusing keys that would land outside `target` (S3 keys may hold
    `..` segments or start with '/')."""
    parts = [part for part in PurePosixPath(key).parts if part not in ("/", ".")]
    if not parts or ".." in parts:
        raise StorageError(key, "this object key cannot be a file name below the channel folder")
    return target.joinpath(*parts)


def _copy_object(
    obj: InputObject, compression: str, destination: Path, check: Callable[[], None]
) -> int:
    written = 0
    with translate_errors(str(destination), "write"):
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open_input(obj, compression) as source, destination.open("wb") as sink:
            while chunk := source.read(_CHUNK_BYTES):
                sink.write(chunk)
                written += len(chunk)
                check()
    return written
