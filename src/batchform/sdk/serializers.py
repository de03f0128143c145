"""Serializers: Python data → request body, with the Content-Type it is sent with.

The same classes, arguments and behaviour as the sagemaker SDK's. A serializer's
`serialize` returns str or bytes; the Predictor sends str as UTF-8.
"""

from __future__ import annotations

import abc
import csv
import importlib
import io
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from batchform.records import protobuf

__all__ = [
    "BaseSerializer",
    "CSVSerializer",
    "DataSerializer",
    "IdentitySerializer",
    "JSONLinesSerializer",
    "JSONSerializer",
    "LibSVMSerializer",
    "NumpySerializer",
    "RecordSerializer",
    "SimpleBaseSerializer",
    "SparseMatrixSerializer",
    "StringSerializer",
]


class BaseSerializer(abc.ABC):
    @abc.abstractmethod
    def serialize(self, data: Any) -> Any:
        """The request body for `data`."""

    @property
    @abc.abstractmethod
    def CONTENT_TYPE(self) -> str:  # the sagemaker SDK's name
        """The MIME type the body is sent as."""


class SimpleBaseSerializer(BaseSerializer):
    """A serializer whose content type is chosen when it is made."""

    def __init__(self, content_type: str = "application/json") -> None:
        if not isinstance(content_type, str):
            raise ValueError(
                "content_type must be a string naming the MIME type of the data sent, "
                f"e.g. 'application/json' or 'text/csv'; got {content_type!r}"
            )
        self.content_type = content_type

    @property
    def CONTENT_TYPE(self) -> str:
        return self.content_type


class CSVSerializer(SimpleBaseSerializer):
    """Rows (a 2-D array, a list of lists, a DataFrame) as CSV lines; a 1-D sequence as
    one line; text and readable streams as they are."""

    def __init__(self, content_type: str = "text/csv") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        if hasattr(data, "read"):
            return data.read()
        if hasattr(data, "to_csv"):  # a pandas DataFrame, without importing pandas
            return data.to_csv(header=False, index=False)
        rows = _is_sequence(data) and hasattr(data, "__setitem__") and len(data) > 0
        if rows and _is_sequence(data[0]):
            return "\n".join(self._row(row) for row in data)
        return self._row(data)

    @staticmethod
    def _row(data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, np.ndarray):
            data = data.ravel()
        if not hasattr(data, "__len__"):
            raise ValueError(f"Unable to handle input format: {type(data)}")
        if len(data) == 0:
            raise ValueError("Cannot serialize empty array")
        buffer = io.StringIO()
        csv.writer(buffer).writerow(data)
        return buffer.getvalue().rstrip("\r\n")


def _is_sequence(data: Any) -> bool:
    return hasattr(data, "__iter__") and hasattr(data, "__getitem__")


class JSONSerializer(SimpleBaseSerializer):
    """JSON; numpy arrays and scalars (anywhere in the data) as lists and numbers."""

    def serialize(self, data: Any) -> Any:
        if hasattr(data, "read"):
            return data.read()
        return json.dumps(data, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JSONLinesSerializer(SimpleBaseSerializer):
    """One JSON value a line from an iterable; text and readable streams as they are."""

    def __init__(self, content_type: str = "application/jsonlines") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        if isinstance(data, Iterable):
            return "\n".join(json.dumps(item, default=_plain) for item in data)
        raise ValueError(f"Object of type {type(data)} is not JSON Lines serializable.")


class NumpySerializer(SimpleBaseSerializer):
    """The .npy format (numpy.save) of an array, a list or a scalar; readable streams
    are sent as they are (assumed to hold .npy bytes)."""

    def __init__(self, dtype: Any = None, content_type: str = "application/x-npy") -> None:
        super().__init__(content_type)
        self.dtype = dtype

    def serialize(self, data: Any) -> Any:
        empty = data.size == 0 if isinstance(data, np.ndarray) else data == []
        if empty:
            raise ValueError("Cannot serialize empty array.")
        if isinstance(data, list):
            data = np.array(data, self.dtype)
        elif hasattr(data, "read"):
            return data.read()
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(data))
        return buffer.getvalue()


class RecordSerializer(SimpleBaseSerializer):
    """SageMaker's RecordIO-protobuf: one record a row of a 1-D or 2-D array (dense), or
    of a scipy.sparse matrix (sparse), as the built-in algorithms read."""

    def __init__(self, content_type: str = "application/x-recordio-protobuf") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        if hasattr(data, "tocsr"):
            return protobuf.encode_sparse(data)
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError(f"Expected a 1D or 2D array, but got a {array.ndim}D array instead.")
        return protobuf.encode_dense(array)


class IdentitySerializer(SimpleBaseSerializer):
    """The data as it is (bytes, or text sent as UTF-8)."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        return data


class StringSerializer(SimpleBaseSerializer):
    """A str, as UTF-8 bytes."""

    def __init__(self, content_type: str = "text/plain") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        raise ValueError(f"Object of type {type(data)} is not String serializable.")


class DataSerializer(SimpleBaseSerializer):
    """A file's bytes, given its path (or the bytes themselves)."""

    def __init__(self, content_type: str = "file-path/raw-bytes") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        if isinstance(data, dict) and "data" in data:
            return self.serialize(data["data"])
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            try:
                with open(data, "rb") as file:
                    return file.read()
            except OSError as exc:
                raise ValueError(f"Could not open/read file: {data}. {exc}") from exc
        raise ValueError(f"Object of type {type(data)} is not Data serializable.")


class LibSVMSerializer(SimpleBaseSerializer):
    """Text already in LibSVM format (`<label> <index>:<value> ...`), or a stream of it."""

    def __init__(self, content_type: str = "text/libsvm") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        raise ValueError(f"Unable to handle input format: {type(data)}")


class SparseMatrixSerializer(SimpleBaseSerializer):
    """A scipy.sparse matrix in the .npz format (scipy.sparse.save_npz)."""

    def __init__(self, content_type: str = "application/x-npz") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        try:
            sparse: Any = importlib.import_module("scipy.sparse")
        except ImportError as exc:
            raise ValueError("SparseMatrixSerializer needs scipy: pip install scipy") from exc
        buffer = io.BytesIO()
        sparse.save_npz(buffer, data)
        return buffer.getvalue()
