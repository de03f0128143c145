"""SageMaker's JSONPath subset for DataProcessing filters, compiled once per job.

Supported (SageMaker's table): `$`, `.name`, `*`, `['a','b']`, `[n]`, `[n,m,...]` with
negative indexes, `[start:end]` with either bound left out. Also accepted, as an
extension SageMaker rejects: several ranges in one bracket (`$[0,3:5,-1]`).

Slice ends are inclusive, as SageMaker's examples state (`$[1:4]` is "the second through
fifth columns"); see docs/data-processing.md for why.

Paths made only of names and single indexes are *definite* and select one value;
anything with `*`, a range or several indexes selects a list, as in Jayway JsonPath
(the library SageMaker's documentation points to). `['a','b']` selects one object
holding those keys, which is how `$['id','SageMakerOutput']` keeps both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from batchform.errors import InputFormatError, SpecValidationError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Name:
    key: str


@dataclass(frozen=True, slots=True)
class _Names:
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Index:
    position: int


@dataclass(frozen=True, slots=True)
class _Range:
    start: int | None
    end: int | None  # inclusive


@dataclass(frozen=True, slots=True)
class _Elements:
    selectors: tuple[_Index | _Range, ...]


_Segment = _Name | _Names | _Wildcard | _Elements


class JsonPath:
    """A compiled filter expression; `apply` on JSON values, `apply_fields` on CSV rows."""

    __slots__ = ("_definite", "_selects_fields", "_spans", "expression", "segments")

    def __init__(self, expression: str, segments: tuple[_Segment, ...]) -> None:
        self.expression = expression
        self.segments = segments
        self._definite = all(_is_definite(segment) for segment in segments)
        self._selects_fields = len(segments) <= 1 and all(
            isinstance(segment, _Wildcard | _Elements) for segment in segments
        )
        # Rows of one file nearly always have one width: plan the slices once per width.
        self._spans: dict[int, list[tuple[int, int]]] = {}

    def __repr__(self) -> str:
        return f"JsonPath({self.expression!r})"

    @property
    def is_identity(self) -> bool:
        """True for `$`: the filter keeps everything."""
        return not self.segments

    @property
    def selects_fields(self) -> bool:
        """True when the path only picks positions, so it can apply to a CSV row."""
        return self._selects_fields

    def apply(self, value: object) -> object:
        """The part of a JSON value the path selects; InputFormatError if it is not there."""
        matches = [value]
        for segment in self.segments:
            matches = [found for item in matches for found in self._select(segment, item)]
        return matches[0] if self._definite else matches

    def apply_fields(self, fields: Sequence[T]) -> list[T]:
        """The fields of one CSV row the path selects (index and slice paths only)."""
        spans = self.field_spans(len(fields))
        if len(spans) == 1:  # the common `$[1:]`: one C-level slice
            return list(fields[spans[0][0] : spans[0][1]])
        selected: list[T] = []
        for start, stop in spans:
            selected.extend(fields[start:stop])
        return selected

    def field_spans(self, width: int) -> list[tuple[int, int]]:
        """The (start, stop) slices the path keeps of a row of `width` fields, in order.

        Planned once per width and cached; InputFormatError for an index out of range.
        """
        spans = self._spans.get(width)
        if spans is None:
            spans = self._spans[width] = self._plan_spans(width)
        return spans

    def _plan_spans(self, width: int) -> list[tuple[int, int]]:
        """The selected positions of a row of `width` fields, as (start, stop) slices."""
        if not self._selects_fields:
            raise ValueError(f"{self.expression} selects by name and cannot filter CSV fields")
        segment = self.segments[0] if self.segments else None
        if not isinstance(segment, _Elements):  # `$`, `$.*` or `$[*]`: every field
            return [(0, width)]
        spans: list[tuple[int, int]] = []
        for position in self._resolve(segment, width):
            if spans and spans[-1][1] == position:
                spans[-1] = (spans[-1][0], position + 1)
            else:
                spans.append((position, position + 1))
        return spans

    def _select(self, segment: _Segment, value: object) -> list[object]:
        if isinstance(segment, _Name):
            return [self._member(value, segment.key)]
        if isinstance(segment, _Names):
            return [{key: self._member(value, key) for key in segment.keys}]
        if isinstance(segment, _Wildcard):
            return self._children(value)
        elements = self._array(value)
        return [elements[position] for position in self._resolve(segment, len(elements))]

    def _member(self, value: object, key: str) -> object:
        if not isinstance(value, dict):
            raise self._mismatch(f"expected an object holding key '{key}', found {_kind(value)}")
        if key not in value:
            raise self._mismatch(f"key '{key}' not found")
        return value[key]

    def _children(self, value: object) -> list[object]:
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return value
        raise self._mismatch(f"'*' needs an object or an array, found {_kind(value)}")

    def _array(self, value: object) -> list[object]:
        if not isinstance(value, list):
            raise self._mismatch(f"expected an array to index, found {_kind(value)}")
        return value

    def _resolve(self, segment: _Elements, length: int) -> list[int]:
        positions: list[int] = []
        for selector in segment.selectors:
            if isinstance(selector, _Index):
                positions.append(self._position(selector.position, length))
            else:
                positions.extend(_range_positions(selector, length))
        return positions

    def _position(self, index: int, length: int) -> int:
        # SageMaker: "If you specify indexes that aren't within the dimension size ... you
        # get an error", so no silent skipping of a column the user asked for.
        position = index + length if index < 0 else index
        if not 0 <= position < length:
            raise self._mismatch(f"index {index} is out of range for {length} elements")
        return position

    def _mismatch(self, detail: str) -> InputFormatError:
        return InputFormatError(f"JSONPath {self.expression}: {detail}")


def _range_positions(selector: _Range, length: int) -> range:
    """Inclusive on both ends; bounds outside the array are clamped (may be empty)."""
    start = 0 if selector.start is None else _absolute(selector.start, length)
    end = length - 1 if selector.end is None else _absolute(selector.end, length)
    return range(max(start, 0), min(end, length - 1) + 1)


def _absolute(index: int, length: int) -> int:
    return index + length if index < 0 else index


def _is_definite(segment: _Segment) -> bool:
    if isinstance(segment, _Name | _Names):
        return True
    if isinstance(segment, _Elements):
        return len(segment.selectors) == 1 and isinstance(segment.selectors[0], _Index)
    return False


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else f"the value {value!r}"


def compile_path(expression: str, field: str = "dataProcessing.inputFilter") -> JsonPath:
    """Parse `expression`; a syntax error names `field` and the 0-based position."""
    return JsonPath(expression, _Parser(expression, field).parse())


class _Parser:
    """A recursive-descent parser over the expression's characters."""

    def __init__(self, text: str, field: str) -> None:
        self.text = text
        self.field = field
        self.pos = 0

    def parse(self) -> tuple[_Segment, ...]:
        if not self.text.startswith("$"):
            raise self.error("a path must start with '$'")
        self.pos = 1
        segments: list[_Segment] = []
        while self.pos < len(self.text):
            segments.append(self.segment())
        return tuple(segments)

    def segment(self) -> _Segment:
        char = self.text[self.pos]
        if char == "[":
            return self.bracket()
        if char != ".":
            raise self.error(f"unexpected character '{char}'")
        self.pos += 1
        if self.peek() == ".":
            raise self.error("deep scan '..' is not supported")
        if self.peek() == "[":  # `$.field.['a','b']` is in SageMaker's examples
            return self.bracket()
        return self.dotted_name()

    def dotted_name(self) -> _Segment:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ".[]'\" \t,:":
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise self.error("expected a name after '.'")
        return _Wildcard() if name == "*" else _Name(name)

    def bracket(self) -> _Segment:
        self.pos += 1  # the "["
        self.skip_spaces()
        char = self.peek()
        if char == "*":
            self.pos += 1
            segment: _Segment = _Wildcard()
        elif char in ("'", '"'):
            segment = self.names()
        elif char == "?":
            raise self.error("filter expressions '?(...)' are not supported")
        else:
            segment = _Elements(self.selectors())
        self.expect("]")
        return segment

    def names(self) -> _Segment:
        keys = [self.quoted()]
        while self.comma():
            if self.peek() not in ("'", '"'):
                raise self.error("cannot mix names and indexes in one bracket")
            keys.append(self.quoted())
        return _Name(keys[0]) if len(keys) == 1 else _Names(tuple(keys))

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1  # a backslash escapes the quote or itself
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise self.error("unterminated quoted name")
        self.pos += 1
        self.skip_spaces()
        return "".join(chars)

    def selectors(self) -> tuple[_Index | _Range, ...]:
        selectors = [self.selector()]
        while self.comma():
            if self.peek() in ("'", '"'):
                raise self.error("cannot mix names and indexes in one bracket")
            selectors.append(self.selector())
        return tuple(selectors)

    def selector(self) -> _Index | _Range:
        start = self.integer()
        if self.peek() != ":":
            if start is None:
                raise self.error("expected an index, a range or a quoted name")
            return _Index(start)
        self.pos += 1
        self.skip_spaces()
        end = self.integer()
        if self.peek() == ":":
            raise self.error("slice steps are not supported")
        return _Range(start, end)

    def integer(self) -> int | None:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        while "0" <= self.peek() <= "9":  # not isdigit(): that accepts "²"
            self.pos += 1
        digits = self.text[start : self.pos]
        if digits in ("", "-"):
            self.pos = start
            if digits == "-":
                raise self.error("expected digits after '-'")
            return None
        self.skip_spaces()
        return int(digits)

    def comma(self) -> bool:
        self.skip_spaces()
        if self.peek() != ",":
            return False
        self.pos += 1
        self.skip_spaces()
        return True

    def expect(self, char: str) -> None:
        self.skip_spaces()
        if self.peek() != char:
            found = f"'{self.peek()}'" if self.peek() else "the end"
            raise self.error(f"expected '{char}', found {found}")
        self.pos += 1

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def error(self, reason: str) -> SpecValidationError:
        rule = f"invalid JSONPath at position {self.pos}: {reason}"
        return SpecValidationError([(self.field, rule, self.text)])
