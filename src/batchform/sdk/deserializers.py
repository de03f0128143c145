"""Deserializers: an endpoint's answer (a readable stream and its content type) → data.

The same classes, arguments and behaviour as the sagemaker SDK's; `ACCEPT` is the tuple
of content types sent in the Accept header.
"""

from __future__ import annotations

import abc
import csv
import io
import json
from typing import IO, Any

import numpy as np

from batchform.sdk.recordproto import Record, read_records

__all__ = [
    "BaseDeserializer",
    "BytesDeserializer",
    "CSVDeserializer",
    "JSONDeserializer",
    "JSONLinesDeserializer",
    "NumpyDeserializer",
    "RecordDeserializer",
    "SimpleBaseDeserializer",
    "StreamDeserializer",
    "StringDeserializer",
]

Stream = IO[bytes]


class BaseDeserializer(abc.ABC):
    @abc.abstractmethod
    def deserialize(self, stream: Stream, content_type: str) -> Any:
        """The data in the answer `stream` of type `content_type`."""

    @property
    @abc.abstractmethod
    def ACCEPT(self) -> tuple[str, ...]:  # the sagemaker SDK's name
        """The content types asked for."""


class SimpleBaseDeserializer(BaseDeserializer):
    """A deserializer whose accepted type(s) are chosen when it is made."""

    def __init__(self, accept: str | tuple[str, ...] = "*/*") -> None:
        self.accept = accept

    @property
    def ACCEPT(self) -> tuple[str, ...]:
        return (self.accept,) if isinstance(self.accept, str) else tuple(self.accept)


def _read(stream: Stream) -> bytes:
    try:
        return stream.read()
    finally:
        stream.close()


def media_type(content_type: str | None) -> str:
    """`text/csv` of `text/csv; charset=utf-8`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class BytesDeserializer(SimpleBaseDeserializer):
    def deserialize(self, stream: Stream, content_type: str) -> bytes:
        return _read(stream)


class StringDeserializer(SimpleBaseDeserializer):
    def __init__(self, encoding: str = "UTF-8", accept: str | tuple[str, ...] = "application/json"):
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: Stream, content_type: str) -> str:
        return _read(stream).decode(self.encoding)


class StreamDeserializer(SimpleBaseDeserializer):
    """The stream and content type as they are; reading and closing is the caller's."""

    def deserialize(self, stream: Stream, content_type: str) -> tuple[Stream, str]:
        return stream, content_type


class CSVDeserializer(SimpleBaseDeserializer):
    """A list of rows, each a list of strings."""

    def __init__(self, encoding: str = "utf-8", accept: str | tuple[str, ...] = "text/csv"):
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: Stream, content_type: str) -> list[list[str]]:
        return list(csv.reader(_read(stream).decode(self.encoding).splitlines()))


class JSONDeserializer(SimpleBaseDeserializer):
    def __init__(self, accept: str | tuple[str, ...] = "application/json") -> None:
        super().__init__(accept)

    def deserialize(self, stream: Stream, content_type: str) -> Any:
        return json.loads(_read(stream).decode("utf-8"))


class JSONLinesDeserializer(SimpleBaseDeserializer):
    """A list of the JSON values, one a line."""

    def __init__(self, accept: str | tuple[str, ...] = "application/jsonlines") -> None:
        super().__init__(accept)

    def deserialize(self, stream: Stream, content_type: str) -> list[Any]:
        text = _read(stream).decode("utf-8").rstrip()
        return [json.loads(line) for line in text.split("\n")] if text else []


class NumpyDeserializer(SimpleBaseDeserializer):
    """A numpy array from .npy (or .npz: numpy.load's archive), CSV or JSON answers."""

    def __init__(
        self,
        dtype: Any = None,
        accept: str | tuple[str, ...] = "application/x-npy",
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(accept)
        self.dtype = dtype
        self.allow_pickle = allow_pickle

    def deserialize(self, stream: Stream, content_type: str) -> Any:
        kind = media_type(content_type)
        data = _read(stream)
        if kind == "text/csv":
            return np.genfromtxt(io.BytesIO(data), delimiter=",", dtype=self.dtype)
        if kind == "application/json":
            return np.array(json.loads(data.decode("utf-8")), dtype=self.dtype)
        if kind in ("application/x-npy", "application/x-npz"):
            try:
                return np.load(io.BytesIO(data), allow_pickle=self.allow_pickle)
            except ValueError as exc:
                raise ValueError(
                    f"{exc}; set allow_pickle=True to deserialize pickled objects"
                ) from exc
        raise ValueError(f"NumpyDeserializer cannot read content type {content_type}.")


class RecordDeserializer(SimpleBaseDeserializer):
    """A list of Records (features and label by name) from RecordIO-protobuf."""

    def __init__(self, accept: str | tuple[str, ...] = "application/x-recordio-protobuf"):
        super().__init__(accept)

    def deserialize(self, stream: Stream, content_type: str) -> list[Record]:
        return read_records(_read(stream))
