"""Pull-based batchers: bytes of one object in, request payloads out. No I/O, no threads.

Use: `add(chunk)` as bytes arrive, take `next_batch()` while `has_batch()`, then
`done_adding()` and drain. Each batcher keeps only the unconsumed tail of what it was
given, so memory stays about one payload limit plus one chunk.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType

import numpy as np

from batchform.errors import InputFormatError, RecordTooLargeError
from batchform.records import recordio, tfrecord
from batchform.records.batch import Batch
from batchform.records.isolation import piece, record_ends
from batchform.spec.enums import BatchStrategy, SplitType

#: With MaxPayloadInMB=0 (no limit) MultiRecord still cuts payloads near this size, at
#: record boundaries, so that one huge object never becomes one huge request.
UNLIMITED_TARGET_BYTES = 6 * 1024 * 1024

RecordEnd = Callable[[bytes, int, int], "int | None"]

_NEWLINE = ord("\n")
# bytes.count looks for one byte with a plain loop; numpy compares 32 bytes at a time.
# Counted in steps that stay in the cache, so the temporary mask costs no memory to speak
# of; short spans are not worth numpy's call overhead.
_COUNT_STEP = 256 * 1024


def count_newlines(buffer: bytes, start: int, end: int) -> int:
    """How many b"\n" in buffer[start:end], about three times as fast as bytes.count."""
    if end - start < _COUNT_STEP:
        return buffer.count(b"\n", start, end)
    view = np.frombuffer(buffer, np.uint8, end - start, start)
    return sum(
        int(np.count_nonzero(view[lo : lo + _COUNT_STEP] == _NEWLINE))
        for lo in range(0, len(view), _COUNT_STEP)
    )


class Batcher(ABC):
    """Cuts one object's bytes into payloads of whole records.

    Consumed bytes are skipped with a read position rather than sliced off, so cutting
    many small records from one chunk costs one copy per payload, not one per record
    of everything behind it; the buffer is compacted once per `add`.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit  # bytes; 0 means no limit
        self._buffer = b""
        self._pos = 0  # start of the unconsumed bytes in _buffer
        self._offset = 0  # absolute offset of _buffer[_pos] in the object
        self._record = 0  # index of the record starting at _buffer[_pos]
        self._done = False
        self._cut: tuple[int, int] | None = None  # cached answer of _cut_point

    def add(self, chunk: bytes) -> None:
        if self._done:
            raise RuntimeError("add() after done_adding()")
        rest = self._buffer[self._pos :] if self._pos else self._buffer
        self._buffer = rest + chunk if rest else chunk
        self._pos = 0
        self._cut = None

    def done_adding(self) -> None:
        self._done = True
        self._cut = None

    def has_batch(self) -> bool:
        if self._cut is None:
            self._cut = self._cut_point()
        return self._cut is not None

    def next_batch(self) -> Batch:
        if not self.has_batch():
            raise LookupError("no complete batch yet")
        assert self._cut is not None
        end, count = self._cut
        self._cut = None
        batch = Batch(self._buffer[self._pos : self._pos + end], self._record, count, self._offset)
        self._pos += end
        self._offset += end
        self._record += count
        return batch

    @property
    def records_seen(self) -> int:
        return self._record

    @property
    def _pending(self) -> int:
        """Bytes not yet cut into a payload."""
        return len(self._buffer) - self._pos

    @abstractmethod
    def _cut_point(self) -> tuple[int, int] | None:
        """(length, record count) of the next payload from the read position, or None."""

    def _too_large(self, size_hint: str) -> RecordTooLargeError:
        return RecordTooLargeError(
            f"record is larger than MaxPayloadInMB ({self._limit} bytes){size_hint}",
            record_index=self._record,
            byte_offset=self._offset,
        )


class WholeObjectBatcher(Batcher):
    """SplitType=None: the object is one record and one payload."""

    def _cut_point(self) -> tuple[int, int] | None:
        if not self._done or not self._pending:
            return None
        if self._limit and self._pending > self._limit:
            raise self._too_large(f": the object is {self._pending} bytes")
        return self._pending, 1


class LineSingleBatcher(Batcher):
    """SplitType=Line, SingleRecord: one line (with its newline) a payload."""

    def _cut_point(self) -> tuple[int, int] | None:
        newline = self._buffer.find(b"\n", self._pos)
        if newline == -1:
            if self._limit and self._pending > self._limit:
                raise self._too_large("")
            return (self._pending, 1) if self._done and self._pending else None
        length = newline + 1 - self._pos
        if self._limit and length > self._limit:
            raise self._too_large(f": the line is {length} bytes")
        return length, 1


class LineMultiBatcher(Batcher):
    """SplitType=Line, MultiRecord: as many whole lines as fit, cut with rfind.

    No Python loop over lines: one rfind per payload and one count for the record
    number, both in C over the buffer (the count vectorised by numpy).
    """

    def _cut_point(self) -> tuple[int, int] | None:
        size = self._pending
        target = self._limit or UNLIMITED_TARGET_BYTES
        if size == 0 or (size <= target and not self._done):
            return None
        end = size
        if size > target:
            found = self._buffer.rfind(b"\n", self._pos, self._pos + target)
            cut = found + 1 - self._pos if found != -1 else self._oversized_line_end()
            if cut is None:
                return None
            end = cut
        count = count_newlines(self._buffer, self._pos, self._pos + end)
        if self._buffer[self._pos + end - 1] != 0x0A:
            count += 1  # the object's last line has no newline
        return end, count

    def _oversized_line_end(self) -> int | None:
        """The first line does not fit the target: an error, unless there is no limit."""
        if self._limit:
            raise self._too_large("")
        newline = self._buffer.find(b"\n", self._pos)
        if newline != -1:
            return newline + 1 - self._pos
        return self._pending if self._done else None


class FramedBatcher(Batcher):
    """SplitType=RecordIO or TFRecord: whole framed records, framing kept."""

    def __init__(self, limit: int, framing: ModuleType, single: bool) -> None:
        super().__init__(limit)
        self._record_end: RecordEnd = framing.record_end
        self._single = single
        self._scanned = 0  # bytes from the read position already known to be records
        self._found = 0  # how many records those are

    def next_batch(self) -> Batch:
        batch = super().next_batch()
        self._scanned -= len(batch.payload)
        self._found -= batch.record_count
        return batch

    def _cut_point(self) -> tuple[int, int] | None:
        target = self._limit or UNLIMITED_TARGET_BYTES
        while not (self._single and self._found == 1):
            found = self._record_end(
                self._buffer, self._pos + self._scanned, self._offset - self._pos
            )
            if found is None:
                self._check_partial_record_size()
                break
            end = found - self._pos
            if end > target and (self._found or self._limit):
                if self._found == 0:
                    raise self._too_large(f": the record is {end} bytes")
                return self._scanned, self._found
            self._scanned, self._found = end, self._found + 1
        return self._flush_at_end()

    def _check_partial_record_size(self) -> None:
        """A record still arriving that already exceeds the limit fails now, unbuffered."""
        if self._limit and not self._found and self._pending - self._scanned > self._limit:
            raise self._too_large(": the record is still arriving and already larger")

    def _flush_at_end(self) -> tuple[int, int] | None:
        complete = self._single and self._found == 1
        if not complete and not self._done:
            return None
        if self._done and self._scanned < self._pending and (not self._found):
            raise InputFormatError(
                f"truncated record: {self._pending - self._scanned} trailing bytes",
                record_index=self._record + self._found,
                byte_offset=self._offset + self._scanned,
            )
        return (self._scanned, self._found) if self._found else None


def make_batcher(
    split_type: SplitType, strategy: BatchStrategy, max_payload_mb: int, start_offset: int = 0
) -> Batcher:
    """The batcher for one object (or one byte range of it, from `start_offset`)."""
    batcher = _new_batcher(split_type, strategy, max_payload_mb * 1024 * 1024)
    batcher._offset = start_offset  # offsets in errors stay those of the whole object
    return batcher


def _new_batcher(split_type: SplitType, strategy: BatchStrategy, limit: int) -> Batcher:
    single = strategy is BatchStrategy.SINGLE_RECORD
    if split_type is SplitType.NONE:
        return WholeObjectBatcher(limit)
    if split_type is SplitType.LINE:
        return LineSingleBatcher(limit) if single else LineMultiBatcher(limit)
    framing = recordio if split_type is SplitType.RECORDIO else tfrecord
    return FramedBatcher(limit, framing, single)


def read_size(max_payload_mb: int) -> int:
    """How many bytes to read at a time: one payload's worth keeps memory bounded."""
    if not max_payload_mb:
        return UNLIMITED_TARGET_BYTES
    return max(max_payload_mb * 1024 * 1024, 1024 * 1024)


def split_batch(batch: Batch, split_type: SplitType, parts: int = 2) -> list[Batch] | None:
    """The batch cut at record boundaries into `parts` runs of (near) equal record counts.

    None for a single record.
    """
    if batch.record_count < 2 or split_type is SplitType.NONE:
        return None
    parts = max(2, min(parts, batch.record_count))
    ends = record_ends(batch.payload, split_type, batch.record_count)
    bounds = [batch.record_count * index // parts for index in range(parts + 1)]
    return [piece(batch, ends, first, end) for first, end in itertools.pairwise(bounds)]
