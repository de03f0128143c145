"""Numeric CSV blocks → float64 rows, at numpy speed, naming the line of any bad row.

Training reads gigabytes of CSV; a per-row Python loop (or np.loadtxt, ~10 MB/s) would
cost more than the algorithm. The fast path works on whole blocks of lines with vector
operations: find every field separator, then read the digits of all fields at once, one
character position per step (a field of up to 15 digits takes at most 17 steps). Values
are exact: the digits form an integer below 2**53 and one division by a power of ten
(at most 10**15) rounds once, as a correct decimal parser does.

Fields the fast path does not read (exponents, nan, spaces, more than 15 digits) fall
back to np.loadtxt for that block; a block that loadtxt refuses too is scanned line by
line only to say which line and field are wrong.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from batchform.errors import InputFormatError

Array = npt.NDArray[Any]

_COMMA, _NEWLINE, _MINUS, _DOT, _ZERO = (ord(c) for c in ",\n-.0")
_MAX_DIGITS = 15  # 10**15 < 2**53: the digits of a field are an exact float64 integer
_POW10 = 10.0 ** np.arange(_MAX_DIGITS + 1)
_UNSIGNED_BYTES = b"0123456789,\n"
_DECIMAL_BYTES = _UNSIGNED_BYTES + b"-."
_BLANK_LINES = re.compile(rb"\n{2,}")


def parse_csv(
    block: bytes, columns: int, *, where: str, first_line: int = 1, meaning: str = ""
) -> Array:
    """Whole lines of numeric CSV → (rows, columns) float64 array.

    `where` names the data in errors (a file name), `first_line` is the line number of
    the block's first line, `meaning` says where the column count comes from (appended
    to the message, e.g. " (feature_dim=64)"). Blank lines are skipped. Raises
    InputFormatError naming the first line with the wrong number of fields or a field
    that is not a finite number.
    """
    text = _normalised(block)
    if not text:
        return np.empty((0, columns), dtype=np.float64)
    values = _parse_fast(text, columns)
    if values is None:
        values = _parse_loadtxt(text, columns)
    if values is None or not np.isfinite(values).all():
        raise _first_bad_line(block, columns, where, first_line, meaning)
    return values


def count_fields(line: bytes) -> int:
    """Fields in one CSV line (a serving payload's first line fixes its width)."""
    return line.count(b",") + 1


def _normalised(block: bytes) -> bytes:
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    if not block.endswith(b"\n"):
        block += b"\n"
    if block.startswith(b"\n") or b"\n\n" in block:
        block = _BLANK_LINES.sub(b"\n", block).lstrip(b"\n")
    return block


def _parse_fast(text: bytes, columns: int) -> Array | None:
    """The vector path; None when some field is not a plain decimal it can read."""
    unsigned = not text.translate(None, _UNSIGNED_BYTES)
    if not unsigned and text.translate(None, _DECIMAL_BYTES):
        return None
    chars = np.frombuffer(text, dtype=np.uint8)
    rows = text.count(b"\n")
    if unsigned and len(text) == 2 * rows * columns:
        return _read_single_digits(chars, rows, columns)
    ends = np.flatnonzero((chars == _COMMA) | (chars == _NEWLINE))
    if not _rectangular(chars, ends, rows, columns):
        return None
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    lengths = ends - starts
    read = _read_unsigned if unsigned else _read_decimals
    values = read(chars, starts, lengths)
    return None if values is None else values.reshape(-1, columns)


def _rectangular(chars: Array, ends: Array, rows: int, columns: int) -> bool:
    """Every line has exactly `columns` fields: rows x columns separators, of which
    each columns-th is a newline (and, there being `rows` newlines, no other is)."""
    if ends.size != rows * columns:
        return False
    return bool((chars[ends[columns - 1 :: columns]] == _NEWLINE).all())


def _read_single_digits(chars: Array, rows: int, columns: int) -> Array | None:
    """Lines like '0,1,0\\n', a digit then a separator: strided views, no search.

    Only digits and separators are present (checked by the caller), so the block is
    this layout exactly when even positions hold digits and odd ones the separators."""
    digits = chars[0::2].reshape(rows, columns) - _ZERO
    separators = chars[1::2].reshape(rows, columns)
    if (digits >= 10).any() or (separators[:, :-1] != _COMMA).any():
        return None
    if (separators[:, -1] != _NEWLINE).any():
        return None
    return digits.astype(np.float64)


def _read_unsigned(chars: Array, starts: Array, lengths: Array) -> Array | None:
    longest = int(lengths.max())
    if lengths.min() == 0 or longest > _MAX_DIGITS:
        return None  # an empty field, or more digits than float64 holds exactly
    if longest == 1:  # one digit a field: a 0/1 or small-count matrix, the common case
        return (chars[starts] - _ZERO).astype(np.float64)
    values = np.zeros(starts.size)
    last = chars.size - 1
    for k in range(longest):
        digits = chars[np.minimum(starts + k, last)] - _ZERO
        values = np.where(lengths > k, values * 10 + digits, values)
    return values


def _read_decimals(chars: Array, starts: Array, lengths: Array) -> Array | None:
    """Fields like -12.50: an optional leading minus, digits, at most one point."""
    state = _DecimalState(starts.size)
    last = chars.size - 1
    for k in range(int(lengths.max())):
        inside = lengths > k
        if not state.step(chars[np.minimum(starts + k, last)], inside, first=k == 0):
            return None
    return state.values()


class _DecimalState:
    """Per-field reading state of _read_decimals, one array element per field."""

    def __init__(self, fields: int) -> None:
        self.mantissa = np.zeros(fields)
        self.digits = np.zeros(fields, dtype=np.int64)
        self.fraction_digits = np.zeros(fields, dtype=np.int64)
        self.after_point = np.zeros(fields, dtype=bool)
        self.negative = np.zeros(fields, dtype=bool)

    def step(self, chars: Array, inside: Array, *, first: bool) -> bool:
        """Read one more character of every field; False when a field is malformed."""
        minus = (chars == _MINUS) & inside
        point = (chars == _DOT) & inside
        if (not first and minus.any()) or (point & self.after_point).any():
            return False
        digit = chars - _ZERO
        is_digit = (digit < 10) & inside
        self.mantissa = np.where(is_digit, self.mantissa * 10 + digit, self.mantissa)
        self.digits += is_digit
        self.fraction_digits += is_digit & self.after_point
        self.after_point |= point
        self.negative |= minus
        return True

    def values(self) -> Array | None:
        if self.digits.min() == 0 or self.digits.max() > _MAX_DIGITS:
            return None
        values: Array = self.mantissa / _POW10[self.fraction_digits]
        np.negative(values, out=values, where=self.negative)
        return values


def _parse_loadtxt(text: bytes, columns: int) -> Array | None:
    try:
        values = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        return None
    return values if values.shape[1] == columns else None


def _first_bad_line(
    block: bytes, columns: int, where: str, first_line: int, meaning: str
) -> InputFormatError:
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        problem = _line_problem(line.rstrip(b"\r"), columns, meaning)
        if problem:
            return InputFormatError(f"{where}, line {number}: {problem}")
    return InputFormatError(f"{where}: lines from {first_line} on are not numeric CSV")


def _line_problem(line: bytes, columns: int, meaning: str) -> str | None:
    if not line.strip():
        return None
    fields = line.split(b",")
    if len(fields) != columns:
        return f"found {len(fields)} columns, expected {columns}{meaning}"
    for column, field in enumerate(fields, start=1):
        if not _is_finite_number(field):
            shown = field.decode("utf-8", "replace")[:40]
            return f"column {column} is {shown!r}, not a finite number"
    return None


def _is_finite_number(field: bytes) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False
