"""Split objects' outputs assembled while the job runs (see `partoutput`), and committed.

Used when the output is local and the instances are threads of this process: the parts'
answers then reach one growing file per object without a file of their own. Otherwise
parts are written as files and joined at the end (`parts.assemble`).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from batchform import storage
from batchform.engine.ledger import FinishedObject, JoinedPrefix
from batchform.engine.objectrun import ObjectResult
from batchform.engine.partoutput import (
    HoldBudget,
    ObjectOutput,
    OnJoined,
    PartCounts,
    PartOutput,
)
from batchform.engine.parts import PARTS_PREFIX, Plan, merge_dead_letters
from batchform.storage import InputObject
from batchform.storage.filesystems import is_local

OnCommit = Callable[[ObjectResult, int], None]


def growing_url(output_path: str, key: str) -> str:
    """Where an object's joined parts grow until the last one is in."""
    return f"{output_path.rstrip('/')}/{PARTS_PREFIX}/{key}/joined"


def can_assemble_as_it_goes(plan: Plan, output_path: str, executor: str) -> bool:
    local_output = is_local(storage.filesystem(output_path)[0])
    return bool(plan.parts_of) and local_output and executor == "local"


class PartAssembler:
    """The growing outputs of a job's split objects, made as their parts first write."""

    def __init__(
        self, plan: Plan, output_path: str, on_joined: OnJoined | None, hold_bytes: int
    ) -> None:
        self._plan = plan
        self._output_path = output_path
        self._on_joined = on_joined
        self._budget = HoldBudget(hold_bytes)
        self._objects: dict[str, ObjectOutput] = {}
        self._resumed: dict[str, JoinedPrefix] = {}
        self._lock = threading.Lock()
        self._woken: queue.SimpleQueue[ObjectOutput | None] = queue.SimpleQueue()
        self._joiner = threading.Thread(target=self._join, name="part-joiner", daemon=True)
        self._joiner.start()

    def resume_from(
        self, joined: dict[str, JoinedPrefix], kept: dict[str, FinishedObject]
    ) -> PartAssembler:
        """Objects an earlier run began: they grow on from what it joined, and take in
        the parts it finished as files of their own (as on Ray) when their turn comes."""
        self._resumed = {
            key: prefix for key, prefix in joined.items() if key in self._plan.parts_of
        }
        for key in self._resumed:
            self._object(key)
        for part_key, entry in kept.items():
            place = self._plan.place(part_key)
            if place is not None and place[1] >= self._object(place[0]).head:
                counts = PartCounts(entry.records, entry.bad_records, 0, entry.size, entry.crc32c)
                self._object(place[0]).part(place[1]).adopt(entry.output_url, counts)
        return self

    def output_for(self, unit: InputObject) -> PartOutput | None:
        """Where a work unit's answers go, if it is a part of a split object."""
        place = self._plan.place(unit.key)
        if place is None:
            return None
        key, index = place
        return self._object(key).part(index)

    def is_part(self, key: str) -> bool:
        return self._plan.place(key) is not None

    def finish(self, on_commit: OnCommit | None, *, keep_pieces: bool) -> list[ObjectResult]:
        """Each split object's result: committed at its `.out` when all its parts are in.

        With `keep_pieces` (the job stopped), what an unfinished object joined stays for
        a resume; a failed object's pieces are removed, as SageMaker leaves no output.
        """
        self._woken.put(None)
        self._joiner.join()
        results = []
        for output in self._objects.values():
            output.close()
            result = self._result(output, on_commit)
            if result.succeeded or not keep_pieces:
                storage.remove(output.url)
                for part_key in self._plan.parts_of[output.key]:  # an earlier run's files
                    storage.remove(storage.output_url(self._output_path, part_key))
            results.append(result)
        return results

    def _join(self) -> None:
        while (output := self._woken.get()) is not None:
            try:
                output.advance()
            except Exception as exc:  # storage failed: the object fails, the job goes on
                output.failed(exc)

    def _object(self, key: str) -> ObjectOutput:
        with self._lock:
            found = self._objects.get(key)
            if found is None:
                found = self._objects[key] = ObjectOutput(
                    key,
                    growing_url(self._output_path, key),
                    len(self._plan.parts_of[key]),
                    self._budget,
                    self._woken.put,
                    self._on_joined,
                    self._resumed.get(key),
                )
            return found

    def _result(self, output: ObjectOutput, on_commit: OnCommit | None) -> ObjectResult:
        obj = self._plan.originals[output.key]
        url = storage.output_url(self._output_path, obj.key)
        result = ObjectResult(obj.key, obj.url, url, bytes_in=obj.size or 0)
        prefix = output.prefix
        if output.error is not None or not output.complete:
            result.error = output.error or RuntimeError("a part did not run")
            return result
        os.makedirs(os.path.dirname(url) or ".", exist_ok=True)
        os.replace(output.url, url)
        result.bytes_out, result.crc32c = prefix.size, prefix.crc32c
        result.records = sum(records for records, _, _ in prefix.part_counts)
        result.bad_records = sum(bad for _, bad, _ in prefix.part_counts)
        result.batches = sum(batches for _, _, batches in prefix.part_counts)
        part_keys = self._plan.parts_of[obj.key]
        merge_dead_letters(obj.key, part_keys, prefix.part_counts, self._output_path)
        if on_commit is not None:
            on_commit(result, prefix.crc32c)
        return result
