"""Parts written into their object's one output as they go: in order, once, whatever the
order the parts write and finish in, with answers held in memory or spilled to a file."""

from __future__ import annotations

import random
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.engine.ledger import JoinedPrefix
from batchform.engine.partoutput import HoldBudget, ObjectOutput, PartCounts
from batchform.runtimes.spool import SpooledBody


def answers(part: int, count: int) -> list[bytes]:
    return [b"part %d answer %d %s\n" % (part, i, b"x" * (i * 37 % 300)) for i in range(count)]


def counts_of(chunks: list[bytes]) -> PartCounts:
    data = b"".join(chunks)
    return PartCounts(len(chunks), 0, len(chunks), len(data), crc32c.crc32c(data))


def grow(output: ObjectOutput) -> None:
    """What the assembler's joiner thread does on each wake, done at once here."""
    output.advance()


def new_output(tmp_path: Path, parts: int, budget: int, joined: list[JoinedPrefix]) -> ObjectOutput:
    url = str(tmp_path / "parts" / "big.csv" / "joined")
    return ObjectOutput("big.csv", url, parts, HoldBudget(budget), grow, joined.append)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=6),
    st.integers(0, 2**31),
    st.sampled_from([0, 700, 10**9]),
    st.booleans(),
)
def test_any_order_of_writes_and_commits_gives_the_parts_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    seed: int,
    budget: int,
    spooled: bool,
) -> None:
    """Budget 0 spills every held answer to a file; 700 holds a few first; 10**9 holds all."""
    tmp_path = tmp_path_factory.mktemp("out")
    joined: list[JoinedPrefix] = []
    output = new_output(tmp_path, len(sizes), budget, joined)
    chunks = [answers(index, size) for index, size in enumerate(sizes)]
    # Which part acts at each step: its answers one by one, then its commit.
    turns = [index for index, size in enumerate(sizes) for _ in range(size + 1)]
    random.Random(seed).shuffle(turns)
    progress = dict.fromkeys(range(len(sizes)), 0)
    writers = {index: output.part(index) for index in range(len(sizes))}
    for index in turns:
        done = progress[index]
        if done < sizes[index]:
            chunk = chunks[index][done]
            writers[index].write(SpooledBody.of(chunk) if spooled else chunk)
        elif done == sizes[index]:
            writers[index].commit(counts_of(chunks[index]))
        progress[index] += 1
    output.close()
    expected = b"".join(b"".join(part) for part in chunks)
    assert Path(output.url).read_bytes() == expected
    assert output.complete
    assert [prefix.parts for prefix in joined] == list(range(1, len(sizes) + 1))
    assert joined[-1].size == len(expected) and joined[-1].crc32c == crc32c.crc32c(expected)


def test_a_resumed_object_grows_on_from_its_prefix_and_drops_what_lay_past_it(
    tmp_path: Path,
) -> None:
    joined: list[JoinedPrefix] = []
    first = new_output(tmp_path, 3, 10**9, joined)
    head, middle, tail = answers(0, 4), answers(1, 5), answers(2, 2)
    part0 = first.part(0)
    for chunk in head:
        part0.write(chunk)
    part0.commit(counts_of(head))
    first.part(1).write(middle[0])  # part 1 is the head now: straight in; then a kill
    first.file.flush()
    prefix = joined[-1]
    assert prefix.parts == 1
    assert Path(prefix.url).stat().st_size > prefix.size

    again = ObjectOutput("big.csv", prefix.url, 3, HoldBudget(), grow, joined.append, prefix)
    for index, chunks in ((2, tail), (1, middle)):  # the last part finishes first
        writer = again.part(index)
        for chunk in chunks:
            writer.write(chunk)
        writer.commit(counts_of(chunks))
    again.close()
    assert Path(prefix.url).read_bytes() == b"".join(head + middle + tail)
    assert again.complete
    assert [p.parts for p in joined] == [1, 2, 3]


def test_a_failed_part_fails_its_object_and_what_it_held_is_freed(tmp_path: Path) -> None:
    budget = HoldBudget(10**9)
    output = ObjectOutput("big.csv", str(tmp_path / "joined"), 2, budget, grow, None)
    waiting = output.part(1)
    waiting.write(SpooledBody.of(b"held answer\n"))
    assert budget.held == len(b"held answer\n")
    waiting.abort(RuntimeError("the model failed on part 1"))
    assert budget.held == 0
    assert str(output.error) == "the model failed on part 1"
    output.close()


def test_a_part_an_earlier_run_left_as_a_file_goes_in_at_its_turn(tmp_path: Path) -> None:
    """A job first run on Ray writes parts as files; resumed here, they are taken in."""
    earlier = answers(1, 3)
    left = tmp_path / "part-00001.out"
    left.write_bytes(b"".join(earlier))
    output = new_output(tmp_path, 2, 10**9, [])
    output.part(1).adopt(str(left), counts_of(earlier))
    first = output.part(0)
    first.write(b"head\n")
    first.commit(counts_of([b"head\n"]))
    output.close()
    assert Path(output.url).read_bytes() == b"head\n" + b"".join(earlier)
    assert output.complete
