"""RecordIO-protobuf: our codec against the sagemaker SDK's writers and reader, byte for
byte, and the errors a user gets for bad data, naming the record and its byte offset."""

from __future__ import annotations

import ast
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np
import pytest
import scipy.sparse as sp
from google.protobuf.internal.encoder import _VarintBytes as reference_varint
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sagemaker.amazon.common import (
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)
from sagemaker.amazon.record_pb2 import Record

from batchform.errors import InputFormatError
from batchform.records import protobuf, recordio
from batchform.records.protobuf import decode, encode_csr, encode_dense, encode_sparse

MAGIC_BYTES = b"\x0a\x23\xd7\xce"  # 0xCED7230A, little-endian
RNG = np.random.default_rng(7)


def sdk_dense(features: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    out = io.BytesIO()
    write_numpy_to_dense_tensor(out, features, labels)
    return out.getvalue()


def sdk_sparse(matrix: Any, labels: np.ndarray | None = None) -> bytes:
    out = io.BytesIO()
    write_spmatrix_to_sparse_tensor(out, matrix, labels)
    return out.getvalue()


def framed(*records: Record) -> bytes:
    """Records framed as the SDK frames them: one whole frame each."""
    return b"".join(recordio.encode_frame(record.SerializeToString()) for record in records)


def dense_record(values: list[float], label: float | None = None, **fields: str) -> Record:
    record = Record(**fields)
    record.features["values"].float32_tensor.values.extend(values)
    if label is not None:
        record.label["values"].float32_tensor.values.extend([label])
    return record


def field(number: int, wire: int, payload: bytes) -> bytes:
    """One protobuf field, built with the protobuf package's own varint encoder."""
    length = reference_varint(len(payload)) if wire == 2 else b""
    return reference_varint(number << 3 | wire) + length + payload


def features_entry(tensor: bytes, kind: int = 2, key: bytes = b"values") -> bytes:
    """A Record's features map entry {key: Value{<kind> tensor}}, by hand."""
    return field(1, 2, field(1, 2, key) + field(2, 2, field(kind, 2, tensor)))


def error_of(call: Callable[[], object]) -> InputFormatError:
    with pytest.raises(InputFormatError) as caught:
        call()
    return caught.value


def offsets_of(data: bytes) -> list[int]:
    """Where each record of data starts."""
    starts, position = [], 0
    while position < len(data):
        starts.append(position)
        end = recordio.record_end(data, position)
        assert end is not None
        position = end
    return starts


# --- byte for byte with the SDK's writers ----------------------------------------------

DENSE_TYPES = [np.float32, np.float64, np.int64]  # np.int64 is numpy's int: SDK's Int32Tensor
LABEL_TYPES = [None, np.float32, np.float64, np.int64]


@pytest.mark.parametrize("label_type", LABEL_TYPES)
@pytest.mark.parametrize("feature_type", DENSE_TYPES)
def test_dense_bytes_match_the_sdk_writer(feature_type: type, label_type: type | None) -> None:
    features = (RNG.normal(size=(9, 6)) * 1000).astype(feature_type)
    labels = None if label_type is None else (np.arange(9) - 4).astype(label_type)
    assert encode_dense(features, labels) == sdk_dense(features, labels)


@pytest.mark.parametrize("label_type", LABEL_TYPES)
@pytest.mark.parametrize("feature_type", DENSE_TYPES)
def test_dense_decodes_from_sdk_bytes(feature_type: type, label_type: type | None) -> None:
    features = (RNG.normal(size=(9, 6)) * 1000).astype(feature_type)
    labels = None if label_type is None else (np.arange(9) - 4).astype(label_type)
    decoded = decode(sdk_dense(features, labels))
    expected_type = np.float32 if feature_type is np.float32 else np.float64
    assert decoded.features.dtype == expected_type
    np.testing.assert_array_equal(decoded.features, features)
    if labels is None:
        assert decoded.labels is None
    else:
        assert decoded.labels is not None
        assert decoded.labels.shape == (9,)
        np.testing.assert_array_equal(decoded.labels, labels)


def test_int32_arrays_are_written_as_the_sdk_writes_int64() -> None:
    # The SDK refuses int32 arrays; we take them, as the Int32Tensor they fit.
    features = np.array([[1, -2, 2**31 - 1], [-(2**31), 0, 300]], dtype=np.int32)
    assert encode_dense(features) == sdk_dense(features.astype(np.int64))
    assert decode(encode_dense(features)).features.tolist() == features.tolist()


def test_values_holding_the_magic_stay_in_one_frame_like_the_sdks() -> None:
    # The SDK writes every record as one frame, even where an aligned magic would make
    # MXNet's writer split it; readers that follow the lengths read it all the same.
    magic_float = np.frombuffer(MAGIC_BYTES, "<f4")[0]
    features = np.full((3, 4), magic_float, dtype=np.float32)
    ours = encode_dense(features)
    assert ours == sdk_dense(features)
    np.testing.assert_array_equal(decode(ours).features, features)


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("value_type", [np.float32, np.float64, np.int64])
def test_sparse_bytes_match_the_sdk_writer(value_type: type, with_labels: bool) -> None:
    dense = (RNG.random((12, 30)) < 0.2) * RNG.integers(1, 1000, (12, 30))
    dense[[0, 5, 11]] = 0  # empty rows, the first and last among them
    matrix = sp.csr_matrix(dense.astype(value_type))
    labels = np.arange(12, dtype=np.float32) if with_labels else None
    ours = encode_sparse(matrix, labels)
    assert ours == sdk_sparse(matrix, labels)
    decoded = decode(ours)
    np.testing.assert_array_equal(decoded.features, dense)
    assert (decoded.labels is None) == (labels is None)


def test_sparse_keeps_stored_order_duplicates_and_explicit_zeros_as_the_sdk_does() -> None:
    matrix = sp.csr_matrix(
        (np.array([3.0, 0.0, 1.0, 5.0]), np.array([2, 1, 0, 3]), np.array([0, 3, 3, 4])),
        shape=(3, 4),
    )
    assert encode_sparse(matrix) == sdk_sparse(matrix)
    np.testing.assert_array_equal(decode(encode_sparse(matrix)).features, matrix.toarray())


def test_any_matrix_with_tocsr_is_encoded_as_its_csr_form() -> None:
    coo = sp.coo_matrix(([1.5, 2.5], ([0, 2], [3, 1])), shape=(3, 5), dtype=np.float32)
    assert encode_sparse(coo) == sdk_sparse(coo.tocsr())


def test_encode_csr_takes_the_three_arrays_without_scipy() -> None:
    matrix = sp.random(20, 40, density=0.1, format="csr", dtype=np.float32, random_state=3)
    labels = np.arange(20.0)
    ours = encode_csr(matrix.indptr, matrix.indices, matrix.data, 40, labels)
    assert ours == sdk_sparse(matrix, labels)


def test_sparse_rows_are_as_wide_as_their_shape_even_when_the_last_columns_are_empty() -> None:
    matrix = sp.csr_matrix(np.array([[0, 1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.float32))
    decoded = decode(encode_sparse(matrix))
    assert decoded.features.shape == (2, 6)
    assert decoded.features.dtype == np.float32


# --- the SDK's reader reads ours --------------------------------------------------------


def test_sdk_reader_reads_our_dense_records() -> None:
    features = RNG.normal(size=(5, 3)).astype(np.float64)
    labels = np.array([1, 0, 1, 1, 0])
    records = read_records(io.BytesIO(encode_dense(features, labels)))
    assert [list(r.features["values"].float64_tensor.values) for r in records] == (
        features.tolist()
    )
    assert [list(r.label["values"].int32_tensor.values) for r in records] == [
        [label] for label in labels.tolist()
    ]


def test_sdk_reader_reads_our_sparse_records() -> None:
    matrix = sp.csr_matrix(np.array([[0, 2.0, 0], [0, 0, 0], [1.0, 0, 4.0]], np.float32))
    records = read_records(io.BytesIO(encode_sparse(matrix, np.array([7.0, 8.0, 9.0]))))
    tensors = [record.features["values"].float32_tensor for record in records]
    assert [list(t.keys) for t in tensors] == [[1], [], [0, 2]]
    assert [list(t.values) for t in tensors] == [[2.0], [], [1.0, 4.0]]
    assert [list(t.shape) for t in tensors] == [[3], [3], [3]]
    assert [list(r.label["values"].float64_tensor.values) for r in records] == [[7], [8], [9]]


# --- properties -------------------------------------------------------------------------

float_types = st.sampled_from([np.float32, np.float64])
shapes = st.tuples(st.integers(0, 12), st.integers(0, 9))


@st.composite
def dense_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None]:
    kind = draw(st.sampled_from(["float32", "float64", "int64"]))
    shape = draw(shapes)
    if kind == "int64":
        elements = st.integers(-(2**31), 2**31 - 1)
    else:
        elements = st.floats(width=32 if kind == "float32" else 64, allow_nan=False)
    features = draw(hnp.arrays(kind, shape, elements=elements))
    label_kind = draw(st.sampled_from([None, "float32", "float64", "int64"]))
    if label_kind is None:
        return features, None
    label_elements = (
        st.integers(-(2**31), 2**31 - 1)
        if label_kind == "int64"
        else st.floats(width=32 if label_kind == "float32" else 64, allow_nan=False)
    )
    return features, draw(hnp.arrays(label_kind, shape[0], elements=label_elements))


@st.composite
def sparse_cases(draw: st.DrawFn) -> tuple[Any, np.ndarray | None]:
    rows, columns = draw(shapes)
    kind = draw(float_types)
    cells = draw(st.lists(st.tuples(st.integers(0, max(rows - 1, 0)), st.integers(0, 2**20))))
    values = draw(st.lists(st.floats(width=32, allow_nan=False), min_size=len(cells)))
    cells = [(row, column % columns) for row, column in cells] if rows and columns else []
    matrix = sp.csr_matrix(
        (values[: len(cells)], ([r for r, _ in cells], [c for _, c in cells])),
        shape=(rows, columns),
        dtype=kind,
    )
    labels = draw(st.none() | hnp.arrays(np.float64, rows, elements=st.floats(-1e9, 1e9)))
    return matrix, labels


@settings(max_examples=60, deadline=None)
@given(dense_cases())
def test_dense_round_trips_and_matches_the_sdk(case: tuple[np.ndarray, np.ndarray | None]) -> None:
    features, labels = case
    ours = encode_dense(features, labels)
    assert ours == sdk_dense(features, labels)
    decoded = decode(ours)
    if len(features):
        np.testing.assert_array_equal(decoded.features, features)
        np.testing.assert_array_equal(decoded.labels, labels)
    else:
        assert decoded.features.shape == (0, 0)


@settings(max_examples=60, deadline=None)
@given(sparse_cases())
def test_sparse_round_trips_and_matches_the_sdk(case: tuple[Any, np.ndarray | None]) -> None:
    matrix, labels = case
    ours = encode_sparse(matrix, labels)
    assert ours == sdk_sparse(matrix, labels)
    decoded = decode(ours, feature_dim=matrix.shape[1])  # the width even of no rows
    np.testing.assert_array_equal(decoded.features, matrix.toarray())
    assert decoded.features.dtype == matrix.dtype or not len(decoded)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5))))
def test_float_bits_round_trip_exactly_nan_payloads_included(features: np.ndarray) -> None:
    decoded = decode(encode_dense(features)).features
    assert decoded.view(np.uint32).tolist() == features.view(np.uint32).tolist()


@settings(max_examples=40, deadline=None)
@given(dense_cases(), st.integers(1, 7), st.integers(1, 64))
def test_streamed_batches_are_the_whole_decode_cut_in_order(
    case: tuple[np.ndarray, np.ndarray | None], batch_size: int, read_size: int
) -> None:
    features, labels = case
    data = encode_dense(features, labels)
    batches = list(protobuf.iter_records(ShortReads(data, read_size), batch_size))
    assert [len(batch) for batch in batches] == chunk_sizes(len(features), batch_size)
    if batches:
        whole = decode(data)
        np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), whole.features)
        if whole.labels is not None:
            np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), whole.labels)


def chunk_sizes(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


class ShortReads(io.RawIOBase):
    """A stream that hands out at most `most` bytes a read, as a pipe may."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most, self.position = data, most, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.most if size < 0 else min(size, self.most)
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


# --- layouts other writers may produce ---------------------------------------------------


def test_records_with_uid_metadata_and_other_keys_decode_like_plain_ones() -> None:
    plain = [dense_record([float(i), 1.0], label=float(i)) for i in range(6)]
    odd = dense_record([6.0, 1.0], label=6.0, uid="row-6", metadata='{"a": 1}')
    odd.features["other"].float64_tensor.values.extend([9.0, 9.0, 9.0])
    odd.label["score"].float32_tensor.values.extend([0.5])
    more = [dense_record([float(i), 1.0], label=float(i)) for i in range(7, 12)]
    decoded = decode(framed(*plain, odd, *more))
    assert decoded.features.tolist() == [[float(i), 1.0] for i in range(12)]
    assert decoded.labels is not None
    assert decoded.labels.tolist() == [float(i) for i in range(12)]


def test_unpacked_values_and_fields_out_of_order_decode() -> None:
    values = np.array([1.5, -2.0], "<f4").tobytes()
    unpacked = field(1, 5, values[:4]) + field(1, 5, values[4:])  # one fixed32 field a value
    shape_first = field(3, 2, b"\x02") + field(1, 2, values)
    label = field(2, 2, field(1, 2, b"values") + field(2, 2, field(3, 2, field(1, 1, bytes(8)))))
    data = b"".join(
        recordio.encode_frame(message)
        for message in (
            features_entry(unpacked),
            label + features_entry(shape_first),  # label first, shape before values
        )
    )
    with pytest.raises(InputFormatError, match="label"):  # one has a label, one not
        decode(data)
    both = recordio.encode_frame(features_entry(unpacked) + label) + recordio.encode_frame(
        label + features_entry(shape_first)
    )
    decoded = decode(both)
    assert decoded.features.tolist() == [[1.5, -2.0], [1.5, -2.0]]
    assert decoded.labels is not None
    assert decoded.labels.tolist() == [0.0, 0.0]


def test_unpacked_int32_values_decode_negative_ones_too() -> None:
    numbers = [5, -3, 2**31 - 1, -(2**31)]
    tensor = b"".join(field(1, 0, reference_varint(n % 2**64)) for n in numbers)
    data = recordio.encode_frame(features_entry(tensor, kind=7))
    assert decode(data).features.tolist() == [numbers]


def test_multi_part_records_decode() -> None:
    # An aligned magic inside the message makes MXNet's writer split the record.
    features = np.frombuffer(MAGIC_BYTES * 2, "<f4").reshape(1, 2)
    message = recordio.record_data(encode_dense(features))
    split = recordio.encode_record(message)
    assert split != encode_dense(features)  # more than one frame
    data = encode_dense(np.ones((3, 2), np.float32)) + split + encode_dense(features)
    decoded = decode(data)
    np.testing.assert_array_equal(
        decoded.features, np.vstack([np.ones((3, 2)), features, features])
    )


def test_sparse_rows_without_shape_need_feature_dim() -> None:
    keys = field(2, 2, b"\x01\x04")
    message = features_entry(field(1, 2, np.array([5.0, 6.0], "<f4").tobytes()) + keys)
    data = recordio.encode_frame(message)
    error = error_of(lambda: decode(data))
    assert "feature_dim" in str(error)
    assert (error.record_index, error.byte_offset) == (0, 0)
    assert decode(data, feature_dim=6).features.tolist() == [[0, 5.0, 0, 0, 6.0, 0]]


def test_vector_labels_come_back_a_row_each() -> None:
    records = []
    for i in range(4):
        record = dense_record([float(i)])
        record.label["values"].float64_tensor.values.extend([i, i + 0.5, -i])
        records.append(record)
    decoded = decode(framed(*records))
    assert decoded.labels is not None
    assert decoded.labels.tolist() == [[i, i + 0.5, -i] for i in range(4)]


def test_rows_of_int32_and_float_values_mix_into_float64() -> None:
    record = Record()
    record.features["values"].int32_tensor.values.extend([-3, 2**31 - 1])
    decoded = decode(framed(dense_record([0.5, 1.5]), record))
    assert decoded.features.dtype == np.float64
    assert decoded.features.tolist() == [[0.5, 1.5], [-3.0, 2**31 - 1]]


def test_zero_width_rows_and_empty_input() -> None:
    empty_rows = np.zeros((3, 0), np.float32)
    assert encode_dense(empty_rows) == sdk_dense(empty_rows)
    assert decode(encode_dense(empty_rows)).features.shape == (3, 0)
    nothing = decode(b"")
    assert nothing.features.shape == (0, 0)
    assert nothing.labels is None
    assert decode(b"", feature_dim=4).features.shape == (0, 4)
    assert list(protobuf.iter_records(io.BytesIO(b""), 10)) == []


def test_run_and_per_record_paths_agree_on_a_long_mixed_stream() -> None:
    # Long runs of dense rows (cut out whole) broken by odd records (parsed one by one).
    features = RNG.normal(size=(3000, 5)).astype(np.float32)
    labels = RNG.normal(size=3000)
    records = read_records(io.BytesIO(sdk_dense(features, labels)))
    for index in (0, 1, 700, 1500, 2999):
        records[index].uid = f"odd-{index}"
    data = framed(*records)
    for decoded in (decode(data), *protobuf.iter_records(io.BytesIO(data), 3000)):
        np.testing.assert_array_equal(decoded.features, features)
        np.testing.assert_array_equal(decoded.labels, labels)


@pytest.mark.parametrize("labelled", [False, True])
def test_small_groups_and_runs_decode_the_same(
    monkeypatch: pytest.MonkeyPatch, labelled: bool
) -> None:
    # How many bytes are parsed at once bounds memory; it must not change the result.
    dense = RNG.normal(size=(300, 20)).astype(np.float32)
    sparse = sp.random(300, 20, density=0.2, format="csr", dtype=np.float32, random_state=5)
    labels = np.arange(300.0) if labelled else None
    data = encode_dense(dense, labels) + encode_sparse(sparse, labels)
    whole = decode(data)
    monkeypatch.setattr(protobuf, "_GROUP_BYTES", 200)
    small = decode(data)
    np.testing.assert_array_equal(small.features, np.vstack([dense, sparse.toarray()]))
    np.testing.assert_array_equal(small.features, whole.features)
    if labelled:
        np.testing.assert_array_equal(small.labels, np.concatenate([labels, labels]))


# --- streaming --------------------------------------------------------------------------


def test_streaming_reads_ahead_only_about_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protobuf, "CHUNK_BYTES", 4096)
    data = encode_dense(np.ones((20_000, 10), np.float32))
    stream = io.BytesIO(data)
    batches = protobuf.iter_records(stream, 100)
    first = next(batches)
    assert len(first) == 100
    assert stream.tell() <= 2 * 4096  # memory follows the batch, not the stream
    assert sum(len(batch) for batch in batches) == 19_900


def test_streaming_a_record_larger_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protobuf, "CHUNK_BYTES", 16)
    features = RNG.normal(size=(3, 5000))
    batches = list(protobuf.iter_records(ShortReads(encode_dense(features), 1000), 2))
    assert [len(batch) for batch in batches] == [2, 1]
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), features)


def test_batches_hold_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        next(protobuf.iter_records(io.BytesIO(b""), 0))


def test_widths_must_agree_across_streamed_batches() -> None:
    data = encode_dense(np.ones((4, 3))) + encode_dense(np.ones((2, 5)))
    error = error_of(lambda: list(protobuf.iter_records(io.BytesIO(data), 2)))
    assert (error.record_index, error.byte_offset) == (4, offsets_of(data)[4])


# --- errors name the record and its offset -----------------------------------------------


@pytest.mark.parametrize("reader", ["decode", "iter_records"])
def test_truncated_data_names_the_cut_record(reader: str) -> None:
    data = encode_dense(np.ones((5, 4), np.float32))
    cut = data[: offsets_of(data)[3] + 10]
    error = error_of(lambda: read_all(reader, cut))
    assert "truncated" in str(error)
    assert (error.record_index, error.byte_offset) == (3, offsets_of(data)[3])


@pytest.mark.parametrize("reader", ["decode", "iter_records"])
def test_a_bad_magic_names_the_record(reader: str) -> None:
    data = bytearray(encode_sparse(sp.csr_matrix(np.eye(6, dtype=np.float32))))
    start = offsets_of(bytes(data))[4]
    data[start] ^= 0xFF
    error = error_of(lambda: read_all(reader, bytes(data)))
    assert "magic" in str(error)
    assert (error.record_index, error.byte_offset) == (4, start)


def read_all(reader: str, data: bytes) -> list[protobuf.DecodedRecords]:
    if reader == "decode":
        return [decode(data)]
    return list(protobuf.iter_records(ShortReads(data, 7), 2))


def bad_record_at_2(message: bytes) -> tuple[bytes, int]:
    """Dense records with `message` as record 2; also record 2's offset."""
    good = encode_dense(np.ones((2, 3), np.float32))
    return good + recordio.encode_frame(message) + good, len(good)


BAD_MESSAGES = {
    "unknown wire type 7": features_entry(b"") + b"\x0f",
    "unknown wire type 6": b"\x0e" + features_entry(b""),
    "truncated message": features_entry(b"")[:-1],
    'no features "values"': features_entry(field(1, 2, bytes(12)), key=b"vals"),
    "holds bytes": features_entry(field(1, 2, b"x"), kind=9),
    "not 4-byte floats": features_entry(field(1, 2, bytes(10))),
    "keys end in the middle of a varint": features_entry(
        field(1, 2, bytes(4)) + field(2, 2, b"\x81") + field(3, 2, b"\x03")
    ),
    "keys hold a varint longer than 10 bytes": features_entry(
        field(1, 2, bytes(4)) + field(2, 2, b"\x80" * 10 + b"\x01") + field(3, 2, b"\x03")
    ),
    "3 keys for 2 values": features_entry(
        field(1, 2, bytes(8)) + field(2, 2, b"\x00\x01\x02") + field(3, 2, b"\x03")
    ),
    "key 3 is outside a row 3 wide": features_entry(
        field(1, 2, bytes(4)) + field(2, 2, b"\x03") + field(3, 2, b"\x03")
    ),
    "hold 2 values, but their shape says 3": features_entry(
        field(1, 2, bytes(8)) + field(3, 2, b"\x03")
    ),
    "features are 4 wide, but the rows before are 3": features_entry(field(1, 2, bytes(16))),
    "varint at byte": b"\x0a\xff\xff",
    "record has a label, but the records before it do not": features_entry(field(1, 2, bytes(12)))
    + field(2, 2, field(1, 2, b"values") + field(2, 2, field(2, 2, field(1, 2, bytes(4))))),
}


@pytest.mark.parametrize("problem", list(BAD_MESSAGES))
def test_a_bad_message_names_the_record_and_its_offset(problem: str) -> None:
    data, offset = bad_record_at_2(BAD_MESSAGES[problem])
    for read in (lambda: decode(data), lambda: list(protobuf.iter_records(io.BytesIO(data), 3))):
        error = error_of(read)
        assert problem in str(error)
        assert (error.record_index, error.byte_offset) == (2, offset)
        assert f"record 2, byte offset {offset}" in str(error)


def test_rows_of_different_widths_name_the_first_odd_row() -> None:
    data = (
        encode_dense(np.ones((3, 4)))
        + encode_dense(np.ones((1, 2)))
        + encode_dense(np.ones((3, 4)))
    )
    error = error_of(lambda: decode(data))
    assert "features are 2 wide, but the rows before are 4" in str(error)
    assert (error.record_index, error.byte_offset) == (3, offsets_of(data)[3])


def test_feature_dim_is_the_width_every_row_must_have() -> None:
    dense = encode_dense(np.ones((2, 4), np.float32))
    error = error_of(lambda: decode(dense, feature_dim=5))
    assert (error.record_index, error.byte_offset) == (0, 0)
    sparse = encode_sparse(sp.csr_matrix(np.eye(3, dtype=np.float32)))
    error = error_of(lambda: decode(sparse, feature_dim=4))
    assert "features are 3 wide, but feature_dim is 4" in str(error)


def test_labels_must_be_on_every_record_or_none() -> None:
    data = encode_dense(np.ones((2, 2)), np.ones(2)) + encode_dense(np.ones((1, 2)))
    error = error_of(lambda: decode(data))
    assert "has no label" in str(error)
    assert (error.record_index, error.byte_offset) == (2, offsets_of(data)[2])


# --- encoding errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.ones(3), None, "2-D"),
        (np.ones((2, 2), np.float16), None, "unsupported dtype"),
        (np.ones((2, 2), bool), None, "unsupported dtype"),
        (np.array([[2**31]]), None, "fit int32"),
        (np.ones((2, 2)), np.ones(3), "one a row"),
        (np.ones((2, 2)), np.ones((2, 1)), "one a row"),
    ],
)
def test_encode_dense_refuses_what_the_format_cannot_hold(
    features: np.ndarray, labels: np.ndarray | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_dense(features, labels)


@pytest.mark.parametrize(
    ("indptr", "indices", "message"),
    [
        ([1, 2], [0, 1], "start at 0"),
        ([0, 2, 1], [0, 1], "never decrease"),
        ([0, 3], [0, 1], "indptr ends at 3"),
        ([0, 2], [0, 9], "feature_dim=4"),
    ],
)
def test_encode_csr_checks_its_arrays(indptr: list[int], indices: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_csr(indptr, indices, np.ones(len(indices)), 4)


# --- no runtime dependencies ----------------------------------------------------------------


def test_the_codec_imports_neither_protobuf_nor_scipy() -> None:
    source = Path(protobuf.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "itertools",
        "sys",
        "collections",
        "dataclasses",
        "math",
        "typing",
        "numpy",
        "batchform",
    }
