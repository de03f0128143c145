"""Whole-batch DataProcessing: the same bytes as the per-record path, or a clear "not here"."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.errors import InputFormatError
from batchform.records.batch import Batch
from batchform.records.dataprocessing import RecordProcessor, filter_csv
from batchform.records.jsonpath import compile_path
from batchform.records.linebatch import all_records, join_lines, select_fields
from batchform.spec.enums import JoinSource, SplitType
from batchform.spec.transform import DataProcessing

PATHS = [
    "$",
    "$[*]",
    "$[0]",
    "$[1:]",
    "$[:-1]",
    "$[0,-1]",
    "$[-1,0]",
    "$[1:2]",
    "$[0,2:]",
    "$[5:]",
    "$[3]",
    "$[0,3:5,-1]",
    "$[0,0]",
]


def per_record(path: str, payload: bytes) -> bytes:
    """What the per-record path makes of a payload whose lines are all records."""
    cut = b"\n".join(filter_csv(compile_path(path), line) for line in lines_of(payload))
    return cut + b"\n" if payload.endswith(b"\n") else cut


def payload_of(rows: list[list[bytes]], terminated: bool) -> bytes:
    text = b"\n".join(b",".join(row) for row in rows)
    return text + b"\n" if terminated else text


# Fields that may hold quotes, commas, blanks and carriage returns: rows come out ragged,
# quoted, blank or CRLF, and the whole-batch path must either agree or decline.
messy_fields = st.binary(min_size=0, max_size=4).map(
    lambda raw: bytes(b'ab1," \r\t'[byte % 8] for byte in raw)
)
plain_fields = st.binary(min_size=0, max_size=6).map(
    lambda raw: bytes(b"0123456789.-abc\xc3\xa9"[byte % 16] for byte in raw)
)


@settings(max_examples=400, deadline=None)
@given(
    rows=st.lists(st.lists(messy_fields, min_size=1, max_size=6), min_size=1, max_size=8),
    path=st.sampled_from(PATHS),
    terminated=st.booleans(),
)
def test_select_fields_agrees_with_the_per_record_path_or_declines(
    rows: list[list[bytes]], path: str, terminated: bool
) -> None:
    payload = payload_of(rows, terminated)
    fast = select_fields(compile_path(path), payload)
    if fast is None:
        return
    assert fast == per_record(path, payload)


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(2, 7),
    data=st.data(),
    path=st.sampled_from(PATHS),
    terminated=st.booleans(),
)
def test_plain_uniform_rows_are_cut_whole(
    width: int, data: st.DataObject, path: str, terminated: bool
) -> None:
    row = st.lists(plain_fields, min_size=width, max_size=width)
    payload = payload_of(data.draw(st.lists(row, min_size=1, max_size=8)), terminated)
    fast = select_fields(compile_path(path), payload)
    try:
        positions = [i for a, b in compile_path(path).field_spans(width) for i in range(a, b)]
    except InputFormatError:  # an index the rows do not have: the per-record path says where
        assert fast is None
        return
    if positions and positions == sorted(set(positions)):
        assert fast == per_record(path, payload)
    else:  # keeps nothing, or repeats or reorders fields: left to the per-record path
        assert fast is None


@pytest.mark.parametrize(
    "payload",
    [
        b'a,"b,c"\nd,e\n',  # quoted
        b"a,b\r\nc,d\r\n",  # CRLF
        b"a,b\n\nc,d\n",  # blank line
        b"a,b\nc,d,e\n",  # ragged
        b"a,b,c\nd\ne,f,g\n",  # a row short by two, the totals still even
        b"a\nb\n",  # one field a row: a blank row would look the same
        b"",
    ],
)
def test_select_fields_declines_what_needs_the_per_record_path(payload: bytes) -> None:
    assert select_fields(compile_path("$[1:]"), payload) is None


def test_select_fields_keeps_the_payloads_own_ending() -> None:
    path = compile_path("$[0,-1]")
    assert select_fields(path, b"1,2,3\n4,5,6\n") == b"1,3\n4,6\n"
    assert select_fields(path, b"1,2,3\n4,5,6") == b"1,3\n4,6"
    assert select_fields(path, b",,\n,,\n") == b",\n,\n"  # empty fields are fields


def test_select_fields_leaves_an_out_of_range_index_to_the_per_record_path() -> None:
    assert select_fields(compile_path("$[0,7]"), b"1,2,3\n") is None


line_lists = st.lists(messy_fields, min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(inputs=line_lists, outputs=line_lists, terminated=st.booleans())
def test_join_lines_agrees_with_pairing_lines_or_declines(
    inputs: list[bytes], outputs: list[bytes], terminated: bool
) -> None:
    left = b"\n".join(inputs) + (b"\n" if terminated else b"")
    right = b"\n".join(outputs) + b"\n"
    joined = join_lines(left, right)
    if joined is None:
        return
    pairs = zip(lines_of(left), lines_of(right), strict=True)
    assert joined == b"".join(a + b"," + b + b"\n" for a, b in pairs)


def lines_of(payload: bytes) -> list[bytes]:
    lines = payload.split(b"\n")
    return lines[:-1] if payload.endswith(b"\n") else lines


def test_join_lines_pairs_rows_in_order() -> None:
    assert join_lines(b"x,1\ny,2\n", b"10\n20") == b"x,1,10\ny,2,20\n"
    assert join_lines(b'"a,b",1\n', b'"q"\n') == b'"a,b",1,"q"\n'  # quotes ride along


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        (b"a\nb\n", b"1\n"),  # a record short: the per-record path reports both counts
        (b"a\n\nb\n", b"1\n2\n"),  # a blank input line is not a record
        (b"a\nb\n", b"1\n \n"),  # nor is a line of spaces
        (b"a\r\nb\r\n", b"1\n2\n"),
        (b"a\n", b""),
    ],
)
def test_join_lines_declines_uneven_or_unplain_batches(inputs: bytes, outputs: bytes) -> None:
    assert join_lines(inputs, outputs) is None


def test_a_join_never_reuses_rows_of_another_batch() -> None:
    # Rows scanned for one batch's prepare are kept for its finish; a different payload of
    # the same length must be scanned afresh.
    path = compile_path("$[1:]")
    assert select_fields(path, b"a,1\nb,2\n", batch_input=True) == b"1\n2\n"
    assert join_lines(b"cc,1,22\n", b"9\n") == b"cc,1,22,9\n"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"a\nb\n", True),
        (b"a\nb", True),
        (b" a\n", True),
        (b"a\n\nb\n", False),
        (b"a\n \t\nb\n", False),
        (b"\t\na\n", False),
        (b"a\r\n", False),
        (b"", False),
    ],
)
def test_all_records(payload: bytes, expected: bool) -> None:
    assert all_records(payload) is expected


# -- through RecordProcessor: whichever path a batch takes, the same bytes ------------------

csv_values = st.lists(st.text(alphabet='a1,"é', min_size=1, max_size=4), min_size=2, max_size=5)


def csv_line(values: list[str]) -> bytes:
    """RFC 4180 quoting, written independently of batchform (the csv module)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue().encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(csv_values, min_size=1, max_size=6),
    uniform=st.booleans(),
    ending=st.sampled_from([b"\n", b"\r\n"]),
    blank_after=st.integers(-1, 6),
)
def test_processor_filters_and_joins_any_batch_alike(
    rows: list[list[str]], uniform: bool, ending: bytes, blank_after: int
) -> None:
    if uniform:  # one width and nothing to quote: the whole-batch path takes these
        rows = [[value.replace(",", "").replace('"', "") or "x" for value in rows[0]]] * len(rows)
    lines = [csv_line(row) for row in rows]
    if 0 <= blank_after < len(lines):
        lines.insert(blank_after, b"")
    payload = b"".join(line + ending for line in lines)
    processor = RecordProcessor.create(
        DataProcessing(input_filter="$[1:]", join_source=JoinSource.INPUT, output_filter="$[0,-1]"),
        content_type="text/csv",
        accept="text/csv",
        split_type=SplitType.LINE,
    )
    assert processor is not None
    batch = Batch(payload=payload, first_record=0, record_count=len(lines), offset=0)
    sent = processor.prepare(batch)
    assert sent == b"".join(csv_line(row[1:]) + b"\n" for row in rows)
    finished = processor.finish(batch, sent)  # an echo model
    assert finished == b"".join(csv_line([row[0], row[-1]]) + b"\n" for row in rows)
