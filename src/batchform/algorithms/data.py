"""Training channels as a stream of float64 mini-batches, in bounded memory.

A channel is what SageMaker mounts under `<base>/input/data/<name>/`: in File mode every
file below it, recursively, in sorted order; in Pipe mode one FIFO per epoch,
`<name>_<epoch>`. Files are read in blocks of about CHUNK_BYTES whatever their size, and
rows are regrouped into batches of exactly `batch_rows` (the last may be shorter), so an
algorithm's memory depends on its mini-batch size and never on the data set's.

Content types, as the built-in algorithms take them: `text/csv` with an optional
`label_size=N` parameter (the first N columns are labels and are dropped; unsupervised
algorithms use 0, the default), and `application/x-recordio-protobuf` (SageMaker's
default for built-in algorithms when a channel names no ContentType).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from batchform.algorithms.csvblock import Array, parse_csv
from batchform.errors import ConfigurationError, InputFormatError

CSV = "text/csv"
PROTOBUF = "application/x-recordio-protobuf"
TRAINING_CONTENT_TYPES = (CSV, PROTOBUF)
CHUNK_BYTES = 4 << 20
"""Bytes read at a time: big enough for vector parsing to pay, small enough to ignore."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    """One input channel of a training job, as inputdataconfig.json describes it."""

    name: str
    directory: Path  # <base>/input/data
    content_type: str = PROTOBUF  # the media type, parameters removed
    label_size: int = 0
    input_mode: str = "File"

    def sources(self, epoch: int = 0) -> list[Path]:
        """The files to read for one pass: the epoch's FIFO in Pipe mode, else all files."""
        if self.input_mode == "Pipe":
            return [self.directory / f"{self.name}_{epoch}"]
        root = self.directory / self.name
        if not root.is_dir():
            return []
        return sorted(path for path in root.rglob("*") if _is_data_file(path, root))

    def display_name(self, path: Path) -> str:
        """A file as errors name it: relative to the data folder, like S3 keys."""
        try:
            return str(path.relative_to(self.directory))
        except ValueError:
            return str(path)


def _is_data_file(path: Path, root: Path) -> bool:
    # Hidden files (.DS_Store, editor swap files) are never training data.
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    return path.is_file() and not hidden


def parse_content_type(channel: str, content_type: str | None) -> tuple[str, int]:
    """'text/csv;label_size=0' → ('text/csv', 0); refuses types the algorithms cannot read."""
    if not content_type:
        return PROTOBUF, 0
    media, *params = (part.strip() for part in content_type.split(";"))
    media = media.lower()
    if media not in TRAINING_CONTENT_TYPES:
        raise ConfigurationError(
            f"channel {channel!r}: ContentType {content_type!r} is not supported "
            f"(supported: {', '.join(TRAINING_CONTENT_TYPES)})"
        )
    return media, _label_size(channel, content_type, params)


def _label_size(channel: str, content_type: str, params: list[str]) -> int:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "label_size":
            continue
        if not value.strip().isdigit():
            raise ConfigurationError(
                f"channel {channel!r}: ContentType {content_type!r}: label_size must be a "
                "non-negative integer"
            )
        return int(value)
    return 0


def channel_batches(
    channel: Channel, feature_dim: int, batch_rows: int, epoch: int = 0
) -> Iterator[Array]:
    """Every row of one pass over the channel, as (≤ batch_rows, feature_dim) float64."""
    read = _csv_rows if channel.content_type == CSV else _protobuf_rows
    blocks = (
        block
        for path in channel.sources(epoch)
        for block in read(path, channel, feature_dim, batch_rows)
    )
    return rebatch(_first_noted(blocks, channel.name, epoch), batch_rows)


def _first_noted(blocks: Iterator[Array], channel: str, epoch: int) -> Iterator[Array]:
    """The blocks, logging when the first one arrives: how soon data reached the algorithm
    (in Pipe mode, while the rest is still on its way)."""
    for count, block in enumerate(blocks):
        if count == 0:
            _log.info("channel %s, epoch %d: first %d rows read", channel, epoch, len(block))
        yield block


def rebatch(blocks: Iterable[Array], rows: int) -> Iterator[Array]:
    """Regroup row blocks of any sizes into batches of exactly `rows` (the last: fewer)."""
    pending: list[Array] = []
    count = 0
    for block in blocks:
        pending.append(block)
        count += len(block)
        if count < rows:
            continue
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        full = count - count % rows
        yield from (joined[start : start + rows] for start in range(0, full, rows))
        pending, count = [joined[full:]], count - full
    if count:
        yield np.concatenate(pending)


# --- CSV --------------------------------------------------------------------------------


def _csv_rows(path: Path, channel: Channel, feature_dim: int, _rows: int) -> Iterator[Array]:
    columns = feature_dim + channel.label_size
    meaning = _columns_meaning(feature_dim, channel.label_size)
    where = channel.display_name(path)
    with path.open("rb") as stream:
        for block, first_line in line_blocks(stream):
            values = parse_csv(block, columns, where=where, first_line=first_line, meaning=meaning)
            yield values[:, channel.label_size :]


def _columns_meaning(feature_dim: int, label_size: int) -> str:
    if label_size:
        return f" (label_size={label_size} + feature_dim={feature_dim})"
    return f" (feature_dim={feature_dim})"


def line_blocks(stream: BinaryIO, size: int | None = None) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of about `size` (default CHUNK_BYTES) bytes, each with its
    first line's number."""
    size = size or CHUNK_BYTES
    carry = b""
    line = 1
    while chunk := stream.read(size):
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a chunk: read on until it ends
            carry = data
            continue
        block, carry = data[:cut], data[cut:]
        yield block, line
        line += block.count(b"\n")
    if carry:
        yield carry, line


# --- RecordIO-protobuf ------------------------------------------------------------------


def _protobuf_rows(
    path: Path, channel: Channel, feature_dim: int, batch_rows: int
) -> Iterator[Array]:
    iter_records = protobuf_reader()
    where = channel.display_name(path)
    with path.open("rb") as stream:
        for decoded in iter_records(stream, batch_rows):
            yield _checked_features(decoded.features, feature_dim, where)


def _checked_features(features: object, feature_dim: int, where: str) -> Array:
    """Decoded protobuf features as float64 rows; an error when their width is wrong."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != feature_dim:
        width = array.shape[-1] if array.ndim else 0
        raise InputFormatError(
            f"{where}: records have {width} features, expected feature_dim={feature_dim}"
        )
    return array


def protobuf_reader() -> Callable[[BinaryIO, int], Iterator[Any]]:
    """`batchform.records.protobuf.iter_records`, imported when first needed."""
    try:
        module = importlib.import_module("batchform.records.protobuf")
    except ImportError as exc:
        raise ConfigurationError(
            "application/x-recordio-protobuf needs batchform.records.protobuf, which this "
            "installation lacks"
        ) from exc
    reader: Callable[[BinaryIO, int], Iterator[Any]] = module.iter_records
    return reader
