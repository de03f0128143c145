"""SageMaker's RecordIO-protobuf records read whole: every feature and label by name.

`batchform.records.protobuf` decodes the feature and label "values" tensors into arrays,
which is what algorithms read. Answers of the built-in algorithms name their fields
("projection", "closest_cluster"), so the SDK's RecordDeserializer reads any Record:
the message of the sagemaker SDK's record.proto,

    Record { map<string, Value> features = 1; map<string, Value> label = 2; string uid = 3 }
    Value  { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
             Int32Tensor int32_tensor = 7; Bytes bytes = 9 }
    Tensor { repeated values = 1 [packed]; repeated uint64 keys = 2; repeated uint64 shape = 3 }

and gives it the same attribute names, so `record.label["projection"].float32_tensor.values`
reads as it does with the sagemaker SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from batchform.records import recordio

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_TENSOR_FIELDS = {2: "float32_tensor", 3: "float64_tensor", 7: "int32_tensor"}
_BYTES_FIELD = 9
_DTYPES = {"float32_tensor": "<f4", "float64_tensor": "<f8", "int32_tensor": "int32"}


@dataclass(frozen=True)
class Tensor:
    values: npt.NDArray[Any]
    keys: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class Value:
    float32_tensor: Tensor | None = None
    float64_tensor: Tensor | None = None
    int32_tensor: Tensor | None = None
    bytes: tuple[bytes, ...] | None = None

    @property
    def tensor(self) -> Tensor | None:
        """Whichever tensor the value holds."""
        return self.float32_tensor or self.float64_tensor or self.int32_tensor


@dataclass(frozen=True)
class Record:
    features: dict[str, Value]
    label: dict[str, Value]
    uid: str | None = None


def read_records(data: bytes) -> list[Record]:
    """Every record of a RecordIO-protobuf body."""
    return [parse_record(payload) for payload in recordio.iter_records(data)]


def parse_record(data: bytes) -> Record:
    features: dict[str, Value] = {}
    label: dict[str, Value] = {}
    uid = None
    for number, _wire, payload in _fields(data):
        if number in (1, 2):
            name, value = _map_entry(payload)
            (features if number == 1 else label)[name] = value
        elif number == 3:
            uid = payload.decode("utf-8")
    return Record(features, label, uid)


def _map_entry(data: bytes) -> tuple[str, Value]:
    name, value = "", Value()
    for number, _wire, payload in _fields(data):
        if number == 1:
            name = payload.decode("utf-8")
        elif number == 2:
            value = _value(payload)
    return name, value


def _value(data: bytes) -> Value:
    for number, _wire, payload in _fields(data):
        kind = _TENSOR_FIELDS.get(number)
        if kind is not None:
            return _tensor_value(kind, _tensor(payload, kind))
        if number == _BYTES_FIELD:
            return Value(bytes=tuple(p for n, _w, p in _fields(payload) if n == 1))
    return Value()


def _tensor_value(kind: str, tensor: Tensor) -> Value:
    if kind == "float32_tensor":
        return Value(float32_tensor=tensor)
    if kind == "float64_tensor":
        return Value(float64_tensor=tensor)
    return Value(int32_tensor=tensor)


def _tensor(data: bytes, kind: str) -> Tensor:
    values: list[npt.NDArray[Any]] = []
    keys: list[int] = []
    shape: list[int] = []
    for number, wire, payload in _fields(data):
        if number == 1:
            values.append(_numbers(payload, wire, kind))
        elif number == 2:
            keys.extend(_varints(payload, wire))
        elif number == 3:
            shape.extend(_varints(payload, wire))
    flat = np.concatenate(values) if values else np.empty(0, _DTYPES[kind])
    return Tensor(flat, np.array(keys, dtype=np.uint64), tuple(shape))


def _numbers(payload: bytes, wire: int, kind: str) -> npt.NDArray[Any]:
    if kind == "int32_tensor":
        # int32 varints carry two's complement in 64 bits: the low 32 bits are the value
        low = [number & 0xFFFFFFFF for number in _varints(payload, wire)]
        return np.array(low, dtype=np.uint32).view(np.int32)
    return np.frombuffer(payload, dtype=_DTYPES[kind]).copy()


def _varints(payload: bytes, wire: int) -> Iterator[int]:
    """A packed run of varints (length-delimited) or the one varint of an unpacked field."""
    if wire != _LENGTH:
        yield int.from_bytes(payload, "little")
        return
    position = 0
    while position < len(payload):
        number, position = _read_varint(payload, position)
        yield number


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(field number, wire type, payload) of each field; a varint's payload is its value
    as 8 little-endian bytes, so callers read every kind from bytes."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, position = _read_varint(data, position)
            yield number, wire, value.to_bytes(8, "little")
        elif wire == _LENGTH:
            size, position = _read_varint(data, position)
            yield number, wire, data[position : position + size]
            position += size
        elif wire in (_FIXED32, _FIXED64):
            size = 4 if wire == _FIXED32 else 8
            yield number, wire, data[position : position + size]
            position += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {position}")


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[position]
        result |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return result, position
        shift += 7
