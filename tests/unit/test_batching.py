"""Batchers: every payload within the limit, payloads concatenate to the input, errors located."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.errors import InputFormatError, RecordTooLargeError
from batchform.records import recordio, tfrecord
from batchform.records.batch import Batch
from batchform.records.batching import Batcher, count_newlines, make_batcher, split_batch
from batchform.spec.enums import BatchStrategy, SplitType

MB = 1024 * 1024
MULTI, SINGLE = BatchStrategy.MULTI_RECORD, BatchStrategy.SINGLE_RECORD


def drain(batcher: Batcher, data: bytes, chunk: int) -> list[Batch]:
    batches: list[Batch] = []
    for start in range(0, len(data), chunk):
        batcher.add(data[start : start + chunk])
        while batcher.has_batch():
            batches.append(batcher.next_batch())
    batcher.done_adding()
    while batcher.has_batch():
        batches.append(batcher.next_batch())
    return batches


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def small_limit_batcher(split: SplitType, strategy: BatchStrategy, limit: int) -> Batcher:
    batcher = make_batcher(split, strategy, 1)
    batcher._limit = limit  # byte-sized limits make the properties bite on small inputs
    return batcher


lines = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"x")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(lines, st.booleans(), st.integers(31, 200), st.integers(1, 97))
def test_line_multi_record_properties(
    records: list[bytes], trailing: bool, limit: int, chunk: int
) -> None:
    data = b"\n".join(records) + (b"\n" if trailing and records else b"")
    batches = drain(small_limit_batcher(SplitType.LINE, MULTI, limit), data, chunk)
    assert b"".join(b.payload for b in batches) == data
    assert all(0 < len(b.payload) <= limit for b in batches)
    assert sum(b.record_count for b in batches) == line_count(data)
    assert [b.offset for b in batches] == [
        sum(len(x.payload) for x in batches[:i]) for i in range(len(batches))
    ]
    assert all(b.payload.endswith(b"\n") for b in batches[:-1])


@settings(max_examples=200, deadline=None)
@given(lines, st.integers(1, 97))
def test_line_single_record_is_one_line_per_payload(records: list[bytes], chunk: int) -> None:
    data = b"".join(r + b"\n" for r in records)
    batches = drain(make_batcher(SplitType.LINE, SINGLE, 6), data, chunk)
    assert [b.payload for b in batches] == [r + b"\n" for r in records]
    assert [b.first_record for b in batches] == list(range(len(records)))


def test_multi_record_packs_up_to_the_limit() -> None:
    data = b"".join(b"%07d\n" % i for i in range(1000))  # 8-byte records
    batches = drain(small_limit_batcher(SplitType.LINE, MULTI, 100), data, 333)
    assert {len(b.payload) for b in batches[:-1]} == {96}  # 12 records of 8 bytes


def test_line_larger_than_the_limit_names_record_and_offset() -> None:
    data = b"a\nbb\n" + b"c" * 50 + b"\nd\n"
    batcher = small_limit_batcher(SplitType.LINE, MULTI, 20)
    with pytest.raises(RecordTooLargeError) as caught:
        drain(batcher, data, 7)
    assert caught.value.record_index == 2
    assert caught.value.byte_offset == 5


def test_last_line_without_newline_is_a_record() -> None:
    batches = drain(make_batcher(SplitType.LINE, MULTI, 6), b"1,2\n3,4", 3)
    assert [(b.payload, b.record_count) for b in batches] == [(b"1,2\n3,4", 2)]


def test_empty_object_sends_nothing() -> None:
    for split in SplitType:
        for strategy in BatchStrategy:
            assert drain(make_batcher(split, strategy, 6), b"", 10) == []


def test_whole_object_is_one_payload_and_respects_the_limit() -> None:
    batches = drain(make_batcher(SplitType.NONE, MULTI, 6), b"abc\ndef\n", 3)
    assert [(b.payload, b.record_count) for b in batches] == [(b"abc\ndef\n", 1)]
    with pytest.raises(RecordTooLargeError):
        drain(small_limit_batcher(SplitType.NONE, MULTI, 4), b"abcdef", 2)


def test_no_limit_still_cuts_large_objects_at_line_boundaries() -> None:
    line = b"x" * 1023 + b"\n"
    data = line * (8 * 1024)  # 8 MiB
    batches = drain(make_batcher(SplitType.LINE, MULTI, 0), data, MB)
    assert b"".join(b.payload for b in batches) == data
    assert len(batches) == 2


framed_records = st.lists(st.binary(max_size=40), max_size=30)


@pytest.mark.parametrize(
    ("split", "framing"), [(SplitType.RECORDIO, recordio), (SplitType.TFRECORD, tfrecord)]
)
@settings(max_examples=150, deadline=None)
@given(
    records=framed_records,
    limit=st.integers(80, 400),
    chunk=st.integers(1, 61),
    single=st.booleans(),
)
def test_framed_batches_keep_framing_and_limits(
    split: SplitType, framing: object, records: list[bytes], limit: int, chunk: int, single: bool
) -> None:
    encoded = [framing.encode_record(r) for r in records]  # type: ignore[attr-defined]
    data = b"".join(encoded)
    strategy = SINGLE if single else MULTI
    batches = drain(small_limit_batcher(split, strategy, limit), data, chunk)
    assert b"".join(b.payload for b in batches) == data
    assert sum(b.record_count for b in batches) == len(records)
    assert all(len(b.payload) <= limit for b in batches)
    if single:
        assert [b.payload for b in batches] == encoded
    decoded = [r for b in batches for r in framing.iter_records(b.payload)]  # type: ignore[attr-defined]
    assert decoded == records


def test_truncated_tfrecord_is_reported_with_its_offset() -> None:
    data = tfrecord.encode_record(b"one") + tfrecord.encode_record(b"two")[:-3]
    with pytest.raises(InputFormatError) as caught:
        drain(make_batcher(SplitType.TFRECORD, MULTI, 6), data, 5)
    assert caught.value.byte_offset == len(tfrecord.encode_record(b"one"))
    assert caught.value.record_index == 1


def test_corrupt_recordio_magic_is_reported_with_its_offset() -> None:
    good = recordio.encode_record(b"abcd")
    data = good + b"\x00\x00\x00\x00" + good[4:]
    with pytest.raises(InputFormatError) as caught:
        drain(make_batcher(SplitType.RECORDIO, MULTI, 6), data, 64)
    assert caught.value.byte_offset == len(good)


@settings(max_examples=100, deadline=None)
@given(lines, st.booleans())
def test_split_batch_halves_at_a_record_boundary(records: list[bytes], trailing: bool) -> None:
    data = b"\n".join(records) + (b"\n" if trailing and records else b"")
    for batch in drain(make_batcher(SplitType.LINE, MULTI, 6), data, 1000):
        halves = split_batch(batch, SplitType.LINE)
        if batch.record_count < 2:
            assert halves is None
            continue
        assert halves is not None
        first, second = halves
        assert first.payload + second.payload == batch.payload
        assert first.record_count + second.record_count == batch.record_count
        assert second.first_record == batch.first_record + first.record_count
        assert second.offset == batch.offset + len(first.payload)
        assert first.payload.count(b"\n") == first.record_count


def test_split_batch_of_framed_records() -> None:
    encoded = [tfrecord.encode_record(bytes([i]) * i) for i in range(5)]
    batch = Batch(b"".join(encoded), 10, 5, 100)
    halves = split_batch(batch, SplitType.TFRECORD)
    assert halves is not None
    assert halves[0].payload == b"".join(encoded[:2])
    assert (halves[1].first_record, halves[1].offset) == (12, 100 + len(halves[0].payload))


def test_split_batch_into_many_pieces_keeps_every_record() -> None:
    data = b"".join(b"%d\n" % i for i in range(103)) + b"last"
    (batch,) = drain(make_batcher(SplitType.LINE, MULTI, 6), data, 1 << 20)
    pieces = split_batch(batch, SplitType.LINE, 10)
    assert pieces is not None and len(pieces) == 10
    assert b"".join(p.payload for p in pieces) == data
    assert [p.first_record for p in pieces] == [
        sum(q.record_count for q in pieces[:i]) for i in range(10)
    ]
    assert sum(p.record_count for p in pieces) == 104


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 90_000), min_size=1, max_size=12),
    st.integers(0, 2**20),
    st.integers(0, 2**20),
)
def test_newlines_counted_in_steps_match_bytes_count(
    gaps: list[int], start: int, length: int
) -> None:
    """Spans shorter and longer than a counting step, starting anywhere, newline-dense or not."""
    buffer = b"".join(b"x" * gap + b"\n" for gap in gaps) * 5
    start = min(start, len(buffer))
    end = min(len(buffer), start + length)
    assert count_newlines(buffer, start, end) == buffer.count(b"\n", start, end)
