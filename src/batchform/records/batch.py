"""The unit of work the engine sends to a model: one payload cut from one object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive records of one object, as one request payload.

    `offset` is the byte offset of the payload's first byte in the (decompressed)
    object and `first_record` the index of its first record, so any error can say
    where it happened. Payloads keep the records' framing (newlines, RecordIO or
    TFRecord headers) exactly as in the input: concatenated, they are the object.
    """

    payload: bytes
    first_record: int
    record_count: int
    offset: int

    @property
    def end_offset(self) -> int:
        return self.offset + len(self.payload)
