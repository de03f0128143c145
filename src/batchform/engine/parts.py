"""One big file, many workers: line-split objects cut into newline-aligned byte ranges.

SageMaker gives each object to one instance, so one big file leaves the others idle.
With `BATCHFORM_SPLIT_OBJECTS_OVER_MB`, an uncompressed Line-split object above that size
is cut into ranges of about that size, as many as a multiple of the instances so that
each gets the same share. Each range is transformed like an object of its own and the
parts' answers end up in the one `.out`, in order: written into it as they go when the
output is local and the instances run here (`joining`), else written under
`_batchform/parts/` and joined once all succeed (`assemble`). A failed part fails its
object, as in SageMaker.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import orjson

from batchform import storage
from batchform.engine.checksum import crc32c_combine
from batchform.engine.ledger import FinishedObject
from batchform.engine.objectrun import ObjectResult
from batchform.errors import StorageError
from batchform.spec.enums import CompressionType, SplitType
from batchform.spec.extensions import extensions
from batchform.spec.transform import CreateTransformJobRequest
from batchform.storage import InputObject

PARTS_PREFIX = "_batchform/parts"
_WINDOW = 64 * 1024


@dataclass(frozen=True)
class Plan:
    """Work units in order, and for each split object the keys of its parts."""

    units: list[InputObject]
    parts_of: dict[str, list[str]]
    originals: dict[str, InputObject]

    def owner(self, unit_key: str) -> str:
        """The object a work unit belongs to (itself, unless it is a part)."""
        place = self.place(unit_key)
        return place[0] if place is not None else unit_key

    def place(self, unit_key: str) -> tuple[str, int] | None:
        """(object key, part index) of a part; None for a whole object."""
        return self._places.get(unit_key)

    @cached_property
    def _places(self) -> dict[str, tuple[str, int]]:
        return {
            part: (key, index)
            for key, part_keys in self.parts_of.items()
            for index, part in enumerate(part_keys)
        }


def plan(objects: list[InputObject], request: CreateTransformJobRequest) -> Plan:
    threshold = extensions(request.environment).split_over_bytes
    instances = request.transform_resources.instance_count
    splittable = (
        threshold is not None
        and instances > 1
        and request.transform_input.split_type is SplitType.LINE
        and request.transform_input.compression_type is CompressionType.NONE
    )
    units: list[InputObject] = []
    parts_of: dict[str, list[str]] = {}
    originals: dict[str, InputObject] = {}
    for obj in objects:
        if not splittable or obj.size is None or obj.size <= (threshold or 0):
            units.append(obj)
            continue
        parts = cut(obj, part_count(obj.size, threshold or 1, instances))
        units.extend(parts)
        parts_of[obj.key] = [part.key for part in parts]
        originals[obj.key] = obj
    return Plan(units, parts_of, originals)


def part_count(size: int, part_size: int, instances: int) -> int:
    """Ranges of about `part_size`, in a multiple of `instances` so that shares are even."""
    rounds = math.ceil(math.ceil(size / part_size) / instances)
    return instances * max(1, rounds)


def cut(obj: InputObject, count: int) -> list[InputObject]:
    """`count` ranges that start right after a newline (empty ranges dropped)."""
    assert obj.size is not None
    bounds = [0]
    for index in range(1, count):
        bounds.append(max(bounds[-1], line_start_at_or_after(obj.url, obj.size * index // count)))
    bounds.append(obj.size)
    ranges = [(start, end) for start, end in itertools.pairwise(bounds) if end > start]
    return [
        replace(obj, key=part_key(obj.key, index), start=start, end=end)
        for index, (start, end) in enumerate(ranges)
    ]


def part_key(key: str, index: int) -> str:
    return f"{PARTS_PREFIX}/{key}/part-{index:05d}"


def line_start_at_or_after(url: str, position: int) -> int:
    """The offset just past the first newline at or after position - 1 (or the end)."""
    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as handle:
        offset = max(0, position - 1)
        handle.seek(offset)
        while window := bytes(handle.read(_WINDOW)):
            found = window.find(b"\n")
            if found != -1:
                return offset + found + 1
            offset += len(window)
    return offset


def assemble(
    plan_: Plan,
    results: list[ObjectResult],
    kept: dict[str, FinishedObject],
    output_path: str,
    on_commit: Callable[[ObjectResult, int], None] | None,
) -> list[ObjectResult]:
    """Join each split object's parts into its `.out`; results with parts replaced."""
    by_key = {result.key: result for result in results}
    joined = [
        _join(plan_.originals[key], keys, by_key, kept, output_path, on_commit)
        for key, keys in plan_.parts_of.items()
        if any(part in by_key for part in keys)
    ]
    singles = [result for result in results if not result.key.startswith(PARTS_PREFIX + "/")]
    return sorted(singles + joined, key=lambda result: result.key)


def _join(
    obj: InputObject,
    keys: list[str],
    by_key: dict[str, ObjectResult],
    kept: dict[str, FinishedObject],
    output_path: str,
    on_commit: Callable[[ObjectResult, int], None] | None,
) -> ObjectResult:
    url = storage.output_url(output_path, obj.key)
    result = ObjectResult(obj.key, obj.url, url, bytes_in=obj.size or 0)
    parts = [_part(key, by_key, kept) for key in keys]
    failed = [part for part in parts if isinstance(part, ObjectResult) and part.error]
    if failed or any(part is None for part in parts):
        result.error = failed[0].error if failed else RuntimeError("a part did not run")
    else:
        checksum = _concatenate([p for p in parts if p is not None], url, result)
        counts = [(p.records, p.bad_records) if p is not None else (0, 0) for p in parts]
        merge_dead_letters(obj.key, keys, counts, output_path)
        if on_commit is not None:
            on_commit(result, checksum)
    for key in keys:
        storage.remove(storage.output_url(output_path, key))
    return result


def _part(
    key: str, by_key: dict[str, ObjectResult], kept: dict[str, FinishedObject]
) -> ObjectResult | FinishedObject | None:
    return by_key.get(key) or kept.get(key)


def _concatenate(parts: list[ObjectResult | FinishedObject], url: str, result: ObjectResult) -> int:
    """Join the parts' outputs into `url`; the CRC32C of the whole from the parts' own."""
    checksums = [
        part.crc32c if part.crc32c is not None else storage.object_crc32c(part.output_url)
        for part in parts
    ]
    sizes = storage.join_objects([part.output_url for part in parts], url)
    checksum = 0
    for part, size, part_checksum in zip(parts, sizes, checksums, strict=True):
        checksum = crc32c_combine(checksum, part_checksum, size)
        result.bytes_out += size
        result.records += part.records
        result.bad_records += part.bad_records
        result.batches += getattr(part, "batches", 0)
    result.crc32c = checksum
    return checksum


def merge_dead_letters(
    key: str,
    part_keys: list[str],
    part_counts: Sequence[Sequence[int]],
    output_path: str,
) -> None:
    """Parts number records from 0; the object's dead letters count from its start.

    `part_counts` holds each part's (good records, bad records, ...).
    """
    errors_root = f"{output_path.rstrip('/')}/_batchform/errors"
    lines: list[bytes] = []
    base = 0
    for part_key_, counts in zip(part_keys, part_counts, strict=True):
        url = storage.output_url(errors_root, part_key_).removesuffix(".out") + ".jsonl"
        lines.extend(_shifted(url, base, key))
        storage.remove(url)
        base += counts[0] + counts[1]
    if lines:
        target = storage.output_url(errors_root, key).removesuffix(".out") + ".jsonl"
        storage.write_bytes(target, b"".join(lines))


def _shifted(url: str, base: int, key: str) -> list[bytes]:
    try:
        content = storage.read_bytes(url)
    except StorageError:  # this part had no dead letters
        return []
    shifted = []
    for line in content.splitlines():
        entry = orjson.loads(line)
        entry["record_index"] += base
        entry["object"] = key
        shifted.append(orjson.dumps(entry) + b"\n")
    return shifted
