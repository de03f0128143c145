"""Group testing of failed batches: every bad record found alone, every good one answered."""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from batchform.records.batch import Batch
from batchform.records.isolation import (
    LeftmostSearch,
    SearchLanes,
    group_size,
    likely_to_fail,
    piece,
    record_ends,
)
from batchform.records.tfrecord import encode_record
from batchform.spec.enums import SplitType


def isolate(
    bad: set[int], count: int, known_bad: bool, size: int = 0, lanes: int = 4
) -> tuple[SearchLanes, int, int]:
    """The finished lanes, the calls and the rounds they took."""
    tester = SearchLanes(count, known_bad=known_bad, group_size=size, lanes=lanes)
    calls = rounds = 0
    while not tester.done:
        tests = tester.next_round()
        rounds += bool(tests)
        assert len({test.lane for test in tests}) == len(tests)  # one test a lane a round
        for test in tests:
            calls += 1
            tester.report(test, not any(test.first <= i < test.end for i in bad))
    return tester, calls, rounds


def search(bad: set[int], count: int, known_bad: bool, size: int = 0) -> tuple[LeftmostSearch, int]:
    tester = LeftmostSearch(count, known_bad=known_bad, group_size=size)
    calls = 0
    while (test := tester.next_test()) is not None:
        calls += 1
        first, end = test
        tester.report(not any(first <= i < end for i in bad))
    return tester, calls


cases = st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1))))


@settings(max_examples=200, deadline=None)
@given(cases, st.integers(1, 9))
def test_every_bad_record_fails_alone_and_every_good_one_is_answered_once_in_order(
    case: tuple[int, set[int]], lanes: int
) -> None:
    count, bad = case
    for known_bad, size in ((bool(bad), 0), (False, 7), (False, 1)):
        tester, _, _ = isolate(bad, count, known_bad, size, lanes)
        assert tester.failed == sorted(bad)
        answered = [i for first, end in tester.passed for i in range(first, end)]
        assert answered == sorted(set(range(count)) - bad)


@settings(max_examples=200, deadline=None)
@given(cases)
def test_the_leftmost_search_answers_in_order_and_fails_each_bad_record_alone(
    case: tuple[int, set[int]],
) -> None:
    count, bad = case
    for known_bad, size in ((bool(bad), 0), (False, 7), (False, 1), (False, 0)):
        tester, _ = search(bad, count, known_bad, size)
        assert tester.failed == sorted(bad)
        answered = [i for first, end in tester.passed for i in range(first, end)]
        assert answered == sorted(set(range(count)) - bad)  # in order, each once


def test_a_record_that_passes_alone_after_its_group_failed_is_answered() -> None:
    # A model that fails only on records 3 and 4 together: neither is bad alone.
    tester = LeftmostSearch(8, known_bad=True)
    while (test := tester.next_test()) is not None:
        first, end = test
        tester.report(not (first <= 3 and end >= 5))
    assert tester.failed == []
    assert [i for first, end in tester.passed for i in range(first, end)] == list(range(8))


def test_with_a_known_rate_the_calls_come_near_the_information_bound() -> None:
    rng = random.Random(3)
    count, rate = 20_000, 0.01
    bad = {i for i in range(count) if rng.random() < rate}
    _, searched = search(bad, count, known_bad=False, size=group_size(rate))
    # n·H(p) bits are needed (1,616 here), and each bad record fails alone once more.
    assert searched < 1.15 * (1616 + len(bad))
    _, calls, rounds = isolate(bad, count, known_bad=False, size=group_size(rate), lanes=4)
    assert calls < 1.02 * searched  # side by side, the searches lose next to nothing
    assert rounds < 0.3 * calls


def test_group_sizes_follow_the_bad_record_rate() -> None:
    assert group_size(0.0) == 0
    assert group_size(0.01) == 70
    assert group_size(0.5) == 1
    assert likely_to_fail(0.01, 100) and not likely_to_fail(0.01, 50)
    assert not likely_to_fail(0.0, 10**6)


@given(st.lists(st.binary(max_size=5).filter(lambda b: b"\n" not in b), min_size=1), st.booleans())
def test_line_ends_and_pieces_keep_every_byte(lines: list[bytes], trailing: bool) -> None:
    payload = b"\n".join(lines) + (b"\n" if trailing else b"")
    assume(payload)
    count = payload.count(b"\n") + (not payload.endswith(b"\n"))  # as the batchers count
    batch = Batch(payload, 5, count, 100)
    ends = record_ends(payload, SplitType.LINE, count)
    assert len(ends) == count and ends[-1] == len(payload)
    assert all(payload[end - 1] == 10 for end in ends[:-1])
    assume(count > 1)  # a piece holds at least one record
    middle = count // 2
    first, second = piece(batch, ends, 0, middle), piece(batch, ends, middle, count)
    assert first.payload + second.payload == payload
    assert (second.first_record, second.record_count) == (5 + middle, count - middle)
    assert second.offset == 100 + len(first.payload)


def test_framed_record_ends() -> None:
    encoded = [encode_record(bytes([i]) * i) for i in range(4)]
    ends = record_ends(b"".join(encoded), SplitType.TFRECORD, 4)
    assert ends == [sum(len(e) for e in encoded[: i + 1]) for i in range(4)]


def test_without_a_known_rate_the_search_learns_it_from_the_records_it_settles() -> None:
    rng = random.Random(5)
    count = 20_000
    bad = {i for i in range(count) if rng.random() < 0.01}
    _, learning = search(bad, count, known_bad=True)
    _, knowing = search(bad, count, known_bad=True, size=group_size(0.01))
    assert learning < 1.1 * knowing
