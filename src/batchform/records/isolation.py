"""Finding the records a model cannot answer, with as few calls as group testing allows.

A failed batch says only that some record in it is bad. `LeftmostSearch` plans the calls
that find every record that fails on its own, pull-based and without I/O: `next_test`
gives records to call the model on, `report` says how it went. It tests groups from left
to right, halves a failed group (left half first) until its leftmost bad record stands
alone, and lets whatever lay right of that record join the records not yet tested, so
the next test is a whole group again. When the share of bad records is known (or once a
few were found), groups hold about 0.7 / rate records, so about half of them hold no
bad record; that comes within a few percent of the information bound on the number of
calls. A record is dead-lettered only after it failed alone: the model's answer for that
record is what the dead letter says.

`SearchLanes` runs one such search on each of a few consecutive stretches of the
records, one test from each per round: tests within a round do not depend on one
another, so a runtime can run a round's calls at once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from batchform.records import recordio, tfrecord
from batchform.records.batch import Batch
from batchform.spec.enums import SplitType

_NEWLINE = ord("\n")


class LeftmostSearch:
    """The calls that isolate the failing records among `count` consecutive records, one
    at a time: `next_test` gives records [first, end) to call the model on, `report`
    how it went; None once every record is answered or failed alone.

    Records before `_next` are settled; while `_bad_end > _next`, records
    [_next, _bad_end) are known to hold a bad record and are halved, left half first.
    The answered ranges come out in record order. Without a `group_size` (the share of
    bad records is not known yet), the groups follow the share found so far.
    """

    def __init__(self, count: int, *, known_bad: bool, group_size: int = 0) -> None:
        self.passed: list[tuple[int, int]] = []  # record ranges answered in one call, in order
        self.failed: list[int] = []  # records that failed alone, in order
        self._count = count
        self._learn_size = not group_size
        self._size = max(1, group_size or count)
        self._next = 0
        self._bad_end = count if known_bad else 0
        self._test = (0, 0)

    def next_test(self) -> tuple[int, int] | None:
        first, bad_end = self._next, self._bad_end
        if first >= self._count:
            return None
        if bad_end > first:  # halve; a lone record must still fail alone to be dead
            end = first + max(1, (bad_end - first) // 2)
        else:
            end = min(self._count, first + self._size)
        self._test = (first, end)
        return self._test

    def report(self, succeeded: bool) -> None:
        first, end = self._test
        if succeeded:
            self.passed.append(self._test)
            self._next = end  # the bad record, if one is known, lies further right
        elif end - first == 1:
            self.failed.append(first)
            self._next = self._bad_end = end  # what lay right of it is untested again
            if self._learn_size and len(self.failed) >= BAD_RECORDS_TO_PLAN_ON:
                self._size = max(1, group_size(len(self.failed) / end))
        else:
            self._bad_end = end


@dataclass(frozen=True, slots=True)
class Test:
    """Records [first, end) of the batch, in one call, for the search of `lane`."""

    first: int
    end: int
    lane: int

    @property
    def count(self) -> int:
        return self.end - self.first


class SearchLanes:
    """`LeftmostSearch`es over `lanes` consecutive stretches of `count` records: rounds
    of tests that can run at once (`next_round`, then `report` each), until `done`.

    The answered ranges and failed records are given in record order, as one search
    gives them.
    """

    def __init__(self, count: int, *, known_bad: bool, group_size: int = 0, lanes: int) -> None:
        lanes = max(1, min(lanes, count))
        bounds = [count * index // lanes for index in range(lanes + 1)]
        self._starts = bounds[:-1]
        # A whole batch known to fail says nothing of which stretch holds the bad record.
        self._searches = [
            LeftmostSearch(end - start, known_bad=known_bad and lanes == 1, group_size=group_size)
            for start, end in itertools.pairwise(bounds)
        ]
        self._open = list(range(lanes))

    @property
    def done(self) -> bool:
        return not self._open

    def next_round(self) -> list[Test]:
        tests: list[Test] = []
        for lane in self._open:
            found = self._searches[lane].next_test()
            if found is not None:
                start = self._starts[lane]
                tests.append(Test(start + found[0], start + found[1], lane))
        self._open = [test.lane for test in tests]
        return tests

    def report(self, test: Test, succeeded: bool) -> None:
        self._searches[test.lane].report(succeeded)

    @property
    def passed(self) -> list[tuple[int, int]]:
        return [
            (start + first, start + end)
            for start, search in zip(self._starts, self._searches, strict=True)
            for first, end in search.passed
        ]

    @property
    def failed(self) -> list[int]:
        return [
            start + index
            for start, search in zip(self._starts, self._searches, strict=True)
            for index in search.failed
        ]


BAD_RECORDS_TO_PLAN_ON = 3  # found before their share is trusted to size the groups


def group_size(rate: float) -> int:
    """Records per first group for a bad-record share `rate` (1: test each alone)."""
    if rate <= 0:
        return 0
    return max(1, round(0.7 / rate)) if rate < 0.38 else 1


def likely_to_fail(rate: float, records: int) -> bool:
    """Whether a batch of `records` more likely holds a bad record than not."""
    return rate > 0 and math.exp(-rate * records) < 0.5


def record_ends(payload: bytes, split_type: SplitType, count: int) -> list[int]:
    """Byte offset just past each of the payload's `count` records."""
    if split_type is SplitType.LINE:
        return _line_ends(payload)
    framing = recordio if split_type is SplitType.RECORDIO else tfrecord
    ends: list[int] = []
    end = 0
    for _ in range(count):
        found = framing.record_end(payload, end, 0)
        if found is None:
            raise ValueError("payload holds fewer records than its batch says")
        end = found
        ends.append(end)
    return ends


def _line_ends(payload: bytes) -> list[int]:
    # One vectorised scan: a megabyte payload holds tens of thousands of lines.
    ends: list[int] = (np.flatnonzero(np.frombuffer(payload, np.uint8) == _NEWLINE) + 1).tolist()
    if not payload.endswith(b"\n"):
        ends.append(len(payload))  # the object's last line has no newline
    return ends


def piece(batch: Batch, ends: list[int], first: int, end: int) -> Batch:
    """Records [first, end) of `batch` as a batch of their own (`ends` from record_ends)."""
    start = ends[first - 1] if first else 0
    stop = ends[end - 1]
    return Batch(
        batch.payload[start:stop], batch.first_record + first, end - first, batch.offset + start
    )
