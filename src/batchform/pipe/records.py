"""Records out of a byte stream: RecordIO, TFRecord (CRCs checked) or text lines.

The stream is read CHUNK_BYTES at a time and cut into records with the codecs of
`batchform.records`, so memory follows the largest record, not the stream. Errors name
the stream and the byte offset within it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from batchform.errors import InputFormatError
from batchform.records import recordio, tfrecord

RECORDIO = "RecordIO"
TFRECORD = "TFRecord"
TEXTLINE = "TextLine"
RECORD_FORMATS = (RECORDIO, TFRECORD, TEXTLINE)
CHUNK_BYTES = 1 << 20

Buffer = bytes | bytearray | memoryview
_EndOf = Callable[[Buffer, int, int], int | None]
_Contents = Callable[[bytearray, int, int], bytes]


def check_record_format(record_format: str) -> str:
    if record_format not in RECORD_FORMATS:
        raise ValueError(
            f"record_format {record_format!r} is not one of {', '.join(RECORD_FORMATS)}"
        )
    return record_format


def read_records(
    stream: BinaryIO, record_format: str, name: str = "stream", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """Each record of `stream` in order; InputFormatError naming `name` on bad bytes."""
    check_record_format(record_format)
    if record_format == TEXTLINE:
        return _lines(stream, chunk_bytes)
    if record_format == RECORDIO:
        return _framed(stream, recordio.record_end, _recordio_data, name, chunk_bytes)
    return _framed(stream, tfrecord.record_end, _tfrecord_data, name, chunk_bytes)


def _lines(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """Lines without their ending ('\\n' or '\\r\\n'), as TensorFlow's TextLineDataset."""
    carry = b""
    while chunk := stream.read(chunk_bytes):
        *lines, carry = (carry + chunk).split(b"\n")
        yield from (line.removesuffix(b"\r") for line in lines)
    if carry:
        yield carry.removesuffix(b"\r")


def _framed(
    stream: BinaryIO, end_of: _EndOf, contents: _Contents, name: str, chunk_bytes: int
) -> Iterator[bytes]:
    buffer = bytearray()
    offset = index = 0  # of buffer[0] in the stream; of the next record
    try:
        while chunk := stream.read(chunk_bytes):
            buffer += chunk
            position = 0
            while (end := end_of(buffer, position, offset)) is not None:
                yield contents(buffer, position, end)
                position, index = end, index + 1
            # bytearray drops a prefix in place; a partial record stays for the next read
            del buffer[:position]
            offset += position
        if buffer:
            end_of(buffer, 0, offset)  # raises if what is left is not even a header
            raise InputFormatError(
                f"truncated record: the stream ends {len(buffer)} bytes into it",
                byte_offset=offset,
            )
    except InputFormatError as exc:
        raise _located(exc, name, index) from exc


def _located(exc: InputFormatError, name: str, index: int) -> InputFormatError:
    return InputFormatError(
        exc.detail, object_key=name, record_index=index, byte_offset=exc.byte_offset
    )


def _recordio_data(buffer: bytearray, start: int, end: int) -> bytes:
    with memoryview(buffer) as view:
        return recordio.record_data(view[start:end])


def _tfrecord_data(buffer: bytearray, start: int, end: int) -> bytes:
    header, footer = tfrecord.HEADER_SIZE, tfrecord.FOOTER_SIZE
    return bytes(buffer[start + header : end - footer])
