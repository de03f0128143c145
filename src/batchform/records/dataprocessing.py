"""DataProcessing around each invocation: InputFilter → model → JoinSource → OutputFilter.

Pure: bytes in, bytes out. The engine calls `prepare` on a batch before invoking the
model and `finish` on the model's response; both return the bytes to use instead.

Records: text/csv and application/jsonlines payloads are lines; application/json is one
JSON value per line with SplitType Line and the whole payload with SplitType None. Blank
lines are not records (they would make a join misalign), and record indexes in errors
count lines from the batch's first record, as the splitter numbers them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from batchform.errors import InputFormatError, SpecValidationError
from batchform.records.jsonpath import JsonPath
from batchform.spec.dataprocessing import (
    CSV,
    INPUT_FILTER_FIELD,
    JSON,
    OUTPUT_FILTER_FIELD,
    combination_problems,
    compile_filter,
    media_type,
)
from batchform.spec.enums import JoinSource, SplitType

if TYPE_CHECKING:
    from batchform.records.batch import Batch
    from batchform.spec.transform import DataProcessing

#: What SageMaker adds to a JSON input record, and wraps a non-object input in.
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"


@dataclass(frozen=True, slots=True)
class _Record:
    position: int  # line number within the payload, blank lines included
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordProcessor:
    """DataProcessing of one job, built once by `create` and shared by every batch."""

    input_filter: JsonPath | None
    output_filter: JsonPath | None
    joins: bool
    input_type: str | None
    output_type: str | None
    whole_input: bool

    @classmethod
    def create(
        cls,
        data_processing: DataProcessing | None,
        *,
        content_type: str | None,
        accept: str | None,
        split_type: SplitType,
    ) -> RecordProcessor | None:
        """The processor for these settings, or None when DataProcessing changes nothing."""
        if data_processing is None:
            return None
        problems = combination_problems(
            data_processing,
            content_type=content_type,
            accept=accept,
            split_type=split_type,
            assemble_with=None,
        )
        if problems:
            raise SpecValidationError(problems)
        joins = data_processing.join_source is JoinSource.INPUT
        input_filter = compile_filter(data_processing.input_filter, INPUT_FILTER_FIELD)
        output_filter = compile_filter(data_processing.output_filter, OUTPUT_FILTER_FIELD)
        if input_filter is None and output_filter is None and not joins:
            return None
        input_type = media_type(content_type)
        whole_input = input_type == JSON and split_type is SplitType.NONE
        return cls(input_filter, output_filter, joins, input_type, media_type(accept), whole_input)

    def prepare(self, batch: Batch) -> bytes:
        """The payload to send: InputFilter applied to each record, framing kept."""
        if self.input_filter is None and (self.whole_input or not self.joins):
            return batch.payload
        whole = self._prepare_whole(batch.payload)
        if whole is not None:
            return whole
        records = self._input_records(batch.payload)
        if self.input_filter is not None:
            path = self.input_filter
            chunks = [self._filter_input(path, batch, record) for record in records]
        elif _framed_alike(records, batch.payload):
            return batch.payload
        else:  # a join must see exactly the records the model sees: drop blank lines
            chunks = [record.data for record in records]
        return _frame(chunks, trailing=batch.payload.endswith(b"\n"))

    def finish(self, batch: Batch, response: bytes) -> bytes:
        """The bytes to assemble: joined and OutputFilter-ed records, one per line."""
        whole = self._finish_whole(batch, response)
        if whole is not None:
            return whole
        if self.joins:
            records = self._joined(batch, response)
        elif self.output_filter is not None:
            records = self._filtered(batch, response)
        else:
            return response
        return _frame(records, trailing=True)

    # -- whole batches at once (linebatch), when the batch is plain ------------------------

    def _prepare_whole(self, payload: bytes) -> bytes | None:
        from batchform.records import linebatch  # numpy: loaded by jobs that filter only

        if self.whole_input:
            return None
        # When finish will join these rows whole, the scan for them is kept for it.
        joins_whole = self.joins and self.input_type == CSV and self.output_type == CSV
        if self.input_filter is None:  # a join alone sends the records as they are
            return payload if linebatch.all_records(payload, batch_input=joins_whole) else None
        if self.input_type != CSV:
            return None
        return linebatch.select_fields(self.input_filter, payload, batch_input=joins_whole)

    def _finish_whole(self, batch: Batch, response: bytes) -> bytes | None:
        from batchform.records import linebatch

        if self.output_type != CSV:
            return None
        if self.joins:
            if self.input_type != CSV:
                return None
            joined = linebatch.join_lines(batch.payload, response)
            if joined is None or self.output_filter is None:
                return joined
            return linebatch.select_fields(self.output_filter, joined)
        if self.output_filter is None:
            return None
        filtered = linebatch.select_fields(self.output_filter, response)
        return filtered if filtered is None or filtered.endswith(b"\n") else filtered + b"\n"

    def _joined(self, batch: Batch, response: bytes) -> list[bytes]:
        inputs = self._input_records(batch.payload)
        outputs = self._output_records(batch, response, len(inputs))
        if len(outputs) != len(inputs):
            raise _count_mismatch(batch, len(inputs), len(outputs), self.output_type)
        pairs = zip(inputs, outputs, strict=True)
        return [self._join(batch, record, output) for record, output in pairs]

    def _filtered(self, batch: Batch, response: bytes) -> list[bytes]:
        outputs = self._output_records(batch, response, batch.record_count)
        return [self._filter_output(batch, index, output) for index, output in enumerate(outputs)]

    # -- input side ------------------------------------------------------------------

    def _input_records(self, payload: bytes) -> list[_Record]:
        if self.whole_input:
            return [_Record(0, payload)] if payload.strip() else []
        return _lines(payload)

    def _filter_input(self, path: JsonPath, batch: Batch, record: _Record) -> bytes:
        try:
            if self.input_type == CSV:
                return filter_csv(path, record.data)
            return dump_json(path.apply(load_json(record.data)))
        except InputFormatError as exc:
            raise _located(exc, batch, record) from exc

    # -- output side -----------------------------------------------------------------

    def _output_records(self, batch: Batch, response: bytes, expected: int) -> list[object]:
        """The response cut into one record per input record, as the Accept type frames it."""
        try:
            if self.output_type == CSV:
                return [record.data for record in _lines(response)]
            if self.output_type == JSON:
                return split_json_response(response, expected)
            return [load_json(record.data) for record in _lines(response)]
        except InputFormatError as exc:
            detail = f"cannot parse the model's response as {self.output_type}: {exc.detail}"
            raise InputFormatError(
                detail, record_index=batch.first_record, byte_offset=batch.offset
            ) from exc

    def _join(self, batch: Batch, record: _Record, output: object) -> bytes:
        try:
            if self.input_type == CSV:
                return self._finish_csv(record.data + b"," + self._csv_output(output))
            joined = _join_json(load_json(record.data), self._json_output(output))
            return self._finish_json(joined)
        except InputFormatError as exc:
            raise _located(exc, batch, record) from exc

    def _filter_output(self, batch: Batch, index: int, output: object) -> bytes:
        try:
            if self.output_type == CSV:
                return self._finish_csv(self._csv_output(output))
            return self._finish_json(output)
        except InputFormatError as exc:
            raise InputFormatError(exc.detail, record_index=batch.first_record + index) from exc

    def _csv_output(self, output: object) -> bytes:
        if isinstance(output, bytes) and self.output_type == CSV:
            return output
        return format_csv_record(json_to_fields(output))

    def _json_output(self, output: object) -> object:
        if isinstance(output, bytes) and self.output_type == CSV:
            return csv_to_json(output)
        return output

    def _finish_csv(self, line: bytes) -> bytes:
        return line if self.output_filter is None else filter_csv(self.output_filter, line)

    def _finish_json(self, value: object) -> bytes:
        if self.output_filter is not None:
            value = self.output_filter.apply(value)
        return dump_json(value)


def _join_json(record: object, output: object) -> object:
    """SageMaker's JSON join: add SageMakerOutput to an object, else wrap both."""
    if isinstance(record, dict):
        return {**record, OUTPUT_KEY: output}
    return {INPUT_KEY: record, OUTPUT_KEY: output}


# -- framing -------------------------------------------------------------------------


def _lines(payload: bytes) -> list[_Record]:
    """Non-blank lines without their line ending, numbered by position."""
    pieces = payload.split(b"\n")
    return [
        _Record(position, piece[:-1] if piece.endswith(b"\r") else piece)
        for position, piece in enumerate(pieces)
        if piece.strip()
    ]


def _framed_alike(records: list[_Record], payload: bytes) -> bool:
    """True when the payload has no blank or CRLF lines, so it can be sent untouched."""
    line_count = payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)
    return len(records) == line_count and b"\r" not in payload


def _frame(chunks: list[bytes], *, trailing: bool) -> bytes:
    return b"\n".join(chunks) + (b"\n" if trailing and chunks else b"")


def _line_offset(payload: bytes, position: int) -> int:
    offset = 0
    for _ in range(position):
        offset = payload.index(b"\n", offset) + 1
    return offset


def _located(exc: InputFormatError, batch: Batch, record: _Record) -> InputFormatError:
    return InputFormatError(
        exc.detail,
        record_index=batch.first_record + record.position,
        byte_offset=batch.offset + _line_offset(batch.payload, record.position),
    )


def _count_mismatch(batch: Batch, inputs: int, outputs: int, accept: str | None) -> Exception:
    detail = f"cannot join: the model returned {outputs} records for {inputs} input records"
    if accept == JSON:
        detail += (
            "; an application/json response must hold one JSON value per line, "
            "or one JSON array with an element per input record"
        )
    else:
        detail += f"; a {accept} response must hold one line per input record"
    return InputFormatError(detail, record_index=batch.first_record, byte_offset=batch.offset)


# -- CSV (RFC 4180, one record per line) ----------------------------------------------


def filter_csv(path: JsonPath, line: bytes) -> bytes:
    """Apply an index/slice path to one CSV line."""
    if b'"' not in line:
        # No quotes, so no field holds a comma: a plain split is exact and fast.
        return b",".join(path.apply_fields(line.split(b",")))
    return format_csv_record(path.apply_fields(parse_csv_record(line)))


def split_csv(line: bytes) -> list[bytes]:
    return line.split(b",") if b'"' not in line else parse_csv_record(line)


def parse_csv_record(line: bytes) -> list[bytes]:
    """The unquoted fields of one RFC 4180 line (bytes: UTF-8 never hides a '"' or ',')."""
    fields: list[bytes] = []
    position = 0
    while True:
        if line[position : position + 1] == b'"':
            value, position = _quoted_field(line, position)
            fields.append(value)
            if position == len(line):
                return fields
            if line[position : position + 1] != b",":
                raise InputFormatError(f"CSV field has text after its closing quote at {position}")
            position += 1
            continue
        comma = line.find(b",", position)
        if comma < 0:
            fields.append(line[position:])
            return fields
        fields.append(line[position:comma])
        position = comma + 1


def _quoted_field(line: bytes, start: int) -> tuple[bytes, int]:
    parts: list[bytes] = []
    position = start + 1
    while True:
        quote = line.find(b'"', position)
        if quote < 0:
            raise InputFormatError(f"CSV quoted field opened at {start} is never closed")
        if line[quote + 1 : quote + 2] == b'"':  # a doubled quote is one literal quote
            parts.append(line[position : quote + 1])
            position = quote + 2
            continue
        parts.append(line[position:quote])
        return b"".join(parts), quote + 1


_NEEDS_QUOTES = re.compile(rb'[",\r\n]')


def format_csv_record(fields: list[bytes]) -> bytes:
    """One CSV line, quoting only the fields that need it."""
    return b",".join(
        b'"' + field.replace(b'"', b'""') + b'"' if _NEEDS_QUOTES.search(field) else field
        for field in fields
    )


_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def csv_to_json(line: bytes) -> object:
    """A CSV output row as JSON: numbers stay numbers; one field is a scalar, more a list."""
    values = [_csv_value(field) for field in split_csv(line)]
    return values[0] if len(values) == 1 else values


def _csv_value(field: bytes) -> object:
    if _JSON_NUMBER.fullmatch(field):
        return load_json(field)
    try:
        return field.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"CSV field is not UTF-8: {exc}") from exc


def json_to_fields(value: object) -> list[bytes]:
    """A JSON output as CSV fields: an array's elements, or the value as one field."""
    items = value if isinstance(value, list) else [value]
    return [item.encode("utf-8") if isinstance(item, str) else dump_json(item) for item in items]


# -- JSON --------------------------------------------------------------------------------

# orjson turns integers beyond 64 bits into floats; a run of 20 digits sends the record
# through the standard library instead, which keeps them exact. Found with translate and
# a substring test: both run in C, ten times faster than a regex over every digit run.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 20


def load_json(raw: bytes) -> object:
    try:
        if _LONG_DIGIT_RUN in raw.translate(_DIGITS_TO_ZERO):
            return json.loads(raw, parse_constant=_reject_constant)
        return orjson.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputFormatError(f"not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def dump_json(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split_json_response(response: bytes, expected: int) -> list[object]:
    """An application/json response as records: JSON values one per line, or one array.

    Lines win when their count matches; else a whole-response array with `expected`
    elements is split; else the lines (or the single value) are returned and the caller
    reports the count that does not match.
    """
    lines = _json_lines(response)
    if lines is not None and len(lines) == expected:
        return lines
    whole = lines[0] if lines is not None and len(lines) == 1 else _json_value(response)
    if whole is _INVALID:
        if lines is None:
            load_json(response)  # raises, with the parser's message
        return lines or []
    if expected == 1:
        return [whole]
    if isinstance(whole, list) and len(whole) == expected:
        return whole
    return lines if lines is not None else [whole]


_INVALID = object()


def _json_lines(response: bytes) -> list[object] | None:
    try:
        return [load_json(record.data) for record in _lines(response)]
    except InputFormatError:
        return None


def _json_value(response: bytes) -> object:
    try:
        return load_json(response)
    except InputFormatError:
        return _INVALID
