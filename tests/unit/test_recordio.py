"""RecordIO framing: MXNet's bytes, record boundaries over a growing buffer, corruption."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchform.errors import InputFormatError
from batchform.records import recordio
from batchform.records.recordio import FIRST, LAST, MIDDLE, WHOLE

MAGIC_BYTES = b"\x0a\x23\xd7\xce"  # 0xCED7230A, little-endian

# Records that often hold the magic, aligned or not, so multi-part records come up.
record_bytes = st.lists(st.one_of(st.binary(max_size=9), st.just(MAGIC_BYTES)), max_size=6).map(
    b"".join
)
record_lists = st.lists(record_bytes, max_size=8)


def encode_all(records: list[bytes]) -> tuple[bytes, list[int]]:
    """The framed records concatenated, and the end offset of each one."""
    framed = [recordio.encode_record(record) for record in records]
    ends, total = [], 0
    for one in framed:
        total += len(one)
        ends.append(total)
    return b"".join(framed), ends


def walk(buf: bytes | bytearray | memoryview, base_offset: int = 0) -> list[int]:
    """Record ends as a batcher finds them: call record_end until it says None or buf ends."""
    ends, position = [], 0
    while position < len(buf):
        end = recordio.record_end(buf, position, base_offset)
        if end is None:
            break
        ends.append(end)
        position = end
    return ends


def multi_part(parts: list[bytes]) -> bytes:
    flags = [FIRST] + [MIDDLE] * (len(parts) - 2) + [LAST]
    return b"".join(
        recordio.encode_frame(part, flag) for part, flag in zip(parts, flags, strict=True)
    )


def test_whole_record_frame_byte_for_byte() -> None:
    assert recordio.encode_record(b"hello") == (
        MAGIC_BYTES + b"\x05\x00\x00\x00" + b"hello" + b"\x00\x00\x00"
    )


def test_empty_and_aligned_records_have_no_padding() -> None:
    assert recordio.encode_record(b"") == MAGIC_BYTES + bytes(4)
    assert recordio.encode_record(b"abcd") == MAGIC_BYTES + b"\x04\x00\x00\x00abcd"


def test_aligned_magic_splits_the_record_as_mxnet_writes_it() -> None:
    data = b"ab\x00\x00" + MAGIC_BYTES + b"cd"
    expected = (
        MAGIC_BYTES + b"\x04\x00\x00\x20" + b"ab\x00\x00"  # cflag 1, length 4
        + MAGIC_BYTES + b"\x02\x00\x00\x60" + b"cd\x00\x00"  # cflag 3, length 2, padded
    )  # fmt: skip
    assert recordio.encode_record(data) == expected
    assert recordio.record_data(expected) == data


def test_unaligned_magic_stays_in_one_frame() -> None:
    data = b"x" + MAGIC_BYTES + b"yyy"
    framed = recordio.encode_record(data)
    assert framed[4:8] == b"\x08\x00\x00\x00"  # cflag 0
    assert recordio.record_data(framed) == data


def test_record_that_is_only_the_magic_is_two_empty_parts() -> None:
    framed = recordio.encode_record(MAGIC_BYTES)
    assert framed == MAGIC_BYTES + struct.pack("<I", 1 << 29) + MAGIC_BYTES + struct.pack(
        "<I", 3 << 29
    )
    assert list(recordio.iter_records(framed)) == [MAGIC_BYTES]


@given(record_lists)
def test_records_round_trip(records: list[bytes]) -> None:
    buf, _ = encode_all(records)
    assert list(recordio.iter_records(buf)) == records


@given(st.lists(st.binary(max_size=12), min_size=2, max_size=5))
def test_hand_split_record_reads_back_with_the_magic_between_parts(parts: list[bytes]) -> None:
    framed = multi_part(parts)
    assert recordio.record_end(framed, 0) == len(framed)
    assert recordio.record_data(framed) == MAGIC_BYTES.join(parts)


@given(record_lists, st.integers(min_value=0, max_value=2**40))
def test_record_end_finds_exactly_the_record_boundaries(
    records: list[bytes], base_offset: int
) -> None:
    buf, ends = encode_all(records)
    assert walk(buf, base_offset) == ends
    assert walk(bytearray(buf)) == ends
    assert walk(memoryview(buf)) == ends


@given(record_lists, st.lists(st.integers(min_value=1, max_value=16)))
def test_records_are_found_in_a_bytearray_growing_in_chunks(
    records: list[bytes], chunk_sizes: list[int]
) -> None:
    """As a batcher uses it: append what arrived, then ask again from the pending start."""
    buf, ends = encode_all(records)
    growing, found, start, fed = bytearray(), [], 0, 0
    for size in [*chunk_sizes, len(buf)]:
        growing += buf[fed : fed + size]  # fails if a view of it were still held
        fed += size
        while (end := recordio.record_end(growing, start)) is not None:
            found.append(end)
            start = end
    assert found == ends


@given(record_lists, st.data())
def test_truncated_buffer_yields_only_complete_records(
    records: list[bytes], data: st.DataObject
) -> None:
    buf, ends = encode_all(records)
    cut = data.draw(st.integers(min_value=0, max_value=len(buf)))
    assert walk(buf[:cut]) == [end for end in ends if end <= cut]


@given(record_lists.filter(lambda records: len(records) > 0), st.data())
def test_truncated_input_names_where_the_partial_record_starts(
    records: list[bytes], data: st.DataObject
) -> None:
    buf, ends = encode_all(records)
    last_start = ends[-2] if len(ends) > 1 else 0
    cut = data.draw(st.integers(min_value=last_start + 1, max_value=len(buf) - 1))
    with pytest.raises(InputFormatError, match="truncated") as caught:
        list(recordio.iter_records(buf[:cut], base_offset=1000))
    assert caught.value.byte_offset == 1000 + last_start


@given(record_lists.filter(lambda records: len(records) > 0), st.data())
def test_corrupt_magic_is_reported_at_the_records_absolute_offset(
    records: list[bytes], data: st.DataObject
) -> None:
    buf, ends = encode_all(records)
    index = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    start = ends[index - 1] if index else 0
    position = start + data.draw(st.integers(min_value=0, max_value=3))
    corrupt = bytearray(buf)
    corrupt[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(InputFormatError, match="expected RecordIO magic 0xced7230a") as caught:
        list(recordio.iter_records(bytes(corrupt), base_offset=500))
    assert caught.value.byte_offset == 500 + start
    with pytest.raises(InputFormatError):
        recordio.record_end(corrupt, start, base_offset=500)


def test_wrong_magic_message_names_what_was_found() -> None:
    bad = struct.pack("<II", 0x12345678, 0)
    with pytest.raises(InputFormatError) as caught:
        recordio.record_end(bad, 0, base_offset=64)
    assert caught.value.detail == "expected RecordIO magic 0xced7230a, found 0x12345678"
    assert caught.value.byte_offset == 64


def test_garbage_fails_before_the_whole_header_arrives() -> None:
    with pytest.raises(InputFormatError):
        recordio.record_end(b"\x00\x00\x00\x00", 0)


def frame(flag: int, data: bytes = b"xy") -> bytes:
    return recordio.encode_frame(data, flag)


@pytest.mark.parametrize(
    ("flags", "bad_frame"),
    [
        ([MIDDLE], 0),  # a middle part with no first part
        ([LAST], 0),  # a last part with no first part
        ([FIRST, WHOLE], 1),  # a whole record inside a multi-part one
        ([FIRST, FIRST], 1),  # a second start before the first ended
        ([FIRST, MIDDLE, WHOLE], 2),
        ([4], 0),  # cflags above 3 mean nothing
        ([FIRST, 7], 1),
    ],
)
def test_bad_cflag_sequences_are_rejected_at_the_bad_frame(
    flags: list[int], bad_frame: int
) -> None:
    good = recordio.encode_record(b"first record")
    buf = good + b"".join(frame(flag) for flag in flags)
    bad_offset = len(good) + bad_frame * len(frame(WHOLE))
    with pytest.raises(InputFormatError, match="expected RecordIO cflag") as caught:
        list(recordio.iter_records(buf, base_offset=10))
    assert caught.value.byte_offset == 10 + bad_offset


def test_record_end_works_from_a_start_inside_the_buffer() -> None:
    buf = recordio.encode_record(b"a") + recordio.encode_record(b"bcdef")
    assert recordio.record_end(buf, 12) == len(buf)
    assert recordio.record_end(buf, len(buf)) is None


def test_multi_part_record_is_incomplete_until_its_last_part_arrives() -> None:
    framed = multi_part([b"one", b"two", b"three"])
    last_part = len(framed) - len(frame(LAST, b"three"))
    assert recordio.record_end(framed[:last_part], 0) is None
    assert recordio.record_end(framed, 0) == len(framed)


def test_record_data_wants_exactly_one_record() -> None:
    one = recordio.encode_record(b"abc")
    with pytest.raises(InputFormatError, match="more bytes after it") as caught:
        recordio.record_data(one + one)
    assert caught.value.byte_offset == len(one)
    with pytest.raises(InputFormatError, match="truncated"):
        recordio.record_data(one[:-1])


def test_encode_frame_rejects_a_cflag_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="cflag"):
        recordio.encode_frame(b"", 8)
