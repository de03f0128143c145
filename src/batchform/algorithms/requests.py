"""Inference requests of the built-in algorithms, in SageMaker's common request formats.

- text/csv (any parameters, e.g. label_size=0): a record a line, features only.
- application/json: {"instances": [instance, ...]}, one bare instance, or a list of them.
- application/jsonlines: an instance a line.
- application/x-recordio-protobuf: RecordIO-framed `Record`s, features under "values".

An instance is a list of numbers, {"features": [...]}, or {"data": {"features":
{"values": [...]}}}; sparse features add "keys" (and "shape"), and are expanded to
dense rows of the model's feature_dim. The width is checked once the model is known
(`Instances.matrix`), so an error can name the feature_dim expected.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from batchform.algorithms.csvblock import Array, count_fields, parse_csv
from batchform.algorithms.data import protobuf_reader
from batchform.errors import InputFormatError, ModelError
from batchform.runtimes.codecs import media_type

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
PROTOBUF = "application/x-recordio-protobuf"
_PROTOBUF_BATCH = 1 << 16


@dataclass(frozen=True)
class SparseRow:
    keys: Array  # int64 feature indices
    values: Array
    width: int | None  # the instance's "shape", when given


@dataclass(frozen=True)
class Instances:
    """Decoded records: a dense (rows, width) array, or rows some of which are sparse."""

    dense: Array | None = None
    rows: tuple[Array | SparseRow, ...] = ()

    def matrix(self, feature_dim: int) -> Array:
        """The records as (rows, feature_dim) float64; an error if a width differs."""
        matrix = self.dense if self.dense is not None else _stack(self.rows, feature_dim)
        if len(matrix) == 0:
            return np.empty((0, feature_dim))
        if matrix.ndim != 2 or matrix.shape[1] != feature_dim:
            width = matrix.shape[-1] if matrix.ndim == 2 else "?"
            raise InputFormatError(
                f"records have {width} features; the model expects feature_dim={feature_dim}"
            )
        return matrix


def decode(body: bytes, content_type: str | None) -> Instances:
    media = media_type(content_type) or CSV
    decoder = _DECODERS.get(media)
    if decoder is None:
        raise ModelError(
            415,
            f"Content type {content_type!r} is not supported (supported: {', '.join(_DECODERS)})",
        )
    return decoder(body)


def from_csv(body: bytes) -> Instances:
    first = next((line for line in body.splitlines() if line.strip()), b"")
    if not first:
        return Instances(np.empty((0, 0)))
    return Instances(parse_csv(body, count_fields(first), where="text/csv payload"))


def from_json(body: bytes) -> Instances:
    document = _load(body)
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    if isinstance(document, dict) or _numbers(document):
        document = [document]
    if not isinstance(document, list):
        raise InputFormatError('application/json payload must hold "instances": [...]')
    return _instances(document)


def from_jsonlines(body: bytes) -> Instances:
    return _instances([_load(line) for line in body.splitlines() if line.strip()])


def from_protobuf(body: bytes) -> Instances:
    iter_records = protobuf_reader()
    blocks = [
        np.asarray(decoded.features, dtype=np.float64)
        for decoded in iter_records(io.BytesIO(body), _PROTOBUF_BATCH)
    ]
    return Instances(np.concatenate(blocks) if blocks else np.empty((0, 0)))


_DECODERS: dict[str, Callable[[bytes], Instances]] = {
    CSV: from_csv,
    JSON: from_json,
    JSONLINES: from_jsonlines,
    PROTOBUF: from_protobuf,
}


def _load(text: bytes) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputFormatError(f"payload is not valid JSON: {exc}") from exc


def _instances(items: list[object]) -> Instances:
    rows = tuple(_row(item, index) for index, item in enumerate(items))
    dense = [row for row in rows if isinstance(row, np.ndarray)]
    if len(dense) == len(rows) and len({len(row) for row in dense}) <= 1:
        return Instances(np.stack(dense) if dense else np.empty((0, 0)))
    return Instances(rows=rows)


def _row(item: object, index: int) -> Array | SparseRow:
    features = item
    if isinstance(item, dict):
        data = item.get("data")
        features = data.get("features") if isinstance(data, dict) else item.get("features")
    if isinstance(features, dict):
        return _tensor(features, index)
    numbers = _numbers(features)
    if numbers is None:
        raise InputFormatError(
            f'instance {index}: expected a list of numbers, {{"features": [...]}} or '
            '{"data": {"features": {"values": [...]}}}'
        )
    return np.asarray(numbers, dtype=np.float64)


def _tensor(tensor: dict[str, object], index: int) -> Array | SparseRow:
    values = _numbers(tensor.get("values"))
    if values is None:
        raise InputFormatError(f'instance {index}: "values" must be a list of numbers')
    if "keys" not in tensor:
        return np.asarray(values, dtype=np.float64)
    keys = _numbers(tensor["keys"])
    if keys is None or len(keys) != len(values):
        raise InputFormatError(f'instance {index}: "keys" must match "values" one to one')
    shape = _numbers(tensor.get("shape"))
    width = int(shape[0]) if shape else None
    return SparseRow(np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.float64), width)


def _numbers(value: object) -> list[float] | None:
    """The value when it is a list of numbers (JSON true/false are not numbers)."""
    if not isinstance(value, list):
        return None
    if all(isinstance(item, int | float) and not isinstance(item, bool) for item in value):
        return value
    return None


def _stack(rows: tuple[Array | SparseRow, ...], feature_dim: int) -> Array:
    matrix = np.zeros((len(rows), feature_dim))
    for index, row in enumerate(rows):
        if isinstance(row, SparseRow):
            _scatter_sparse(matrix[index], row, index)
        elif len(row) == feature_dim:
            matrix[index] = row
        else:
            raise InputFormatError(
                f"instance {index} has {len(row)} features; the model expects "
                f"feature_dim={feature_dim}"
            )
    return matrix


def _scatter_sparse(target: Array, row: SparseRow, index: int) -> None:
    width = len(target)
    if (row.width is not None and row.width != width) or (row.keys >= width).any():
        raise InputFormatError(
            f"instance {index}: sparse features do not fit the model's feature_dim={width}"
        )
    if (row.keys < 0).any():
        raise InputFormatError(f"instance {index}: sparse keys must not be negative")
    target[row.keys] = row.values
