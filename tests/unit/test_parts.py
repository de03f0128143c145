"""Byte ranges of big line files: newline-aligned, covering the object, joined in order."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.engine.job import TransformOutcome
from batchform.engine.parts import cut
from batchform.errors import ModelError
from batchform.jobs.lifecycle import JobStatus
from batchform.storage import InputObject
from tests.unit.test_engine import outputs, run, write


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=60), st.integers(2, 5))
def test_ranges_start_after_newlines_and_cover_the_object(
    lengths: list[int],
    count: int,
) -> None:
    data = b"".join(b"x" * n + b"\n" for n in lengths)
    path = Path("/tmp") / f"bf-parts-{abs(hash(data))}.csv"
    path.write_bytes(data)
    try:
        parts = cut(InputObject(str(path), "big.csv", len(data)), count)
    finally:
        path.unlink()
    assert parts[0].start == 0 and parts[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert all(data[p.start - 1 : p.start] == b"\n" for p in parts[1:])
    assert len({p.key for p in parts}) == len(parts)


def test_split_object_output_equals_the_unsplit_one(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%s\n" % (i, b"y" * (i % 50)) for i in range(60000))
    write(tmp_path, "big.csv", rows)
    write(tmp_path, "small.csv", b"1\n2\n")
    outcome = run(
        tmp_path,
        lambda p: p.upper(),
        MaxPayloadInMB=1,
        TransformResources={"InstanceCount": 3},
        Environment={"BATCHFORM_SPLIT_OBJECTS_OVER_MB": "1"},
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outputs(tmp_path) == {"big.csv.out": rows.upper(), "small.csv.out": b"1\n2\n"}
    assert [r.key for r in outcome.results] == ["big.csv", "small.csv"]
    assert outcome.results[0].records == 60000
    # The whole object's checksum comes from its parts' without reading them back.
    assert outcome.results[0].crc32c == crc32c.crc32c(rows.upper())
    assert outcome.results[0].bytes_out == len(rows)


def run_split_rejecting(
    tmp_path: Path, marker: bytes, environment: dict[str, str]
) -> TransformOutcome:
    """Objects over 1 MB split over 2 instances; the model rejects payloads with `marker`."""

    def answer(payload: bytes) -> bytes:
        if marker in payload:
            raise ModelError(500, f"cannot score {marker.decode()}")
        return payload

    return run(
        tmp_path,
        answer,
        MaxPayloadInMB=1,
        TransformResources={"InstanceCount": 2},
        ModelClientConfig={"InvocationsMaxRetries": 0},
        Environment={"BATCHFORM_SPLIT_OBJECTS_OVER_MB": "1", **environment},
    )


def test_dead_letters_of_parts_count_records_from_the_object_start(tmp_path: Path) -> None:
    rows = [b"row-%06d-%s\n" % (i, b"z" * 40) for i in range(40000)]
    bad = {5, 25000, 39999}
    for index in bad:
        rows[index] = b"bad-%06d\n" % index
    data = b"".join(rows)
    write(tmp_path, "big.csv", data)

    outcome = run_split_rejecting(
        tmp_path, b"bad", {"BATCHFORM_ON_ERROR": "isolate", "BATCHFORM_MAX_ERRORS": "5"}
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    good = b"".join(r for i, r in enumerate(rows) if i not in bad)
    produced = outputs(tmp_path)
    assert produced["big.csv.out"] == good
    letters = [
        json.loads(line) for line in produced["_batchform/errors/big.csv.jsonl"].splitlines()
    ]
    assert [entry["record_index"] for entry in letters] == sorted(bad)
    assert [entry["byte_offset"] for entry in letters] == [
        data.index(b"bad-%06d" % i) for i in sorted(bad)
    ]
    assert not [key for key in produced if key.startswith("_batchform/parts")]


def test_a_failed_part_fails_its_object_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """SageMaker's rule for a failed object holds for a split one: no `.out`, the other
    objects go on, and no piece of the failed one is left in the output."""
    rows = [b"row-%06d-%s\n" % (i, b"q" * 30) for i in range(60000)]
    rows[45000] = b"poison\n"
    write(tmp_path, "big.csv", b"".join(rows))
    write(tmp_path, "small.csv", b"1\n2\n")

    outcome = run_split_rejecting(tmp_path, b"poison", {})
    assert outcome.status is JobStatus.FAILED
    assert "big.csv" in (outcome.failure_reason or "")
    assert "cannot score poison" in (outcome.failure_reason or "")
    assert outputs(tmp_path) == {"small.csv.out": b"1\n2\n"}


def test_with_no_memory_to_hold_answers_in_later_parts_spill_and_the_output_is_the_same(
    tmp_path: Path,
) -> None:
    rows = b"".join(b"%d,%s\n" % (i, b"s" * (i % 30)) for i in range(50000))
    write(tmp_path, "big.csv", rows)
    outcome = run(
        tmp_path,
        lambda p: p.upper(),
        MaxPayloadInMB=1,
        TransformResources={"InstanceCount": 2},
        Environment={"BATCHFORM_SPLIT_OBJECTS_OVER_MB": "1", "BATCHFORM_SPLIT_HOLD_MB": "0"},
    )
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outputs(tmp_path) == {"big.csv.out": rows.upper()}
