"""The SDK's serializers and deserializers: what they send and read, and that they match
the sagemaker SDK's on the same data (so code moving between the two sees no change)."""

from __future__ import annotations

import io
import json
import os
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sagemaker import deserializers as sm_deserializers
from sagemaker import serializers as sm_serializers
from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

from batchform.algorithms.responses import Prediction, to_protobuf
from batchform.records import protobuf
from batchform.sdk import deserializers, serializers
from batchform.sdk.recordproto import read_records

MATRIX = np.array([[1.5, 2.0, -3.25], [4.0, 0.0, 6.125]])


def sm_bytes(body: Any) -> bytes:
    """The sagemaker SDK's serializers answer str, bytes or a buffer."""
    if hasattr(body, "read"):
        body = body.read()
    return body.encode() if isinstance(body, str) else bytes(body)


def ours(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


@pytest.mark.parametrize(
    "data",
    [
        MATRIX,
        MATRIX[0],
        [[1, 2, 3], [4, 5, 6]],
        [1, 2.5, "x"],
        "1,2,3\n4,5,6",
        np.array([[7]]),
        pd.DataFrame(MATRIX),
    ],
    ids=["matrix", "row", "lists", "mixed-row", "text", "one-cell", "dataframe"],
)
def test_csv_serializer_matches_the_sagemaker_sdk(data: Any) -> None:
    ours_text = serializers.CSVSerializer().serialize(data)
    assert ours(ours_text) == sm_bytes(sm_serializers.CSVSerializer().serialize(data))


def test_csv_serializer_rows_content_type_and_errors() -> None:
    serializer = serializers.CSVSerializer()
    assert serializer.CONTENT_TYPE == "text/csv"
    assert serializer.serialize(MATRIX) == "1.5,2.0,-3.25\n4.0,0.0,6.125"
    assert serializer.serialize(io.StringIO("a,b")) == "a,b"
    with pytest.raises(ValueError, match="empty"):
        serializer.serialize([])
    with pytest.raises(ValueError, match="Unable to handle"):
        serializer.serialize(3)
    assert serializers.CSVSerializer(content_type="text/plain").CONTENT_TYPE == "text/plain"


@pytest.mark.parametrize(
    "data",
    [{"instances": MATRIX, "n": 2}, MATRIX, [1, 2, {"a": None}], "text", 3.5],
    ids=["dict-of-arrays", "array", "list", "str", "number"],
)
def test_json_serializer_matches_the_sagemaker_sdk(data: Any) -> None:
    text = serializers.JSONSerializer().serialize(data)
    assert json.loads(text) == json.loads(sm_serializers.JSONSerializer().serialize(data))


def test_json_serializer_handles_numpy_anywhere() -> None:
    data = {"rows": [np.float32(1.5), np.arange(3)], "count": np.int64(2)}
    assert json.loads(serializers.JSONSerializer().serialize(data)) == {
        "rows": [1.5, [0, 1, 2]],
        "count": 2,
    }
    with pytest.raises(TypeError, match="set"):
        serializers.JSONSerializer().serialize({1, 2})


def test_jsonlines_serializer() -> None:
    records = [{"features": [1, 2]}, {"features": [3, 4]}]
    serializer = serializers.JSONLinesSerializer()
    text = serializer.serialize(records)
    assert text == sm_serializers.JSONLinesSerializer().serialize(records)
    assert [json.loads(line) for line in text.splitlines()] == records
    assert serializer.CONTENT_TYPE == "application/jsonlines"
    with pytest.raises(ValueError, match="JSON Lines"):
        serializer.serialize(5)


@pytest.mark.parametrize("data", [MATRIX, [[1, 2], [3, 4]], 7.0], ids=["array", "list", "scalar"])
def test_numpy_serializer_writes_npy_like_the_sagemaker_sdk(data: Any) -> None:
    body = serializers.NumpySerializer().serialize(data)
    assert body == sm_bytes(sm_serializers.NumpySerializer().serialize(data))
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), np.asarray(data))


def test_numpy_serializer_dtype_and_empty() -> None:
    body = serializers.NumpySerializer(dtype="float32").serialize([[1, 2]])
    assert np.load(io.BytesIO(body)).dtype == np.float32
    for empty in ([], np.array([])):
        with pytest.raises(ValueError, match="empty"):
            serializers.NumpySerializer().serialize(empty)


def test_record_serializer_is_byte_for_byte_the_sagemaker_sdk() -> None:
    ours_dense = serializers.RecordSerializer().serialize(MATRIX.astype(np.float32))
    sm_dense = sm_serializers.RecordSerializer().serialize(MATRIX.astype(np.float32))
    assert ours_dense == sm_bytes(sm_dense)
    row = serializers.RecordSerializer().serialize(np.arange(4, dtype=np.float64))
    reference = io.BytesIO()
    write_numpy_to_dense_tensor(reference, np.arange(4, dtype=np.float64).reshape(1, 4))
    assert row == reference.getvalue()
    with pytest.raises(ValueError, match="3D"):
        serializers.RecordSerializer().serialize(np.zeros((2, 2, 2)))


def test_record_serializer_sparse_matrix() -> None:
    matrix = sp.csr_matrix(np.array([[0, 1.5, 0], [2.0, 0, 0]], dtype=np.float32))
    reference = io.BytesIO()
    write_spmatrix_to_sparse_tensor(reference, matrix)
    assert serializers.RecordSerializer().serialize(matrix) == reference.getvalue()


def test_simple_serializers() -> None:
    assert serializers.IdentitySerializer().serialize(b"\x00raw") == b"\x00raw"
    assert serializers.IdentitySerializer().CONTENT_TYPE == "application/octet-stream"
    assert serializers.StringSerializer().serialize("héllo") == "héllo".encode()
    with pytest.raises(ValueError, match="String"):
        serializers.StringSerializer().serialize(b"bytes")
    assert serializers.LibSVMSerializer().serialize("1 3:0.5") == "1 3:0.5"
    with pytest.raises(ValueError, match="content_type must be a string"):
        serializers.CSVSerializer(content_type=None)  # type: ignore[arg-type]


def test_data_serializer_reads_a_file(tmp_path: Any) -> None:
    path = tmp_path / "image.bin"
    path.write_bytes(b"\x89PNG")
    assert serializers.DataSerializer().serialize(str(path)) == b"\x89PNG"
    assert serializers.DataSerializer().serialize({"data": b"abc"}) == b"abc"
    with pytest.raises(ValueError, match="Could not open"):
        serializers.DataSerializer().serialize(str(tmp_path / "missing"))


def test_sparse_matrix_serializer_writes_npz() -> None:
    matrix = sp.csr_matrix(np.eye(3))
    body = serializers.SparseMatrixSerializer().serialize(matrix)
    assert (sp.load_npz(io.BytesIO(body)) != matrix).nnz == 0


# Deserializers ------------------------------------------------------------------------


def stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_bytes_string_and_stream_deserializers() -> None:
    assert deserializers.BytesDeserializer().deserialize(stream(b"\x01"), "x/y") == b"\x01"
    assert deserializers.BytesDeserializer().ACCEPT == ("*/*",)
    text = deserializers.StringDeserializer().deserialize(stream("é".encode()), "text/plain")
    assert text == "é"
    body = stream(b"abc")
    assert deserializers.StreamDeserializer().deserialize(body, "t") == (body, "t")
    accept = deserializers.StringDeserializer(accept=("a/b", "c/d")).ACCEPT
    assert accept == ("a/b", "c/d")


def test_json_and_jsonlines_deserializers() -> None:
    answer = b'{"projections": [{"projection": [1.0, 2.0]}]}'
    parsed = deserializers.JSONDeserializer().deserialize(stream(answer), "application/json")
    assert parsed == {"projections": [{"projection": [1.0, 2.0]}]}
    assert deserializers.JSONDeserializer().ACCEPT == ("application/json",)
    lines = b'{"a": 1}\n{"a": 2}\n'
    assert deserializers.JSONLinesDeserializer().deserialize(stream(lines), "x") == [
        {"a": 1},
        {"a": 2},
    ]
    assert deserializers.JSONLinesDeserializer().deserialize(stream(b""), "x") == []


def test_csv_deserializer_matches_the_sagemaker_sdk() -> None:
    answer = b'1,2\n"a,b",3\n'
    ours_rows = deserializers.CSVDeserializer().deserialize(stream(answer), "text/csv")
    assert ours_rows == [["1", "2"], ["a,b", "3"]]
    assert ours_rows == sm_deserializers.CSVDeserializer().deserialize(stream(answer), "text/csv")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"1,2\n3,4\n", "text/csv"),
        (b"1,2\n3,4\n", "text/csv; charset=utf-8"),
        (b"[[1, 2], [3, 4]]", "application/json"),
        (None, "application/x-npy"),
    ],
)
def test_numpy_deserializer(body: bytes | None, content_type: str) -> None:
    if body is None:
        buffer = io.BytesIO()
        np.save(buffer, np.array([[1, 2], [3, 4]]))
        body = buffer.getvalue()
    array = deserializers.NumpyDeserializer().deserialize(stream(body), content_type)
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])


def test_numpy_deserializer_refuses_other_types_and_pickles() -> None:
    with pytest.raises(ValueError, match="cannot read content type text/plain"):
        deserializers.NumpyDeserializer().deserialize(stream(b"x"), "text/plain")
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=True"):
        deserializers.NumpyDeserializer().deserialize(
            stream(buffer.getvalue()), "application/x-npy"
        )
    loaded = deserializers.NumpyDeserializer(allow_pickle=True).deserialize(
        stream(buffer.getvalue()), "application/x-npy"
    )
    assert loaded[0] == {"a": 1}


def test_record_deserializer_reads_the_sagemaker_sdks_records() -> None:
    features = np.array([[1.0, 2.0], [3.0, -4.5]], dtype=np.float32)
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, features, np.array([0, 7]))
    records = deserializers.RecordDeserializer().deserialize(
        stream(buffer.getvalue()), "application/x-recordio-protobuf"
    )
    assert len(records) == 2
    for record, row, label in zip(records, features, [0, 7], strict=True):
        tensor = record.features["values"].float32_tensor
        assert tensor is not None
        np.testing.assert_array_equal(tensor.values, row)
        assert record.label["values"].tensor is not None
        assert record.label["values"].tensor.values.tolist() == [label]


def test_record_deserializer_reads_sparse_and_int32_records() -> None:
    matrix = sp.csr_matrix(np.array([[0, 5, 0, -2]], dtype=np.int64))  # the SDK: int → Int32
    buffer = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buffer, matrix)
    (record,) = read_records(buffer.getvalue())
    tensor = record.features["values"].int32_tensor
    assert tensor is not None
    assert tensor.values.tolist() == [5, -2]
    assert tensor.keys.tolist() == [1, 3]
    assert tensor.shape == (4,)


def test_record_deserializer_reads_a_builtin_algorithms_answer() -> None:
    """PCA answers name their field: `record.label["projection"]`, as the SDK reads it."""
    projections = np.array([[0.5, -1.25], [2.0, 3.0]])
    answer = to_protobuf(Prediction("projections", (("projection", projections),)))
    records = deserializers.RecordDeserializer().deserialize(
        stream(answer), "application/x-recordio-protobuf"
    )
    rows = [record.label["projection"].float32_tensor.values.tolist() for record in records]  # type: ignore[union-attr]
    assert rows == projections.tolist()


def test_record_round_trip_through_batchforms_codec() -> None:
    body = serializers.RecordSerializer().serialize(MATRIX)
    np.testing.assert_array_equal(protobuf.decode(body).features, MATRIX)
