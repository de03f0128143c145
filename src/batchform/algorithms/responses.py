"""Inference responses of the built-in algorithms, in SageMaker's response formats.

A prediction is named per-record fields ("projection" for PCA; "closest_cluster" and
"distance_to_cluster" for k-means) under an envelope key ("projections",
"predictions"). It is written as:
- application/json: {"<envelope>": [{"<field>": value, ...}, ...]}
- application/jsonlines: one {"<field>": value, ...} a line
- text/csv: one line a record, the fields' values in order
- application/x-recordio-protobuf: one RecordIO-framed `Record` a record, each field a
  float32 tensor in its `label` map (SageMaker's record.proto, as its SDK reads it)

Values are float32, as SageMaker's algorithms compute them, and are written as Python
writes that float32's exact double value (23.40593910217285), as SageMaker's are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from batchform.algorithms.csvblock import Array
from batchform.errors import ModelError
from batchform.records.recordio import encode_record
from batchform.runtimes.codecs import accepted_media_types, array_to_csv

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
PROTOBUF = "application/x-recordio-protobuf"
DEFAULT_ACCEPT = JSON


@dataclass(frozen=True)
class Prediction:
    envelope: str  # the JSON key holding the list of records
    fields: tuple[tuple[str, Array], ...]  # (name, one value or row of values a record)

    def __post_init__(self) -> None:
        # float32 as SageMaker computes, widened so JSON shows that float's exact value
        widened = tuple(
            (name, values.astype(np.float32).astype(np.float64)) for name, values in self.fields
        )
        object.__setattr__(self, "fields", widened)

    def __len__(self) -> int:
        return len(self.fields[0][1]) if self.fields else 0

    def records(self) -> list[dict[str, object]]:
        """One dict a record; vector fields as numpy rows, which orjson writes directly."""
        names = [name for name, _ in self.fields]
        columns = [_values(values) for _, values in self.fields]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def matrix(self) -> Array:
        """Every field side by side, a row a record (the CSV layout)."""
        return np.column_stack([values for _, values in self.fields])


def _values(values: Array) -> list[object]:
    # Scalars as Python floats (orjson writes their shortest repr); rows stay numpy.
    return values.tolist() if values.ndim == 1 else list(values)


def encode(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """The response body and its content type: the first Accept type supported."""
    for media in accepted_media_types(accept or "") or [DEFAULT_ACCEPT]:
        chosen = DEFAULT_ACCEPT if media == "*/*" else media
        encoder = _ENCODERS.get(chosen)
        if encoder is not None:
            return encoder(prediction), chosen
    raise ModelError(
        406,
        f"Accept {accept!r} is not supported (supported: {', '.join(_ENCODERS)})",
    )


def to_json(prediction: Prediction) -> bytes:
    return orjson.dumps({prediction.envelope: prediction.records()}, option=_OPTIONS)


def to_jsonlines(prediction: Prediction) -> bytes:
    return b"".join(
        orjson.dumps(record, option=_OPTIONS) + b"\n" for record in prediction.records()
    )


def to_csv(prediction: Prediction) -> bytes:
    return array_to_csv(prediction.matrix()) if len(prediction) else b""


def to_protobuf(prediction: Prediction) -> bytes:
    names = [name.encode() for name, _ in prediction.fields]
    columns = [values for _, values in prediction.fields]
    records = []
    for row in zip(*columns, strict=True):
        entries = (
            _label_entry(name, np.atleast_1d(value)) for name, value in zip(names, row, strict=True)
        )
        records.append(encode_record(b"".join(entries)))
    return b"".join(records)


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_ENCODERS: dict[str, Callable[[Prediction], bytes]] = {
    JSON: to_json,
    JSONLINES: to_jsonlines,
    CSV: to_csv,
    PROTOBUF: to_protobuf,
}


# --- protobuf wire format of record.proto -------------------------------------------------
# Record { map<string, Value> label = 2 }, Value { Float32Tensor float32_tensor = 2 },
# Float32Tensor { repeated float values = 1 [packed] }; a map entry is {key = 1, value = 2}.


def _label_entry(name: bytes, values: Array) -> bytes:
    tensor = _length_delimited(1, values.astype("<f4").tobytes())
    value = _length_delimited(2, tensor)
    return _length_delimited(2, _length_delimited(1, name) + _length_delimited(2, value))


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
