"""One input object in flight: responses arrive out of order, the `.out` is written in order.

Slots of the instance's in-flight window are held by a batch until its response is
written (or dropped because the object failed), so responses waiting behind a slow
batch count against the window and memory stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

import crc32c
import orjson

from batchform import storage
from batchform.engine.checksum import crc32c_combine
from batchform.engine.invoker import DeadLetter, Segment, segment_size, write_segment
from batchform.engine.partoutput import PartCounts, PartOutput
from batchform.storage import InputObject


@dataclass
class ObjectResult:
    key: str
    url: str
    output_url: str
    error: BaseException | None = None
    records: int = 0
    bad_records: int = 0
    batches: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: What the pipeline read of it (decompressed), as progress counted it.
    bytes_read: int = 0
    #: CRC32C of the committed output (None until it is committed).
    crc32c: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class ObjectRun:
    """Collects one object's responses and commits its output once all are written."""

    def __init__(
        self,
        obj: InputObject,
        output_url: str,
        output_path: str,
        release: Callable[[int], None],
        on_commit: Callable[[ObjectResult, int], None] | None = None,
        part_output: PartOutput | None = None,
    ) -> None:
        self.result = ObjectResult(obj.key, obj.url, output_url, bytes_in=obj.size or 0)
        self._on_commit = on_commit
        #: A split object's part writes into the object's output, not a file of its own.
        self._part_output = part_output
        self.start_offset = obj.start
        self._crc32c = 0  # of everything written, for the ledger
        self._errors_url = (
            storage.output_url(
                f"{output_path.rstrip('/')}/_batchform/errors", obj.key
            ).removesuffix(".out")
            + ".jsonl"
        )
        self.dead_letters: list[DeadLetter] = []
        self._release = release
        self._lock = threading.Lock()
        self._pending: dict[int, list[Segment]] = {}
        self._sent = 0
        self._written = 0
        self._reading_done = False
        self._closed = False
        self._sink: AbstractContextManager[BinaryIO] | None = None
        self._file: BinaryIO | None = None

    @property
    def failed(self) -> bool:
        return self.result.error is not None

    @property
    def finished(self) -> bool:
        return self._closed

    def next_sequence(self) -> int:
        with self._lock:
            self._sent += 1
            return self._sent - 1

    def deliver(
        self, sequence: int, parts: list[Segment], records: int, dead_letters: list[DeadLetter]
    ) -> None:
        """An answer arrived; write it and every answer now in order behind it."""
        with self._lock:
            if self.failed or self._closed:
                self._release(1)
                _discard(parts)
                return
            self._pending[sequence] = parts
            self.result.records += records - len(dead_letters)
            self.result.bad_records += len(dead_letters)
            self.dead_letters.extend(dead_letters)
            try:
                self._flush()
                self._commit_if_complete()
            except Exception as exc:  # storage failed under us: the object fails whole
                self._fail_locked(exc)

    def reading_done(self) -> None:
        with self._lock:
            self._reading_done = True
            if self.failed:
                return
            try:
                self._commit_if_complete()
            except Exception as exc:
                self._fail_locked(exc)

    def fail(self, error: BaseException, *, holds_slot: bool = False) -> None:
        """The object cannot be transformed: drop its output; nothing partial is kept."""
        with self._lock:
            if holds_slot:
                self._release(1)
            if not self.failed and not self._closed:
                self._fail_locked(error)

    def _fail_locked(self, error: BaseException) -> None:
        self.result.error = error
        self._release(len(self._pending))
        for parts in self._pending.values():
            _discard(parts)
        self._pending.clear()
        self._abort()

    def _flush(self) -> None:
        while self._written in self._pending:
            parts = self._pending[self._written]
            for part in parts:
                self._write(part)
            del self._pending[self._written]  # on a failure above, _fail_locked frees it
            _discard(parts)
            self._release(1)
            self._written += 1
            self.result.batches += 1

    def _write(self, part: Segment) -> None:
        if self._part_output is not None:
            self._part_output.write(part)
        else:
            write_segment(self._open(), part)
        if isinstance(part, bytes):
            self._crc32c = crc32c.crc32c(part, self._crc32c)
        else:
            self._crc32c = crc32c_combine(self._crc32c, part.crc32c, part.size)
        self.result.bytes_out += segment_size(part)

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._sink = storage.atomic_output(self.result.output_url)
            self._file = self._sink.__enter__()
        return self._file

    def _commit_if_complete(self) -> None:
        if self._closed or not self._reading_done or self._written < self._sent:
            return
        self._closed = True
        if self._part_output is None:
            self._open()  # an empty object still gets its (empty) .out
            sink, self._sink = self._sink, None
            assert sink is not None
            sink.__exit__(None, None, None)
        if self.dead_letters:
            self._write_dead_letters()
        self.result.crc32c = self._crc32c
        if self._part_output is not None:
            result = self.result
            counts = (result.records, result.bad_records, result.batches, result.bytes_out)
            self._part_output.commit(PartCounts(*counts, self._crc32c))
        if self._on_commit is not None:
            self._on_commit(self.result, self._crc32c)

    def _write_dead_letters(self) -> None:
        """`_batchform/errors/<key>.jsonl`: one line per bad record, in record order."""
        ordered = sorted(self.dead_letters, key=lambda letter: letter.record_index)
        lines = b"".join(orjson.dumps(letter.to_json()) + b"\n" for letter in ordered)
        storage.write_bytes(self._errors_url, lines)

    def _abort(self) -> None:
        self._closed = True
        if self._part_output is not None:
            self._part_output.abort(self.result.error or RuntimeError("aborted"))
        sink, self._sink = self._sink, None
        if sink is not None:
            error = self.result.error or RuntimeError("aborted")
            sink.__exit__(type(error), error, error.__traceback__)


def _discard(parts: list[Segment]) -> None:
    """Free the spool files of answers that are written or will never be."""
    for part in parts:
        if not isinstance(part, bytes):
            part.close()
