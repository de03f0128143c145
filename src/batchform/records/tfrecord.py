"""TFRecord framing, as SageMaker splits SplitType=TFRecord.

A record is: the data length (u64 little-endian), the masked CRC32C of those 8 bytes
(u32 LE), the data, then the masked CRC32C of the data (u32 LE). Both CRCs are verified,
as TensorFlow's reader and SageMaker do: a corrupt record fails rather than reaching the
model as garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import crc32c

from batchform.errors import InputFormatError

HEADER_SIZE = 12
FOOTER_SIZE = 4

# TensorFlow masks stored CRCs because a CRC computed over data that itself contains
# CRCs is prone to degenerate values; the mask is rotate-right-by-15 plus this constant.
_MASK_DELTA = 0xA282EAD8
_U32_MASK = 0xFFFFFFFF
_HEADER = struct.Struct("<QI")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

Buffer = bytes | bytearray | memoryview


def masked_crc(data: Buffer) -> int:
    """TensorFlow's masked CRC32C of data."""
    crc: int = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32_MASK


def record_end(buf: Buffer, start: int, base_offset: int = 0) -> int | None:
    """End (exclusive) of the record starting at buf[start]; None when buf ends first.

    Raises InputFormatError, with the record's absolute byte offset (base_offset + start),
    when the length or the data fails its CRC. The length is checked as soon as the header
    is in buf, so garbage fails at once instead of waiting for a bogus length of bytes.
    """
    if len(buf) - start < HEADER_SIZE:
        return None
    length, stored_length_crc = _HEADER.unpack_from(buf, start)
    data_start = start + HEADER_SIZE
    end: int = data_start + length + FOOTER_SIZE
    with memoryview(buf) as view:
        _check_crc(
            view[start : start + _U64.size], stored_length_crc, "length", base_offset + start
        )
        if end > len(buf):
            return None
        (stored_data_crc,) = _U32.unpack_from(buf, end - FOOTER_SIZE)
        _check_crc(
            view[data_start : end - FOOTER_SIZE], stored_data_crc, "data", base_offset + start
        )
    return end


def iter_records(data: Buffer, base_offset: int = 0) -> Iterator[bytes]:
    """The contents of each record in a buffer of whole records, CRCs verified.

    Raises InputFormatError on corruption, or when the buffer ends inside a record (naming
    the offset where that record starts).
    """
    position = 0
    while position < len(data):
        end = record_end(data, position, base_offset)
        if end is None:
            raise _truncated(len(data) - position, base_offset + position)
        yield _contents(data, position, end)
        position = end


def record_data(framed: Buffer) -> bytes:
    """The contents of exactly one framed record (nothing after it), CRCs verified."""
    end = record_end(framed, 0)
    if end is None:
        raise _truncated(len(framed), 0)
    if end != len(framed):
        raise InputFormatError(
            f"expected one TFRecord record, found {len(framed) - end} more bytes after it",
            byte_offset=end,
        )
    return _contents(framed, 0, end)


def encode_record(data: bytes) -> bytes:
    """Frame one record as TensorFlow's TFRecordWriter does (uncompressed)."""
    length = _U64.pack(len(data))
    return b"".join((length, _U32.pack(masked_crc(length)), data, _U32.pack(masked_crc(data))))


def _check_crc(covered: memoryview, stored: int, field: str, byte_offset: int) -> None:
    computed = masked_crc(covered)
    if computed != stored:
        raise InputFormatError(
            f"TFRecord {field} CRC mismatch: expected masked CRC32C 0x{computed:08x}, "
            f"found 0x{stored:08x}",
            byte_offset=byte_offset,
        )


def _contents(buf: Buffer, start: int, end: int) -> bytes:
    with memoryview(buf) as view:
        return bytes(view[start + HEADER_SIZE : end - FOOTER_SIZE])


def _truncated(available: int, byte_offset: int) -> InputFormatError:
    return InputFormatError(
        f"truncated TFRecord record: the input ends {available} bytes into it",
        byte_offset=byte_offset,
    )
