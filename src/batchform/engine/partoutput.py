"""A split object's parts written into its one output as they go, each byte written once.

Parts written to files of their own and joined at the end cost a second copy of the
whole output, made while every instance sat idle, and twice the writing for the page
cache. Here (local outputs, instances in this process) the part whose predecessors are
all in (the head) writes straight into the object's growing output; the parts after it
hold their answers in memory (the answers' own in-memory files) until their turn, then
go in and write straight on. Past a memory budget (`BATCHFORM_SPLIT_HOLD_MB`), held
answers spill to a file.

Each time the head moves on, the ledger records the joined prefix (`JoinedPrefix`),
so a resumed job keeps every part already in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import BinaryIO

from batchform.engine.checksum import crc32c_combine
from batchform.engine.invoker import Segment, segment_size, write_segment
from batchform.engine.ledger import JoinedPrefix
from batchform.runtimes.spool import SpooledBody
from batchform.spec.extensions import DEFAULT_SPLIT_HOLD_MB

OnJoined = Callable[[JoinedPrefix], None]


class HoldBudget:
    """Bytes of held answers, job-wide (BATCHFORM_SPLIT_HOLD_MB, 512 by default)."""

    def __init__(self, limit: int = DEFAULT_SPLIT_HOLD_MB * 2**20) -> None:
        self._limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bool:
        with self._lock:
            if self._held + size > self._limit:
                return False
            self._held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._held -= size


@dataclass
class PartCounts:
    records: int
    bad_records: int
    batches: int
    size: int
    crc32c: int


class PartOutput:
    """One part's answers: held until the part is the head, then written straight in."""

    def __init__(self, owner: ObjectOutput, index: int) -> None:
        self._owner = owner
        self.index = index
        self.direct = False
        self.counts: PartCounts | None = None  # set when the part is complete
        self._held: list[Segment] = []
        self._held_bytes = 0
        self._spill: BinaryIO | None = None
        self._lock = threading.Lock()

    def write(self, segment: Segment) -> None:
        with self._lock:
            if self.direct:
                write_segment(self._owner.file, segment)
            elif self._spill is not None or not self._owner.budget.take(segment_size(segment)):
                write_segment(self._spilled(), segment)
            else:
                self._held.append(_kept(segment))
                self._held_bytes += segment_size(segment)

    def commit(self, counts: PartCounts) -> None:
        self._owner.completed(self, counts)

    def abort(self, error: BaseException) -> None:
        with self._lock:
            self._drop()
        self._owner.failed(error)

    def go_direct(self, file: BinaryIO) -> None:
        """This part is the head now: what it held goes in, and the rest straight after."""
        with self._lock:
            if self._spill is not None:
                self._spill.seek(0)
                shutil.copyfileobj(self._spill, file)
            for segment in self._held:
                write_segment(file, segment)
            self._drop()
            self.direct = True

    def adopt(self, path: str, counts: PartCounts) -> None:
        """The part was finished by an earlier run, into a file of its own: it goes in
        from there when its turn comes."""
        with self._lock:
            self._spill = open(path, "rb")  # noqa: SIM115 - closed by _drop
        self.commit(counts)

    def discard(self) -> None:
        with self._lock:
            self._drop()

    def _spilled(self) -> BinaryIO:
        if self._spill is None:
            # closed by _drop, on the part going in or being dropped
            self._spill = tempfile.TemporaryFile(dir=os.path.dirname(self._owner.url))  # noqa: SIM115
            for segment in self._held:
                write_segment(self._spill, segment)
            self._release_held()
        return self._spill

    def _drop(self) -> None:
        self._release_held()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _release_held(self) -> None:
        for segment in self._held:
            if isinstance(segment, SpooledBody):
                segment.close()
        self._held = []
        self._owner.budget.give_back(self._held_bytes)
        self._held_bytes = 0


@dataclass
class ObjectOutput:
    """The growing output of one split object, and the parts writing into it."""

    key: str
    url: str
    part_count: int
    budget: HoldBudget
    #: Called when a part completes; the owner then calls `advance`, off the instance's
    #: own thread, so the part that finished first does not stall to move the others in.
    wake: Callable[[ObjectOutput], None]
    on_joined: OnJoined | None = None
    #: What an earlier run joined, to grow on from.
    resumed: InitVar[JoinedPrefix | None] = None
    error: BaseException | None = None
    prefix: JoinedPrefix = field(init=False)
    file: BinaryIO = field(init=False)
    _parts: dict[int, PartOutput] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self, resumed: JoinedPrefix | None) -> None:
        os.makedirs(os.path.dirname(self.url), exist_ok=True)
        if resumed is None:
            self.prefix = JoinedPrefix(self.key, self.url, 0, 0, 0, [])
            self.file = open(self.url, "wb")  # noqa: SIM115 - closed by close()
        else:
            self.prefix = resumed
            self.file = open(self.url, "r+b")  # noqa: SIM115 - closed by close()
            self.file.truncate(resumed.size)
            self.file.seek(resumed.size)

    @property
    def head(self) -> int:
        return self.prefix.parts

    @property
    def complete(self) -> bool:
        return self.head == self.part_count

    def part(self, index: int) -> PartOutput:
        with self._lock:
            part = self._parts[index] = PartOutput(self, index)
            if index == self.head:
                part.direct = True
        return part

    def completed(self, part: PartOutput, counts: PartCounts) -> None:
        with self._lock:
            part.counts = counts
        self.wake(self)

    def advance(self) -> None:
        """Join every complete part at the head; the next one goes in and writes on."""
        with self._lock:
            while self.error is None and (head := self._parts.get(self.head)) is not None:
                head.go_direct(self.file)  # what it held goes in first
                if head.counts is None:
                    break  # still running: it writes straight in from now on
                self._join(head.counts)
                del self._parts[head.index]

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.error = self.error or error

    def close(self) -> None:
        with self._lock:
            for part in self._parts.values():
                part.discard()
            self.file.close()

    def _join(self, counts: PartCounts) -> None:
        self.file.flush()
        prefix = self.prefix
        self.prefix = JoinedPrefix(
            self.key,
            self.url,
            prefix.parts + 1,
            prefix.size + counts.size,
            crc32c_combine(prefix.crc32c, counts.crc32c, counts.size),
            [*prefix.part_counts, (counts.records, counts.bad_records, counts.batches)],
        )
        if self.on_joined is not None:
            self.on_joined(self.prefix)


def _kept(segment: Segment) -> Segment:
    """A segment to hold past its writer's clean-up: an answer file's own descriptor."""
    if isinstance(segment, bytes):
        return segment
    return SpooledBody(os.dup(segment.fd), segment.size, segment.crc32c, segment.ends_with_newline)
