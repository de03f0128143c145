"""RecordIO framing (MXNet's dmlc-core format), as SageMaker splits SplitType=RecordIO.

A frame is: the magic (u32 little-endian 0xCED7230A), `lrec` (u32 LE: cflag in the top
3 bits, data length in the low 29), the data, then zero padding to a multiple of 4 bytes.

MXNet's writer never leaves the magic 4-byte-aligned inside frame data, so that a reader
that lost its place can find the next frame by scanning for it. Where a record holds the
magic at an aligned offset, the writer drops those 4 bytes and ends the frame there: the
record becomes frames with cflag 1 (first), 2 (middle) ... 3 (last), and MXNet's reader
puts the magic back between the parts. A record without an aligned magic is one cflag-0
frame (the only kind SageMaker's own writers produce). This module decodes and encodes
exactly as MXNet does, so records round-trip byte for byte with MXNet's files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from batchform.errors import InputFormatError

MAGIC = 0xCED7230A
HEADER_SIZE = 8
MAX_RECORD_SIZE = (1 << 29) - 1
"""MXNet's writer refuses records of 2**29 bytes or more, even when they would be split."""

WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3
"""The cflag values: a whole record, or the first, a middle or the last part of one."""

_LENGTH_BITS = 29
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<II")
_ZEROS = bytes(3)

Buffer = bytes | bytearray | memoryview


class _Frame(NamedTuple):
    start: int  # index of the frame's magic in the buffer
    cflag: int
    length: int  # of the data, padding excluded
    end: int  # index just past the padding

    @property
    def data_start(self) -> int:
        return self.start + HEADER_SIZE

    @property
    def data_end(self) -> int:
        return self.data_start + self.length


def record_end(buf: Buffer, start: int, base_offset: int = 0) -> int | None:
    """End (exclusive) of the logical record starting at buf[start], all its frames and padding.

    None when buf ends before the record does. Raises InputFormatError, with the absolute
    byte offset (base_offset + index) of the offending frame, when the bytes cannot be
    RecordIO: a wrong magic, an unknown cflag, or a cflag out of sequence.
    """
    frame = _read_frame(buf, start, base_offset)
    if frame is not None and frame.cflag == WHOLE:
        return frame.end  # the common case, spared the multi-part bookkeeping
    frames = _record_frames(buf, start, base_offset)
    return None if frames is None else frames[-1].end


def iter_records(data: Buffer, base_offset: int = 0) -> Iterator[bytes]:
    """The contents of each record in a buffer of whole records, as MXNet's reader returns them.

    Raises InputFormatError on corruption, or when the buffer ends inside a record (naming
    the offset where that record starts).
    """
    position = 0
    while position < len(data):
        frames = _record_frames(data, position, base_offset)
        if frames is None:
            raise _truncated(len(data) - position, base_offset + position)
        yield _join_parts(data, frames)
        position = frames[-1].end


def record_data(framed: Buffer) -> bytes:
    """The contents of exactly one framed record (all of its frames, nothing after them)."""
    frames = _record_frames(framed, 0, 0)
    if frames is None:
        raise _truncated(len(framed), 0)
    if frames[-1].end != len(framed):
        extra = len(framed) - frames[-1].end
        raise InputFormatError(
            f"expected one RecordIO record, found {extra} more bytes after it",
            byte_offset=frames[-1].end,
        )
    return _join_parts(framed, frames)


def encode_record(data: bytes) -> bytes:
    """Frame one record exactly as MXNet's writer does (multi-part if it holds the magic)."""
    if len(data) > MAX_RECORD_SIZE:
        raise ValueError(
            f"a RecordIO record holds at most {MAX_RECORD_SIZE} bytes, got {len(data)}"
        )
    parts = _split_at_aligned_magic(data)
    if len(parts) == 1:
        return encode_frame(data, WHOLE)
    flags = [FIRST] + [MIDDLE] * (len(parts) - 2) + [LAST]
    return b"".join(encode_frame(part, flag) for part, flag in zip(parts, flags, strict=True))


def encode_frame(data: bytes, cflag: int = WHOLE) -> bytes:
    """One frame, padding included; for building multi-part or malformed inputs by hand."""
    if not 0 <= cflag < 8:
        raise ValueError(f"a RecordIO cflag is 0 to 7, got {cflag}")
    if len(data) > MAX_RECORD_SIZE:
        raise ValueError(f"a RecordIO frame holds at most {MAX_RECORD_SIZE} bytes, got {len(data)}")
    lrec = cflag << _LENGTH_BITS | len(data)
    padding = _ZEROS[: _padded(len(data)) - len(data)]
    return _HEADER.pack(MAGIC, lrec) + data + padding


def _record_frames(buf: Buffer, start: int, base_offset: int) -> list[_Frame] | None:
    """The frames of the record at buf[start], their cflags checked; None if buf ends first."""
    first = _read_frame(buf, start, base_offset)
    if first is None or first.cflag == WHOLE:
        return None if first is None else [first]
    if first.cflag != FIRST:
        raise _cflag_error(first, "0 or 1 at the start of a record", base_offset)
    frames = [first]
    while frames[-1].cflag != LAST:
        frame = _read_frame(buf, frames[-1].end, base_offset)
        if frame is None:
            return None
        if frame.cflag not in (MIDDLE, LAST):
            expected = f"2 or 3 continuing the record at byte offset {base_offset + start}"
            raise _cflag_error(frame, expected, base_offset)
        frames.append(frame)
    return frames


def _read_frame(buf: Buffer, start: int, base_offset: int) -> _Frame | None:
    """The frame at buf[start] if buf holds all of it, padding included; checks its header."""
    if len(buf) - start < HEADER_SIZE:
        _check_early_magic(buf, start, base_offset)
        return None
    magic, lrec = _HEADER.unpack_from(buf, start)
    if magic != MAGIC:
        raise _magic_error(magic, base_offset + start)
    length = lrec & _LENGTH_MASK
    frame = _Frame(start, lrec >> _LENGTH_BITS, length, start + HEADER_SIZE + _padded(length))
    if frame.cflag > LAST:
        raise _cflag_error(frame, "0 to 3", base_offset)
    return frame if frame.end <= len(buf) else None


def _check_early_magic(buf: Buffer, start: int, base_offset: int) -> None:
    # Checked before the rest of the header arrives, so garbage fails at once.
    if len(buf) - start >= _U32.size:
        (magic,) = _U32.unpack_from(buf, start)
        if magic != MAGIC:
            raise _magic_error(magic, base_offset + start)


def _join_parts(buf: Buffer, frames: list[_Frame]) -> bytes:
    # MXNet's writer dropped an aligned magic at each part boundary; its reader restores it.
    with memoryview(buf) as view:
        return _MAGIC_BYTES.join(view[frame.data_start : frame.data_end] for frame in frames)


def _split_at_aligned_magic(data: bytes) -> list[bytes]:
    """Data cut around each 4-byte-aligned magic, the magic itself left out."""
    parts: list[bytes] = []
    part_start = 0
    found = data.find(_MAGIC_BYTES)
    while found != -1:
        if found % 4 == 0:
            parts.append(data[part_start:found])
            part_start = found + len(_MAGIC_BYTES)
        found = data.find(_MAGIC_BYTES, found + 1)
    parts.append(data[part_start:])
    return parts


def _padded(length: int) -> int:
    return (length + 3) & ~3


def _magic_error(found: int, byte_offset: int) -> InputFormatError:
    return InputFormatError(
        f"expected RecordIO magic 0x{MAGIC:08x}, found 0x{found:08x}", byte_offset=byte_offset
    )


def _cflag_error(frame: _Frame, expected: str, base_offset: int) -> InputFormatError:
    return InputFormatError(
        f"expected RecordIO cflag {expected}, found {frame.cflag}",
        byte_offset=base_offset + frame.start,
    )


def _truncated(available: int, byte_offset: int) -> InputFormatError:
    return InputFormatError(
        f"truncated RecordIO record: the input ends {available} bytes into it",
        byte_offset=byte_offset,
    )
