"""SageMaker's RecordIO-protobuf (application/x-recordio-protobuf), without protobuf.

Each record is one RecordIO record (see `recordio`) holding an `aialgs.data.Record`, the
message of the sagemaker SDK's record.proto:

    Record   { map<string, Value> features = 1; map<string, Value> label = 2;
               optional string uid = 3; metadata = 4; configuration = 5 }
    Value    { oneof { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                       Int32Tensor int32_tensor = 7; Bytes bytes = 9 } }
    <T>Tensor{ repeated <float|double|int32> values = 1 [packed];
               repeated uint64 keys = 2 [packed]; repeated uint64 shape = 3 [packed] }

A row's features are the tensor under features["values"], its label the one under
label["values"]. A tensor with keys is sparse: values[i] sits at column keys[i] of a row
as wide as its shape (the product of shape, for higher ranks).

The encoders write the bytes of the SDK's write_numpy_to_dense_tensor and
write_spmatrix_to_sparse_tensor exactly: a single-frame record a row, fields in number
order, empty repeated fields left out. The decoder reads any valid encoding (packed or
not, fields in any order, unknown fields skipped) and is fast on the common case, runs of
records laid out alike: dense float rows differ only in their values, so a run of them is
checked against its first record and cut out with numpy, with no Python work a record.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, BinaryIO, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from batchform.errors import InputFormatError
from batchform.records import recordio

Array = npt.NDArray[Any]
Buffer = bytes | bytearray | memoryview

CHUNK_BYTES = 4 << 20
"""Bytes iter_records reads at a time (more while a record is larger)."""

# record.proto's field numbers, and protobuf's wire types
_FEATURES, _LABEL = 1, 2
_MAP_KEY, _MAP_VALUE = 1, 2
_FLOAT32, _FLOAT64, _INT32, _BYTES = 2, 3, 7, 9
_VALUES, _KEYS, _SHAPE = 1, 2, 3
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5

_FLOATS: dict[int, np.dtype[Any]] = {_FLOAT32: np.dtype("<f4"), _FLOAT64: np.dtype("<f8")}
_ELEMENT_WIRE = {_FLOAT32: _FIXED32, _FLOAT64: _FIXED64, _INT32: _VARINT}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_VALUES_KEY = b"values"


@dataclass(frozen=True)
class DecodedRecords:
    """Records as arrays: `features` a dense row each (float32, or float64 when any record
    holds float64 or int32 values); `labels` a value each (a row each when labels are
    vectors), in the tensor's type, or None when the records have no label."""

    features: Array
    labels: Array | None = None

    def __len__(self) -> int:
        return len(self.features)


class CSRMatrix(Protocol):
    """A matrix in compressed sparse row form, as scipy.sparse.csr_matrix is."""

    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def indptr(self) -> Array: ...
    @property
    def indices(self) -> Array: ...
    @property
    def data(self) -> Array: ...


class SparseMatrix(Protocol):
    """Any scipy.sparse matrix (or array): all encode_sparse needs is `tocsr()`."""

    def tocsr(self) -> CSRMatrix: ...


# --- encoding ---------------------------------------------------------------------------


def encode_dense(features: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> bytes:
    """One record a row of a 2-D array, with one label a row if given.

    The tensor type follows the dtype, as the SDK's: float32, float64, and int32 for
    integers (numpy's default int64 included; values must fit int32).
    """
    matrix = np.asarray(features)
    if matrix.ndim != 2:
        raise ValueError(f"features must be a 2-D array, got {matrix.ndim} dimensions")
    rows, width = matrix.shape
    table = _Table(_column(matrix.reshape(-1), np.arange(rows + 1) * width), _labels(labels, rows))
    if rows and all(column.kind in _FLOATS for column in table.columns()):
        return _tiled_records(table, rows)
    return _records(table, rows)


def encode_sparse(matrix: SparseMatrix, labels: npt.ArrayLike | None = None) -> bytes:
    """One sparse record a row of a scipy.sparse matrix (anything with `tocsr()`)."""
    csr = matrix.tocsr()
    return encode_csr(csr.indptr, csr.indices, csr.data, csr.shape[1], labels)


def encode_csr(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    values: npt.ArrayLike,
    feature_dim: int,
    labels: npt.ArrayLike | None = None,
) -> bytes:
    """One sparse record a row given in CSR form: row i holds values[indptr[i]:indptr[i+1]]
    at columns indices[indptr[i]:indptr[i+1]], in a row feature_dim wide."""
    bounds = np.asarray(indptr, dtype=np.int64)
    keys, flat = np.asarray(indices), np.asarray(values)
    _check_csr(bounds, keys, flat, feature_dim)
    rows = len(bounds) - 1
    key_column = _varint_column(keys.astype(np.uint64), bounds)
    shape = _varint(feature_dim)
    return _records(_Table(_column(flat, bounds), _labels(labels, rows), key_column, shape), rows)


def _check_csr(bounds: Array, keys: Array, values: Array, feature_dim: int) -> None:
    if bounds.ndim != 1 or len(bounds) == 0 or bounds[0] != 0 or (np.diff(bounds) < 0).any():
        raise ValueError("indptr must start at 0 and never decrease")
    if not len(keys) == len(values) == bounds[-1]:
        raise ValueError(
            f"indptr ends at {bounds[-1]}, but there are {len(keys)} indices and "
            f"{len(values)} values"
        )
    if len(keys) and (keys.min() < 0 or keys.max() >= feature_dim):
        raise ValueError(f"indices must lie in [0, feature_dim={feature_dim})")


class _Column(NamedTuple):
    """One tensor field's packed payloads for every row, end to end."""

    kind: int  # the Value field of its tensor type
    payload: bytes
    bounds: list[int]  # row i's payload is payload[bounds[i]:bounds[i + 1]]

    def row(self, index: int) -> bytes:
        return self.payload[self.bounds[index] : self.bounds[index + 1]]


class _Table(NamedTuple):
    """What the records of an encode hold, row by row."""

    features: _Column
    labels: _Column | None
    keys: _Column | None = None  # sparse rows only
    shape: bytes = b""  # sparse rows only: the packed feature_dim

    def columns(self) -> list[_Column]:
        return [self.features] if self.labels is None else [self.features, self.labels]

    def fields(self, row: int) -> list[bytes]:
        """The Record fields of one row: its features entry, then its label entry."""
        keys = self.keys.row(row) if self.keys is not None else b""
        fields = [_entry(_FEATURES, self.features.kind, self.features.row(row), keys, self.shape)]
        if self.labels is not None:
            fields.append(_entry(_LABEL, self.labels.kind, self.labels.row(row)))
        return fields


def _records(table: _Table, rows: int) -> bytes:
    frame = recordio.encode_frame
    return b"".join(frame(b"".join(table.fields(row))) for row in range(rows))


def _tiled_records(table: _Table, rows: int) -> bytes:
    """Records of fixed-width values: each is row 0's with other numbers, so row 0's
    frame is copied a row and every row's values are poured into their columns at once."""
    fields = table.fields(0)
    template = recordio.encode_frame(b"".join(fields))
    out = np.empty((rows, len(template)), np.uint8)
    out[:] = np.frombuffer(template, np.uint8)
    end = recordio.HEADER_SIZE
    for field, column in zip(fields, table.columns(), strict=True):
        end += len(field)  # a dense tensor's packed values are the last bytes of its field
        width = column.bounds[1]
        out[:, end - width : end] = np.frombuffer(column.payload, np.uint8).reshape(rows, width)
    return out.tobytes()


def _entry(field: int, kind: int, values: bytes, keys: bytes = b"", shape: bytes = b"") -> bytes:
    """A map entry {"values": Value{<kind> tensor}}, as Record field `field`."""
    tensor = _packed(_VALUES, values) + _packed(_KEYS, keys) + _packed(_SHAPE, shape)
    value = _length_delimited(kind, tensor)
    return _length_delimited(field, _ENTRY_KEY + _length_delimited(_MAP_VALUE, value))


def _packed(field: int, payload: bytes) -> bytes:
    # protobuf writes no field at all for an empty repeated field
    return _length_delimited(field, payload) if payload else b""


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _varint(number: int) -> bytes:
    """One base-128 varint: seven bits a byte, least significant first, high bit = more."""
    if number < 0x80:
        return _ONE_BYTE_VARINTS[number]
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_ONE_BYTE_VARINTS = [bytes((number,)) for number in range(0x80)]
_ENTRY_KEY = _length_delimited(_MAP_KEY, _VALUES_KEY)


def _column(values: Array, row_bounds: Array) -> _Column:
    """The tensor payloads of rows whose values are values[row_bounds[i]:row_bounds[i+1]]."""
    kind = _tensor_kind(values.dtype)
    if kind == _INT32:
        # negative int32s are written sign-extended to 64 bits, as protobuf does
        return _varint_column(_int32(values).astype(np.int64).view(np.uint64), row_bounds, kind)
    dtype = _FLOATS[kind]
    return _Column(kind, values.astype(dtype).tobytes(), (row_bounds * dtype.itemsize).tolist())


def _varint_column(numbers: Array, row_bounds: Array, kind: int = _INT32) -> _Column:
    encoded, lengths = _encode_varints(numbers)
    ends = np.concatenate(([0], np.cumsum(lengths)))
    return _Column(kind, encoded.tobytes(), ends[row_bounds].tolist())


def _labels(labels: npt.ArrayLike | None, rows: int) -> _Column | None:
    if labels is None:
        return None
    vector = np.asarray(labels)
    if vector.shape != (rows,):
        raise ValueError(f"labels must be a vector of {rows} (one a row), got shape {vector.shape}")
    return _column(vector, np.arange(rows + 1))


def _tensor_kind(dtype: np.dtype[Any]) -> int:
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return _FLOAT32 if dtype.itemsize == 4 else _FLOAT64
    if dtype.kind in "iu":
        return _INT32
    raise ValueError(f"unsupported dtype {dtype}: use float32, float64 or an integer type")


def _int32(values: Array) -> Array:
    if values.size and not _INT32_MIN <= int(values.min()) <= int(values.max()) <= _INT32_MAX:
        raise ValueError("integer values must fit int32, the type of SageMaker's Int32Tensor")
    return values


def _encode_varints(numbers: Array) -> tuple[Array, Array]:
    """Every uint64 as a varint, end to end (uint8), and each one's length in bytes."""
    numbers = numbers.astype(np.uint64, copy=False)
    lengths = np.ones(len(numbers), np.int64)
    for group in range(1, 10):
        lengths += numbers >= np.uint64(1 << 7 * group)
    longest = int(lengths.max(initial=1))
    # a row a number, a column a byte of its varint; then the bytes each one has, in order
    table = np.empty((len(numbers), longest), np.uint8)
    for group in range(longest):
        bits = (numbers >> np.uint64(7 * group)).astype(np.uint8) & 0x7F
        table[:, group] = bits | (lengths > group + 1).astype(np.uint8) << 7
    return table[np.arange(longest) < lengths[:, None]], lengths


# --- decoding ---------------------------------------------------------------------------

_RUN_RETRY = 1024
"""Records parsed in lock step after a failed try at a run, before the next try."""
_GROUP_BYTES = 4 << 20
"""Bytes of records parsed (or of a run cut) at once: bounds the temporary arrays."""


def decode(data: Buffer, feature_dim: int | None = None) -> DecodedRecords:
    """Every record of `data`, which must hold whole records.

    Sparse rows are made dense, as wide as their tensor's shape says or, for rows that
    say nothing, as `feature_dim`; given, feature_dim is also the width every row must have.
    Raises InputFormatError naming the record (index and byte offset) at fault.
    """
    decoder = _Decoder(feature_dim)
    blocks, end, count = decoder.take(data, 0, sys.maxsize, 0, 0)
    if end < len(data):
        raise _truncated(len(data) - end, count, end)
    return decoder.combine(blocks)


def iter_records(
    stream: BinaryIO, batch_size: int, feature_dim: int | None = None
) -> Iterator[DecodedRecords]:
    """The records of a stream in batches of `batch_size` (the last may hold fewer),
    reading about CHUNK_BYTES at a time: memory follows the batch size, not the stream's.
    The rules and errors are decode's, records numbered and offsets counted from the start.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    decoder = _Decoder(feature_dim)
    buffer, position, offset, index = b"", 0, 0, 0
    pending: list[_Block] = []
    wanted, read_size, at_end = batch_size, CHUNK_BYTES, False
    while True:
        blocks, position, count = decoder.take(buffer, position, wanted, offset, index)
        pending += blocks
        index, wanted = index + count, wanted - count
        if wanted == 0:
            yield decoder.combine(pending)
            pending, wanted = [], batch_size
            continue
        if at_end:
            break
        # a record larger than a chunk: read more at a time, so its bytes are copied O(1) times
        read_size = read_size * 2 if position < len(buffer) and not count else CHUNK_BYTES
        chunk = stream.read(read_size)
        at_end = not chunk
        buffer, offset, position = buffer[position:] + chunk, offset + position, 0
    if position < len(buffer):
        raise _truncated(len(buffer) - position, index, offset + position)
    if pending:
        yield decoder.combine(pending)


class _Block(NamedTuple):
    features: Array
    labels: Array | None


class _Where(NamedTuple):
    """Where the records of a block are: the first one's index, and each one's offset."""

    first_index: int
    offsets: Array

    def error(self, message: str, row: int) -> InputFormatError:
        offset = int(self.offsets[row])
        return InputFormatError(message, record_index=self.first_index + row, byte_offset=offset)

    def row(self, row: int) -> _Where:
        return _Where(self.first_index + row, self.offsets[row : row + 1])


class _Columns(NamedTuple):
    """The tensors of consecutive records, a field at a time: each field's bytes for every
    record end to end (uint8), and how many bytes of it each record has."""

    kinds: Array
    values: Array
    value_sizes: Array
    keys: Array
    key_sizes: Array
    shapes: Array
    shape_sizes: Array

    def __len__(self) -> int:
        return len(self.kinds)


class _Parsed(NamedTuple):
    """Consecutive records parsed: their features, and the labels of those with one."""

    where: _Where
    features: _Columns
    labels: _Columns | None
    has_label: Array


class _Decoder:
    """Records to blocks of rows, keeping what all rows must agree on: their width, whether
    they have a label, and the labels' width."""

    def __init__(self, feature_dim: int | None) -> None:
        self.feature_dim = feature_dim
        self.width = feature_dim
        self.has_labels: bool | None = None
        self.label_width: int | None = None

    def take(
        self, buf: Buffer, start: int, limit: int, base_offset: int, first_index: int
    ) -> tuple[list[_Block], int, int]:
        """Up to `limit` whole records from buf[start:] as blocks of rows; also where it
        stopped (the end, or a record buf holds only part of) and how many it took.

        Runs of records laid out alike are cut out whole (see _Run); the others are
        framed one by one and parsed in lock step, a group at a time."""
        group = _Group(buf, base_offset)
        blocks: list[_Block] = []
        position, count, next_try = start, 0, 0
        while count < limit:
            end = _record_end(buf, position, base_offset, first_index + count)
            if end is None:
                break
            if count >= next_try:
                run_blocks, records, run_end = self._run(
                    buf, position, end, limit - count, group, first_index + count
                )
                blocks += run_blocks
                if records:
                    position, count = run_end, count + records
                    next_try = count
                    continue
                next_try = count + _RUN_RETRY
            group.add(position, end, first_index + count)
            position, count = end, count + 1
            if group.size() > _GROUP_BYTES:
                blocks += [self._assemble(part) for part in group.parse()]
        blocks += [self._assemble(part) for part in group.parse()]
        return blocks, position, count

    def _run(
        self, buf: Buffer, start: int, end: int, limit: int, group: _Group, index: int
    ) -> tuple[list[_Block], int, int]:
        """A run of records from buf[start] on, if the record there starts one: the
        blocks (the group's before it), how many records it holds and where it ends."""
        model = _parse(buf, start, end, group.base_offset, index)
        run = _Run.like(model, buf)
        count = run.length(buf, end, limit - 1) if run is not None else 0
        if run is None or not count:
            return [], 0, start
        blocks = [self._assemble(part) for part in group.parse()]
        blocks.append(self._assemble(_parsed_records([model])))  # checks the model's layout
        blocks.append(run.cut(buf, end, count))
        return blocks, 1 + count, end + count * run.size

    def combine(self, blocks: list[_Block]) -> DecodedRecords:
        if not blocks:
            return DecodedRecords(np.empty((0, self.width or 0), np.float32))
        if len(blocks) == 1:
            return DecodedRecords(*blocks[0])
        features = np.concatenate([block.features for block in blocks])
        labels = [block.labels for block in blocks if block.labels is not None]
        return DecodedRecords(features, np.concatenate(labels) if labels else None)

    def _assemble(self, part: _Parsed) -> _Block:
        features, self.width = _dense(part.features, part.where, self.width, self.feature_dim)
        if features.dtype.kind != "f":
            features = features.astype(np.float64)  # int32 features: exact in float64
        return _Block(features, self._labels(part))

    def _labels(self, part: _Parsed) -> Array | None:
        if self.has_labels is None:
            self.has_labels = bool(part.has_label[0])
        odd = _first(part.has_label != self.has_labels)
        if odd is not None:
            state, before = ("has no", "do") if self.has_labels else ("has a", "do not")
            message = f"record {state} label, but the records before it {before}"
            raise part.where.error(message, odd)
        if part.labels is None:
            return None
        labels, self.label_width = _dense(part.labels, part.where, self.label_width, None, "labels")
        return labels[:, 0] if self.label_width == 1 else labels


def _record_end(buf: Buffer, start: int, base_offset: int, index: int) -> int | None:
    try:
        return recordio.record_end(buf, start, base_offset)
    except InputFormatError as exc:
        raise type(exc)(exc.detail, record_index=index, byte_offset=exc.byte_offset) from None


def _truncated(available: int, index: int, offset: int) -> InputFormatError:
    return InputFormatError(
        f"truncated record: the data ends {available} bytes into it",
        record_index=index,
        byte_offset=offset,
    )


# --- runs of records laid out alike -------------------------------------------------------


class _Run(NamedTuple):
    """Records framed and laid out byte for byte like a model record but for their
    values: dense float tensors, as SageMaker's writers lay them out row after row."""

    model: Array  # the model record's bytes, frame and padding included
    columns: tuple[tuple[int, int, np.dtype[Any]], ...]  # its features' (and label's) values

    @property
    def size(self) -> int:
        return len(self.model)

    @classmethod
    def like(cls, record: _Record, buf: Buffer) -> _Run | None:
        tensors = [record.features] if record.label is None else [record.features, record.label]
        if not record.single_frame or not all(map(_cuttable, tensors)):
            return None
        header = recordio.HEADER_SIZE
        columns = tuple(
            (header + tensor.span[0], header + tensor.span[1], _FLOATS[tensor.kind])
            for tensor in tensors
            if tensor.span is not None
        )
        model = np.frombuffer(buf, np.uint8, record.end - record.start, record.start)
        return cls(model.copy(), columns)

    def length(self, buf: Buffer, start: int, limit: int) -> int:
        """How many records from buf[start] on are like the model (at most limit)."""
        most = min((len(buf) - start) // self.size, _GROUP_BYTES // self.size + 1, limit)
        frames = self._frames(buf, start, most)
        alike = np.ones(len(frames), bool)
        spans = sorted((first, last) for first, last, _ in self.columns)
        bounds = [0, *(bound for span in spans for bound in span)]
        for first, last in zip(bounds[::2], [*bounds[1::2], self.size], strict=True):
            alike &= (frames[:, first:last] == self.model[first:last]).all(axis=1)
        return len(frames) if alike.all() else int(np.argmin(alike))

    def cut(self, buf: Buffer, start: int, count: int) -> _Block:
        frames = self._frames(buf, start, count)
        arrays = [
            np.ascontiguousarray(frames[:, first:last]).view(dtype).astype(dtype.newbyteorder("="))
            for first, last, dtype in self.columns
        ]
        labels = arrays[1] if len(arrays) > 1 else None
        if labels is not None and labels.shape[1] == 1:
            labels = labels[:, 0]
        return _Block(arrays[0], labels)

    def _frames(self, buf: Buffer, start: int, count: int) -> Array:
        return np.frombuffer(buf, np.uint8, count * self.size, start).reshape(count, self.size)


def _cuttable(tensor: _Tensor) -> bool:
    """Whether the tensor is a dense float row whose values lie in one piece."""
    if tensor.kind not in _FLOATS or tensor.span is None or tensor.keys:
        return False
    dims = _varints(tensor.shape)
    return not dims or prod(dims) == len(tensor.values) // _FLOATS[tensor.kind].itemsize


# --- records parsed in lock step ----------------------------------------------------------


class _Group:
    """Records framed but not parsed yet, to be parsed together."""

    def __init__(self, buf: Buffer, base_offset: int) -> None:
        self.buf, self.base_offset = buf, base_offset
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.first_index = 0

    def add(self, start: int, end: int, index: int) -> None:
        if not self.starts:
            self.first_index = index
        self.starts.append(start)
        self.ends.append(end)

    def size(self) -> int:
        return self.ends[-1] - self.starts[0] if self.starts else 0

    def parse(self) -> list[_Parsed]:
        """The group's records, parsed; the group is empty afterwards."""
        if not self.starts:
            return []
        starts, ends = np.array(self.starts), np.array(self.ends)
        self.starts, self.ends = [], []
        return _parse_group(self.buf, starts, ends, self.base_offset, self.first_index)


def _parse_group(
    buf: Buffer, starts: Array, ends: Array, base_offset: int, first_index: int
) -> list[_Parsed]:
    """Records parsed in lock step where laid out as SageMaker writes them, one by one
    (in Python) where not; in consecutive parts, in order."""
    data = np.frombuffer(buf, np.uint8)
    # the frames were checked by recordio: only their cflag and length are read again here
    lrec = sum(data[starts + 4 + byte].astype(np.int64) << 8 * byte for byte in range(4))
    message_starts = starts + recordio.HEADER_SIZE
    message_ends = message_starts + (lrec & recordio.MAX_RECORD_SIZE)
    cursor = _LockStep(data, message_starts, lrec <= recordio.MAX_RECORD_SIZE)
    features = cursor.entry(_FEATURES, message_ends, cursor.ok.copy())
    has_label = cursor.at_field(_LABEL, message_ends, cursor.ok.copy())
    labels = cursor.entry(_LABEL, message_ends, has_label)
    cursor.ok &= cursor.position == message_ends
    parts = []
    for first, last, ok in _segments(cursor.ok):
        where = _Where(first_index + first, base_offset + starts[first:last])
        if not ok:
            records = [
                _parse(buf, int(starts[row]), int(ends[row]), base_offset, first_index + row)
                for row in range(first, last)
            ]
            parts.append(_parsed_records(records))
            continue
        labelled = first + np.flatnonzero(has_label[first:last])
        label_columns = labels.columns(data, labelled) if len(labelled) else None
        rows = np.arange(first, last)
        parts.append(_Parsed(where, features.columns(data, rows), label_columns, has_label[rows]))
    return parts


class _Spans(NamedTuple):
    """A map entry's tensor in each of many messages: its type, and where its values,
    keys and shape lie in the data (start and stop arrays)."""

    kinds: Array
    fields: tuple[tuple[Array, Array], ...]

    def columns(self, data: Array, rows: Array) -> _Columns:
        gathered = [_gather(data, starts[rows], stops[rows]) for starts, stops in self.fields]
        return _Columns(self.kinds[rows], *(array for pair in gathered for array in pair))


class _LockStep:
    """Cursors in many messages at once, reading them as SageMaker's writers lay them out:
    each field once, in number order, and no others. A message laid out otherwise gets
    `ok` False, to be parsed on its own; positions of such messages mean nothing."""

    def __init__(self, data: Array, starts: Array, active: Array) -> None:
        self.data = data
        self.position = starts.copy()
        self.ok = active.copy()

    def entry(self, field: int, ends: Array, active: Array) -> _Spans:
        """Reads map field `field`'s entry {"values": Value{tensor}} where active."""
        self._expect(bytes([_tag(field)]), active)
        entry_end = self._length_delimited(active, ends)
        self._expect(_ENTRY_KEY + bytes([_tag(_MAP_VALUE)]), active)
        value_end = self._length_delimited(active, entry_end)
        tensor_tag = self._byte()
        self.ok &= ~active | np.isin(tensor_tag, [_tag(_FLOAT32), _tag(_FLOAT64), _tag(_INT32)])
        self.position += active
        tensor_end = self._length_delimited(active, value_end)
        self.ok &= ~active | ((value_end == entry_end) & (tensor_end == entry_end))
        fields = tuple(self._optional(number, tensor_end, active) for number in (1, 2, 3))
        self.ok &= ~active | (self.position == tensor_end)
        return _Spans(tensor_tag >> 3, fields)

    def at_field(self, field: int, ends: Array, active: Array) -> Array:
        found: Array = active & (self.position < ends) & (self._byte() == _tag(field))
        return found

    def _optional(self, field: int, ends: Array, active: Array) -> tuple[Array, Array]:
        present = self.at_field(field, ends, active)
        self.position += present
        stops = self._length_delimited(present, ends)
        starts = self.position.copy()
        self.position = np.where(present, stops, self.position)
        return starts, np.where(present, stops, starts)

    def _expect(self, expected: bytes, active: Array) -> None:
        for index, byte in enumerate(expected):
            self.ok &= ~active | (self._byte(index) == byte)
        self.position += active * len(expected)

    def _length_delimited(self, active: Array, ends: Array) -> Array:
        """Reads a length where active: the payload's end, which must be within `ends`."""
        length, done = np.zeros(len(active), np.int64), np.zeros(len(active), bool)
        size = np.zeros(len(active), np.int64)
        for index in range(5):  # lengths of RecordIO records take at most 5 bytes
            byte = self._byte(index)
            length |= np.where(done, 0, (byte & 0x7F).astype(np.int64) << 7 * index)
            size += ~done
            done |= byte < 0x80
        self.ok &= ~active | done
        self.position += np.where(active, size, 0)
        stops = self.position + length
        self.ok &= ~active | (stops <= ends)
        return stops

    def _byte(self, ahead: int = 0) -> Array:
        byte: Array = self.data[np.minimum(self.position + ahead, len(self.data) - 1)]
        return byte


def _gather(data: Array, starts: Array, stops: Array) -> tuple[Array, Array]:
    """data[starts[i]:stops[i]] for every i, end to end, and their sizes."""
    sizes = stops - starts
    shifts = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    return data[np.arange(len(shifts)) + shifts], sizes


def _segments(mask: Array) -> list[tuple[int, int, bool]]:
    """(start, stop, value) of each run of equal values in mask."""
    cuts = [0, *(np.flatnonzero(mask[1:] != mask[:-1]) + 1).tolist(), len(mask)]
    return [(first, last, bool(mask[first])) for first, last in itertools.pairwise(cuts)]


def _tag(field: int) -> int:
    return field << 3 | _LENGTH_DELIMITED


# --- records parsed one by one ----------------------------------------------------------


class _Tensor(NamedTuple):
    kind: int
    values: bytes  # packed, in the tensor type's wire encoding
    keys: bytes  # packed varints; empty for a dense tensor
    shape: bytes  # packed varints
    span: tuple[int, int] | None  # where `values` lies in the message, if all in one piece


class _Record(NamedTuple):
    start: int  # in the buffer
    end: int
    where: _Where
    features: _Tensor
    label: _Tensor | None
    single_frame: bool  # its message right after its frame's header: spans are offsets + 8


def _parse(buf: Buffer, start: int, end: int, base_offset: int, index: int) -> _Record:
    with memoryview(buf) as view:
        data = recordio.record_data(view[start:end])
    where = _Where(index, np.array([base_offset + start]))
    try:
        features, label = _parse_record(data)
    except InputFormatError as exc:
        raise where.error(exc.detail, 0) from None
    single_frame = end - start == recordio.HEADER_SIZE + (len(data) + 3 & ~3)
    return _Record(start, end, where, features, label, single_frame)


def _parsed_records(records: list[_Record]) -> _Parsed:
    where = _Where(records[0].where.first_index, np.array([r.where.offsets[0] for r in records]))
    labels = [record.label for record in records if record.label is not None]
    has_label = np.array([record.label is not None for record in records])
    label_columns = _columns_of(labels) if labels else None
    return _Parsed(
        where, _columns_of([record.features for record in records]), label_columns, has_label
    )


def _columns_of(tensors: Sequence[_Tensor]) -> _Columns:
    fields: list[Array] = []
    for pieces in (
        [t.values for t in tensors],
        [t.keys for t in tensors],
        [t.shape for t in tensors],
    ):
        sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
        fields += [np.frombuffer(bytearray().join(pieces), np.uint8), sizes]  # writable
    return _Columns(np.array([tensor.kind for tensor in tensors]), *fields)


def _parse_record(data: bytes) -> tuple[_Tensor, _Tensor | None]:
    """The tensors under features["values"] and label["values"] (the label's: if any)."""
    found: dict[int, _Tensor | None] = {_FEATURES: None, _LABEL: None}
    for number, wire, start, end in _fields(data, 0, len(data)):
        if number in found and wire == _LENGTH_DELIMITED:
            value = _values_entry(data, start, end)
            if value is not None:  # a later entry for a key replaces an earlier one
                found[number] = _parse_value(data, *value, "features" if number == 1 else "label")
    features = found[_FEATURES]
    if features is None:
        raise InputFormatError('the record has no features "values" tensor')
    return features, found[_LABEL]


def _values_entry(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Where a map entry's Value lies, when its key is "values"."""
    key, value = b"", (end, end)  # fields left out hold their defaults: "", an empty Value
    for number, wire, field_start, field_end in _fields(data, start, end):
        if wire == _LENGTH_DELIMITED and number == _MAP_KEY:
            key = data[field_start:field_end]
        elif wire == _LENGTH_DELIMITED and number == _MAP_VALUE:
            value = (field_start, field_end)
    return value if key == _VALUES_KEY else None


def _parse_value(data: bytes, start: int, end: int, name: str) -> _Tensor:
    kind, span = None, (end, end)
    for number, wire, field_start, field_end in _fields(data, start, end):
        if wire == _LENGTH_DELIMITED and number in (_FLOAT32, _FLOAT64, _INT32, _BYTES):
            kind, span = number, (field_start, field_end)  # a oneof: the last one wins
    if kind is None or kind == _BYTES:
        held = "no tensor" if kind is None else "bytes"
        raise InputFormatError(
            f'{name} "values" holds {held}, not a float32, float64 or int32 tensor'
        )
    return _parse_tensor(data, kind, *span)


def _parse_tensor(data: bytes, kind: int, start: int, end: int) -> _Tensor:
    pieces: dict[int, list[tuple[int, int]]] = {_VALUES: [], _KEYS: [], _SHAPE: []}
    unpacked = {_VALUES: _ELEMENT_WIRE[kind], _KEYS: _VARINT, _SHAPE: _VARINT}
    for number, wire, field_start, field_end in _fields(data, start, end):
        # repeated scalars may come packed (one length-delimited field) or one a field
        if number in pieces and wire in (_LENGTH_DELIMITED, unpacked[number]):
            pieces[number].append((field_start, field_end))
    values, keys, shape = (b"".join(data[a:b] for a, b in pieces[field]) for field in pieces)
    span = pieces[_VALUES][0] if len(pieces[_VALUES]) == 1 else None
    return _Tensor(kind, values, keys, shape, span)


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(number, wire type, start, end) of each field of the message in data[start:end]:
    a length-delimited field's span is its payload's, other fields' their value's bytes."""
    position = start
    while position < end:
        tag, value_start = _read_varint(data, position, end)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value_end = _read_varint(data, value_start, end)[1]
        elif wire in (_FIXED64, _FIXED32):
            value_end = value_start + (8 if wire == _FIXED64 else 4)
        elif wire == _LENGTH_DELIMITED:
            length, value_start = _read_varint(data, value_start, end)
            value_end = value_start + length
        else:
            raise InputFormatError(
                f"unknown wire type {wire} (field {number}) at byte {position} of the message"
            )
        if value_end > end:
            raise InputFormatError(
                f"truncated message: field {number} at byte {position} runs "
                f"{value_end - end} bytes past the end of its message"
            )
        yield number, wire, value_start, value_end
        position = value_end


def _varints(data: bytes) -> list[int]:
    numbers, position = [], 0
    while position < len(data):
        number, position = _read_varint(data, position, len(data))
        numbers.append(number)
    return numbers


def _read_varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    number = 0
    for index in range(position, min(end, position + 10)):
        byte = data[index]
        number |= (byte & 0x7F) << 7 * (index - position)
        if byte < 0x80:
            return number, index + 1
    problem = "is cut off" if end - position < 10 else "is longer than 10 bytes"
    raise InputFormatError(f"the varint at byte {position} of the message {problem}")


# --- rows from tensors ------------------------------------------------------------------


def _dense(
    columns: _Columns,
    where: _Where,
    expected: int | None,
    sparse_width: int | None,
    name: str = "features",
) -> tuple[Array, int]:
    """The tensors as the rows of a matrix, and its width: `expected` when given, else
    the first row's. `sparse_width` is feature_dim: the width of sparse rows without a
    shape, and when given, of every row."""
    values, counts = _values(columns, where, name)
    keyed = columns.key_sizes > 0
    declared = _declared_widths(columns, where, name)
    widths = np.where(
        declared >= 0,
        declared,
        np.where(keyed, -1 if sparse_width is None else sparse_width, counts),
    )
    _check_widths(widths, declared, keyed, counts, where, name)
    width = int(widths[0]) if expected is None else expected
    bad = _first(widths != width)
    if bad is not None:
        origin = "the rows before are" if sparse_width is None else "feature_dim is"
        raise where.error(f"{name} are {widths[bad]} wide, but {origin} {width}", bad)
    rows = len(columns)
    if not keyed.any() and (counts == width).all():
        return values.reshape(rows, width), width
    positions = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
    if keyed.any():
        positions[np.repeat(keyed, counts)] = _keys(columns, where, keyed, counts, width, name)
    matrix = np.zeros((rows, width), values.dtype)
    matrix[np.repeat(np.arange(rows), counts), positions] = values
    return matrix, width


def _check_widths(
    widths: Array, declared: Array, keyed: Array, counts: Array, where: _Where, name: str
) -> None:
    bad = _first(widths < 0)
    if bad is not None:
        hint = ": pass feature_dim" if name == "features" else ""
        raise where.error(f"sparse {name} have no shape{hint}", bad)
    bad = _first(~keyed & (declared >= 0) & (counts != 0) & (counts != declared))
    if bad is not None:
        message = f"{name} hold {counts[bad]} values, but their shape says {declared[bad]}"
        raise where.error(message, bad)


def _values(columns: _Columns, where: _Where, name: str) -> tuple[Array, Array]:
    """Every record's values end to end, and how many each has."""
    kinds = np.unique(columns.kinds)
    if len(kinds) == 1:
        return _typed_values(int(kinds[0]), columns.values, columns.value_sizes, where, name)
    # rare: records of mixed types, decoded one by one
    ends = np.cumsum(columns.value_sizes)
    parts = [
        _typed_values(
            int(kind), columns.values[end - size : end], np.array([size]), where.row(row), name
        )
        for row, (kind, size, end) in enumerate(
            zip(columns.kinds, columns.value_sizes, ends, strict=True)
        )
    ]
    return np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])


def _typed_values(
    kind: int, data: Array, sizes: Array, where: _Where, name: str
) -> tuple[Array, Array]:
    if kind == _INT32:
        numbers, counts = _flat_varints(data, sizes, where, f"{name} values")
        return numbers.view(np.int64).astype(np.int32), counts
    dtype = _FLOATS[kind]
    bad = _first(sizes % dtype.itemsize != 0)
    if bad is not None:
        message = f"{name} values are {sizes[bad]} bytes, not {dtype.itemsize}-byte floats"
        raise where.error(message, bad)
    return data.view(dtype).astype(dtype.newbyteorder("="), copy=False), sizes // dtype.itemsize


def _declared_widths(columns: _Columns, where: _Where, name: str) -> Array:
    """Each record's width as its shape says (the product of its dims), or -1."""
    dims, counts = _flat_varints(columns.shapes, columns.shape_sizes, where, f"{name} shape")
    widths = np.full(len(columns), -1, np.int64)
    has = counts > 0
    if has.any():
        starts = (np.cumsum(counts) - counts)[has]
        widths[has] = np.multiply.reduceat(dims.astype(np.int64), starts)
    return widths


def _keys(
    columns: _Columns, where: _Where, keyed: Array, counts: Array, width: int, name: str
) -> Array:
    """The keys of the keyed records end to end, checked: one a value, each in the row."""
    keys, key_counts = _flat_varints(columns.keys, columns.key_sizes, where, f"{name} keys")
    bad = _first(keyed & (key_counts != counts))
    if bad is not None:
        message = f"{name} have {key_counts[bad]} keys for {counts[bad]} values"
        raise where.error(message, bad)
    bad = _first(keys >= width)
    if bad is not None:
        row = int(np.searchsorted(np.cumsum(key_counts), bad, side="right"))
        raise where.error(f"{name} key {keys[bad]} is outside a row {width} wide", row)
    return keys.astype(np.int64)


def _flat_varints(data: Array, sizes: Array, where: _Where, what: str) -> tuple[Array, Array]:
    """The varints of every record's piece of data, end to end (uint64), and how many
    each piece holds."""
    if not len(data):
        return np.zeros(0, np.uint64), np.zeros(len(sizes), np.int64)
    last = data < 0x80
    piece_ends = np.cumsum(sizes)
    bad = _first((sizes > 0) & ~last[np.maximum(piece_ends - 1, 0)])
    if bad is not None:
        raise where.error(f"{what} end in the middle of a varint", bad)
    ends = np.flatnonzero(last)
    lengths = np.diff(ends, prepend=-1)
    bad = _first(lengths > 10)
    if bad is not None:
        row = int(np.searchsorted(piece_ends, ends[bad], side="right"))
        raise where.error(f"{what} hold a varint longer than 10 bytes", row)
    if len(ends) == len(data):  # all one byte long, as small keys and shapes are
        numbers = data.astype(np.uint64)
    else:  # each byte's seven bits moved to their place in its varint, then or-ed together
        starts = ends - lengths + 1
        places = np.arange(len(data)) - np.repeat(starts, lengths)
        bits = (data & 0x7F).astype(np.uint64) << (7 * places).astype(np.uint64)
        numbers = np.bitwise_or.reduceat(bits, starts)
    seen = np.concatenate(([0], np.cumsum(last)))
    return numbers, np.diff(seen[np.concatenate(([0], piece_ends))])


def _first(mask: Array) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None
