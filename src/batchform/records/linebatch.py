"""DataProcessing's common case on whole batches of lines, without a Python step per record.

Most batches are plain: no blank lines, no carriage returns, and for CSV no quotes and the
same number of fields on every row. Then an index path keeps the same fields of every row
and a join pairs the n-th input line with the n-th output line, so both can run on the
whole payload as numpy byte arrays: find every separator, mark the bytes to keep, copy
them out. That is a few C passes over the payload whatever its record count, and numpy
lets other threads run meanwhile (requests in flight keep moving). Anything else gets None
back and takes the per-record path in `dataprocessing`, which handles quoting and blank
lines and names the record at fault.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import numpy.typing as npt

from batchform.errors import InputFormatError
from batchform.records.jsonpath import JsonPath

_NEWLINE = ord("\n")
_COMMA = ord(",")
_BLANKS = tuple(b" \t\x0b\x0c")  # what bytes.strip() removes, less "\r" and "\n"

Bytes = npt.NDArray[np.uint8]
Positions = npt.NDArray[np.intp]


class _Rows:
    """A payload as a byte array with a final newline, and where each row starts and ends."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.terminated = payload.endswith(b"\n")
        # A missing final newline is added (one copy, only for an object's last batch),
        # so every row, the last one too, ends at a newline byte.
        self.data: Bytes = np.frombuffer(payload if self.terminated else payload + b"\n", np.uint8)
        self.ends: Positions = np.flatnonzero(self.data == _NEWLINE)
        self.starts: Positions = np.concatenate(([0], self.ends[:-1] + 1))

    def __len__(self) -> int:
        return len(self.ends)

    def all_records(self) -> bool:
        """True when no row is blank or whitespace only (bytes.strip() would empty it)."""
        if np.any(self.ends == self.starts):
            return False
        first = self.data[self.starts]
        # Only rows that begin with a blank can be all blanks; those few are checked whole.
        suspects = np.flatnonzero(np.isin(first, _BLANKS)).tolist()
        return all(self.row(index).strip() for index in suspects)

    def row(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.ends[index]].tobytes()

    def framed(self, data: Bytes) -> bytes:
        """Bytes of `data` (newline-terminated rows) with the payload's own ending."""
        out = data.tobytes()
        return out if self.terminated else out[:-1]


# The rows of the batch this thread last prepared: its finish, next on the same thread,
# joins onto the same payload and need not scan it for newlines again.
_prepared = threading.local()


def _input_rows(payload: bytes, *, keep: bool) -> _Rows:
    """The rows of a batch's payload, scanned once for its prepare and finish together."""
    rows: _Rows | None = getattr(_prepared, "rows", None)
    if rows is None or rows.payload is not payload:  # identity: the very same batch
        rows = _Rows(payload)
    _prepared.rows = rows if keep else None
    return rows


def all_records(payload: bytes, *, batch_input: bool = False) -> bool:
    """True when every line of the payload is a record: the per-record path would keep all.

    `batch_input` marks a batch's own payload, whose rows `join_lines` will need next.
    """
    if not payload or b"\r" in payload:
        return False
    return _input_rows(payload, keep=batch_input).all_records()


def join_lines(inputs: bytes, outputs: bytes) -> bytes | None:
    """`<input line>,<output line>\\n` for each pair, or None unless both are plain and even."""
    if not inputs or not outputs or b"\r" in inputs or b"\r" in outputs:
        return None
    left, right = _input_rows(inputs, keep=False), _Rows(outputs)
    if len(left) != len(right) or not (left.all_records() and right.all_records()):
        return None
    # Rows laid out alternately, input then output, by a mask of the bytes that come from
    # the input; then each input row's newline, now before its output row, becomes ",".
    lengths = np.stack((left.ends - left.starts + 1, right.ends - right.starts + 1), axis=1)
    from_input = np.repeat(np.tile([True, False], len(left)), lengths.ravel())
    joined: Bytes = np.empty(len(left.data) + len(right.data), dtype=np.uint8)
    joined[from_input] = left.data
    joined[np.logical_not(from_input, out=from_input)] = right.data
    joined[left.ends + right.starts] = _COMMA
    return joined.tobytes()


def select_fields(path: JsonPath, payload: bytes, *, batch_input: bool = False) -> bytes | None:
    """`path` applied to every CSV row of a payload at once, newline framing kept.

    None when the payload has quotes or carriage returns, when its rows differ in width
    (or a row could be blank), when the path asks for a field the rows do not have or
    keeps nothing, and when it reorders fields: the per-record path deals with those.
    `batch_input` marks a batch's own payload, whose rows `join_lines` will need next.
    """
    if not payload or b'"' in payload or b"\r" in payload:
        return None
    rows = _input_rows(payload, keep=batch_input)
    fields = _Fields.of(rows)
    if fields is None:
        return None
    try:
        spans = path.field_spans(fields.width)
    except InputFormatError:
        return None  # the per-record path reports it, naming the record
    if not spans or any(start < stop for (_, stop), (start, _) in itertools.pairwise(spans)):
        return None
    return rows.framed(rows.data[fields.kept(spans)])


class _Fields:
    """Where the fields of every row are, when all rows have the same number of fields."""

    def __init__(self, rows: _Rows, commas: Positions) -> None:
        self.rows = rows
        self.commas = commas  # (rows, width - 1): the commas of each row, in order
        self.width = commas.shape[1] + 1

    @classmethod
    def of(cls, rows: _Rows) -> _Fields | None:
        """None unless every row has the same number of fields, at least two (none blank)."""
        commas = np.flatnonzero(rows.data == _COMMA)
        if not len(commas) or len(commas) % len(rows):
            return None
        per_row = commas.reshape(len(rows), -1)
        # Commas are in order, so when each row's first and last comma of its group lie
        # inside that row, every row holds exactly its group: the widths are all equal.
        if np.all(per_row[:, 0] >= rows.starts) and np.all(per_row[:, -1] < rows.ends):
            return cls(rows, per_row)
        return None

    def separator(self, field: int) -> Positions:
        """Each row's separator just before `field`: its comma; for field 0 the byte before
        the row, for field `width` the row's newline. A field runs from after its
        separator up to the next one."""
        if field == 0:
            return self.rows.starts - 1
        return self.rows.ends if field == self.width else self.commas[:, field - 1]

    def kept(self, spans: list[tuple[int, int]]) -> npt.NDArray[np.bool_]:
        """A mask of the bytes to keep: each span (with the comma before it, after the
        first) and the row's newline. Each row alternates dropped and kept runs of bytes."""
        edges = np.empty((len(self.rows), 2 * len(spans) + 3), dtype=np.intp)
        edges[:, 0] = self.rows.starts
        for index, (start, stop) in enumerate(spans):
            # The first span starts at its first field, later ones at the comma before it.
            edges[:, 2 * index + 1] = self.separator(start) + (index == 0)
            edges[:, 2 * index + 2] = self.separator(stop)
        edges[:, -2] = self.rows.ends
        edges[:, -1] = self.rows.ends + 1
        keep = np.tile([False, True], len(self.rows) * (len(spans) + 1))
        return np.repeat(keep, np.diff(edges, axis=1).ravel())
