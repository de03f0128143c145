"""TFRecord framing: TensorFlow's bytes and CRCs, record boundaries, corruption."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchform.errors import InputFormatError
from batchform.records import tfrecord

record_lists = st.lists(st.binary(max_size=40), max_size=8)


def reference_crc32c(data: bytes) -> int:
    """CRC32C bit by bit (reflected Castagnoli polynomial): slow, but independent of crc32c."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def reference_masked(data: bytes) -> int:
    crc = reference_crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def encode_all(records: list[bytes]) -> tuple[bytes, list[int]]:
    """The framed records concatenated, and the end offset of each one."""
    framed = [tfrecord.encode_record(record) for record in records]
    ends, total = [], 0
    for one in framed:
        total += len(one)
        ends.append(total)
    return b"".join(framed), ends


def walk(buf: bytes | bytearray | memoryview, base_offset: int = 0) -> list[int]:
    """Record ends as a batcher finds them: call record_end until it says None or buf ends."""
    ends, position = [], 0
    while position < len(buf):
        end = tfrecord.record_end(buf, position, base_offset)
        if end is None:
            break
        ends.append(end)
        position = end
    return ends


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),  # RFC 3720, B.4
        (b"\xff" * 32, 0x62A8AB43),  # RFC 3720, B.4
    ],
)
def test_crc32c_known_values(data: bytes, crc: int) -> None:
    assert reference_crc32c(data) == crc
    assert crc32c.crc32c(data) == crc


def test_empty_record_byte_for_byte() -> None:
    length_crc = reference_masked(bytes(8))
    assert length_crc == 0x07980329  # pinned so a change to the reference shows
    assert tfrecord.encode_record(b"") == (
        bytes(8) + struct.pack("<I", length_crc) + b"\xd8\xea\x82\xa2"  # mask(crc32c(b"")=0)
    )


def test_hello_record_byte_for_byte() -> None:
    length = b"\x05" + bytes(7)
    expected = (
        length
        + struct.pack("<I", reference_masked(length))
        + b"hello"
        + struct.pack("<I", reference_masked(b"hello"))
    )
    assert tfrecord.encode_record(b"hello") == expected
    assert tfrecord.record_data(expected) == b"hello"


@given(st.binary(max_size=64))
def test_masked_crc_matches_the_spec(data: bytes) -> None:
    assert tfrecord.masked_crc(data) == reference_masked(data)


@given(record_lists)
def test_records_round_trip(records: list[bytes]) -> None:
    buf, _ = encode_all(records)
    assert list(tfrecord.iter_records(buf)) == records
    assert list(tfrecord.iter_records(memoryview(buf))) == records


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
        while (end := tfrecord.record_end(growing, start)) is not None:
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
        list(tfrecord.iter_records(buf[:cut], base_offset=1000))
    assert caught.value.byte_offset == 1000 + last_start


@given(record_lists.filter(lambda records: len(records) > 0), st.data())
def test_any_flipped_byte_is_reported_at_the_records_absolute_offset(
    records: list[bytes], data: st.DataObject
) -> None:
    """Every byte of a record is covered by one of its CRCs, length and CRCs included."""
    buf, ends = encode_all(records)
    index = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    start = ends[index - 1] if index else 0
    position = data.draw(st.integers(min_value=start, max_value=ends[index] - 1))
    corrupt = bytearray(buf)
    corrupt[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(InputFormatError, match="CRC mismatch") as caught:
        list(tfrecord.iter_records(corrupt, base_offset=500))
    assert caught.value.byte_offset == 500 + start


def test_bad_length_fails_before_the_data_arrives() -> None:
    header = struct.pack("<QI", 5, 0)
    with pytest.raises(InputFormatError, match="length CRC mismatch") as caught:
        tfrecord.record_end(header, 0, base_offset=7)
    assert caught.value.byte_offset == 7


def test_crc_message_says_what_was_expected_and_found() -> None:
    framed = bytearray(tfrecord.encode_record(b"hello"))
    framed[-4:] = bytes(4)
    with pytest.raises(InputFormatError) as caught:
        tfrecord.record_data(framed)
    expected = reference_masked(b"hello")
    assert caught.value.detail == (
        f"TFRecord data CRC mismatch: expected masked CRC32C 0x{expected:08x}, found 0x00000000"
    )


def test_record_end_works_from_a_start_inside_the_buffer() -> None:
    buf = tfrecord.encode_record(b"a") + tfrecord.encode_record(b"bcdef")
    assert tfrecord.record_end(buf, 17) == len(buf)
    assert tfrecord.record_end(buf, len(buf)) is None


def test_record_data_wants_exactly_one_record() -> None:
    one = tfrecord.encode_record(b"abc")
    with pytest.raises(InputFormatError, match="more bytes after it") as caught:
        tfrecord.record_data(one + one)
    assert caught.value.byte_offset == len(one)
    with pytest.raises(InputFormatError, match="truncated"):
        tfrecord.record_data(one[:-1])
