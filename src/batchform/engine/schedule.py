"""Hands each instance its shard, and the unfinished work of a lost instance to others.

SageMaker's sharding (object i to instance i mod N) decides the first assignment. When
an instance is lost (its Ray actor or node died), its units that were not committed run
again — on a replacement when the cluster has room, else spread over the instances left
— and the progress it had counted for them is taken back, so totals stay those of one
clean run. Outputs are committed atomically per object, so redoing an object is safe.
The job fails for lack of capacity only when no instance is left.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from batchform.engine.executors.base import Counts, InstanceLost, InstancePool, LogLine, NoCapacity
from batchform.engine.instance import Committed, RunUnits, Settled, TransformWork
from batchform.engine.objectrun import ObjectResult
from batchform.engine.progress import JobProgress
from batchform.engine.settings import EffectiveSettings
from batchform.errors import JobStopped
from batchform.jobs.logs import DATA_LOG, stream_sink
from batchform.storage import InputObject

#: A unit lost with its instance this many times fails the job instead of running again.
MAX_ATTEMPTS = 3
_WAIT_SECONDS = 0.25
# Counters of work a lost instance may have to do again; the rest (retries, errors,
# latencies) happened and stay counted.
_REDONE = (
    "records",
    "bad_records",
    "batches",
    "bytes_read",
    "bytes_written",
    "objects_done",
    "objects_failed",
)


@dataclass
class JobEvents:
    """Where instances' events land: the job log, the ledger, settings and progress.

    Also keeps, per instance, the counts it reported and what it committed since it
    started, to take back the counts of work it did not finish when it is lost.
    """

    progress: JobProgress
    log: Callable[[str], None]
    on_commit: Callable[[ObjectResult, int], None] | None = None
    on_settings: Callable[[EffectiveSettings], None] | None = None
    #: Every unit committed so far, by key, whichever instance committed it.
    committed: dict[str, ObjectResult] = field(default_factory=dict)
    _reported: dict[int, Counter[str]] = field(default_factory=dict)
    _done: dict[int, Counter[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, index: int, event: object) -> None:
        if isinstance(event, Counts):
            self._counts(index, event)
        elif isinstance(event, LogLine):
            self.write(event.stream, event.line)
        elif isinstance(event, Committed):
            self._committed(index, event)
        elif isinstance(event, Settled) and self.on_settings is not None:
            self.on_settings(event.settings)

    def write(self, stream: str, line: str) -> None:
        if stream == DATA_LOG:
            self.log(line)
        else:
            stream_sink(self.log, stream)(line)

    def _counts(self, index: int, event: Counts) -> None:
        self.progress.add(**event.counts)
        for seconds in event.latencies:
            self.progress.record_latency(seconds)
        with self._lock:
            self._reported.setdefault(index, Counter()).update(event.counts)

    def _committed(self, index: int, event: Committed) -> None:
        result = event.result
        with self._lock:
            self.committed[result.key] = result
            self._done.setdefault(index, Counter()).update(
                objects_done=1,
                records=result.records,
                bad_records=result.bad_records,
                batches=result.batches,
                bytes_read=result.bytes_read,
                bytes_written=result.bytes_out,
            )
        if self.on_commit is not None:
            self.on_commit(result, event.checksum)

    def take_back(self, index: int) -> None:
        """Leave a lost instance's counts at what its committed units account for.

        What it counted for work it did not commit is taken back; what it committed but
        did not live to count (it died between the two) is added.
        """
        with self._lock:
            reported = self._reported.pop(index, Counter())
            done = self._done.pop(index, Counter())
        undone = {name: reported[name] - done[name] for name in _REDONE}
        self.progress.add(**{name: -value for name, value in undone.items() if value})


@dataclass
class Scheduler:
    """Runs a job's units on a pool of instances until all are done, stopped or failed."""

    pool: InstancePool
    work: TransformWork
    events: JobEvents
    stop: threading.Event
    _running: dict[Future[Any], tuple[int, list[InputObject]]] = field(default_factory=dict)
    _results: list[ObjectResult] = field(default_factory=list)
    _attempts: Counter[str] = field(default_factory=Counter)
    _dead: set[int] = field(default_factory=set)
    _error: BaseException | None = None
    _stopped: bool = False
    _stopping: bool = False

    def run(self, shards: list[list[InputObject]]) -> list[ObjectResult]:
        for index, shard in enumerate(shards):
            if shard:
                self._submit(index, shard)
        while self._running:
            try:
                done, _ = wait(list(self._running), _WAIT_SECONDS, FIRST_COMPLETED)
            except KeyboardInterrupt:
                self.stop.set()
                continue
            if self.stop.is_set():
                self._stop_all()
            for future in done:
                self._settle(future)
        if self._error is not None:
            raise self._error
        if self._stopped:
            raise JobStopped("stopped on request")
        return self._results

    def _submit(self, index: int, units: list[InputObject]) -> None:
        self._running[self.pool.submit(index, RunUnits(self.work, units))] = (index, units)

    def _stop_all(self) -> None:
        if not self._stopping:
            self._stopping = True
            self.pool.stop()

    def _settle(self, future: Future[Any]) -> None:
        index, units = self._running.pop(future)
        try:
            self._results.extend(future.result())
        except InstanceLost as lost:
            self._lost(index, units, lost)
        except JobStopped:
            self._stopped = True
        except BaseException as exc:  # raised once every instance has ended
            self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        """An instance that cannot run stops the others, as in SageMaker."""
        if self._error is None:
            self._error = error
        self._stop_all()

    def _lost(self, index: int, units: list[InputObject], lost: InstanceLost) -> None:
        self.events.take_back(index)
        done = [self.events.committed[u.key] for u in units if u.key in self.events.committed]
        self._results.extend(done)  # finished before the loss: kept, not redone
        left = [unit for unit in units if unit.key not in self.events.committed]
        self.events.log(f"{lost}; {len(left)} of its {len(units)} work unit(s) will run again")
        if self._stopping:
            self._stopped = True
            return
        self._attempts.update(unit.key for unit in left)
        worn = [unit.key for unit in left if self._attempts[unit.key] >= MAX_ATTEMPTS]
        if worn:
            self._fail(
                NoCapacity(f"'{worn[0]}' was lost with its instance {MAX_ATTEMPTS} times: {lost}")
            )
        elif left:
            self._reschedule(index, left, lost)

    def _reschedule(self, index: int, left: list[InputObject], lost: InstanceLost) -> None:
        if self.pool.replace(index):
            self.events.log(f"instance-{index + 1}: replaced; it takes over its unfinished work")
            self._submit(index, left)
            return
        self._dead.add(index)
        alive = [i for i in range(self.pool.count) if i not in self._dead]
        if not alive:
            self._fail(
                NoCapacity(
                    f"{lost}, and no instance is left to take its {len(left)} unfinished work "
                    "unit(s): the cluster has no room for a replacement"
                )
            )
            return
        for taker, share in zip(alive, _deal(left, len(alive)), strict=True):
            if share:
                self.events.log(f"instance-{taker + 1} takes {len(share)} unit(s) of the lost one")
                self._submit(taker, share)


def _deal(units: list[InputObject], hands: int) -> list[list[InputObject]]:
    return [units[index::hands] for index in range(hands)]
