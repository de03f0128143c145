"""The ledger: a durable record of what a job finished, so a resumed job redoes only the rest.

One JSON object a line, appended and fsync'd as objects finish: a `start` line with the
spec hash, the model digest and every input's version, then an `object` line per output
committed, with its size and CRC32C, and a `joined` line each time a split object's
output takes in one more part. A line torn by a crash is ignored on reading.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batchform import storage
from batchform.errors import BatchformError
from batchform.storage import InputObject


class ResumeRefused(BatchformError):
    """The job cannot be resumed as asked; the message says what changed."""


@dataclass(frozen=True)
class FinishedObject:
    key: str
    output_url: str
    size: int
    crc32c: int
    records: int
    bad_records: int


@dataclass(frozen=True)
class JoinedPrefix:
    """A split object's first `parts` parts, joined in order at `url`.

    `part_counts` holds each joined part's (good records, bad records, batches).
    """

    key: str
    url: str
    parts: int
    size: int
    crc32c: int
    part_counts: list[tuple[int, int, int]]


@dataclass
class LedgerState:
    spec_sha256: str | None = None
    model_sha256: str | None = None
    inputs: dict[str, str | None] = field(default_factory=dict)
    finished: dict[str, FinishedObject] = field(default_factory=dict)
    joined: dict[str, JoinedPrefix] = field(default_factory=dict)


class Ledger:
    """Appends to `<job dir>/ledger.jsonl`; thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def start(
        self, spec_sha256: str, model_sha256: str | None, objects: Iterable[InputObject]
    ) -> None:
        inputs = {obj.key: obj.version for obj in objects}
        self._append(
            {
                "event": "start",
                "spec_sha256": spec_sha256,
                "model_sha256": model_sha256,
                "inputs": inputs,
            }
        )

    def finished(self, entry: FinishedObject) -> None:
        self._append({"event": "object", **entry.__dict__})

    def joined(self, prefix: JoinedPrefix) -> None:
        self._append({"event": "joined", **prefix.__dict__})

    def read(self) -> LedgerState:
        state = LedgerState()
        if not self.path.exists():
            return state
        for line in self.path.read_bytes().splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the last line of a killed run may be torn
            _apply(state, event)
        return state

    def _append(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event) + b"\n"
        with self._lock, self.path.open("ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def _apply(state: LedgerState, event: dict[str, Any]) -> None:
    if event.get("event") == "start":
        if state.spec_sha256 is None:  # the first run's identity is the one that counts
            state.spec_sha256 = event["spec_sha256"]
            state.model_sha256 = event["model_sha256"]
            state.inputs = dict(event["inputs"])
    elif event.get("event") == "object":
        fields = {name: event[name] for name in FinishedObject.__dataclass_fields__}
        state.finished[event["key"]] = FinishedObject(**fields)
    elif event.get("event") == "joined":
        fields = {name: event[name] for name in JoinedPrefix.__dataclass_fields__}
        fields["part_counts"] = [tuple(counts) for counts in fields["part_counts"]]
        state.joined[event["key"]] = JoinedPrefix(**fields)


def check_resumable(
    state: LedgerState, spec_sha256: str, model_sha256: str | None, objects: list[InputObject]
) -> None:
    """Refuse, saying why, when the spec, the model or an input changed since the first run."""
    if state.spec_sha256 is None:
        raise ResumeRefused("nothing to resume: the job never started")
    if state.spec_sha256 != spec_sha256:
        raise ResumeRefused("the job's spec changed since it started; run it as a new job")
    if state.model_sha256 != model_sha256:
        raise ResumeRefused(
            "the model's artifacts changed since the job started "
            f"(sha256 {state.model_sha256} then, {model_sha256} now)"
        )
    now = {obj.key: obj.version for obj in objects}
    for key, version in state.inputs.items():
        if key not in now:
            raise ResumeRefused(f"input object '{key}' is gone since the job started")
        if now[key] != version:
            raise ResumeRefused(f"input object '{key}' changed since the job started")
    added = sorted(set(now) - set(state.inputs))
    if added:
        raise ResumeRefused(f"input object '{added[0]}' appeared since the job started")


def intact_entries(entries: Iterable[FinishedObject]) -> dict[str, FinishedObject]:
    """The entries whose outputs are still intact, by key; checked side by side, as a
    CRC releases the GIL and an object store answers each read slowly."""
    listed = list(entries)
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        checked = list(pool.map(intact, listed))
    return {entry.key: entry for entry, ok in zip(listed, checked, strict=True) if ok}


def intact(entry: FinishedObject) -> bool:
    """Is the committed output still there, with the size and checksum it was written with?"""
    fs, path = storage.filesystem(entry.output_url)
    try:
        if fs.size(path) != entry.size:
            return False
        return storage.object_crc32c(entry.output_url) == entry.crc32c
    except (OSError, BatchformError):
        return False


def prefix_intact(prefix: JoinedPrefix) -> bool:
    """Is the joined prefix still there, as written? What lies past it (answers of the
    next part, cut short by a kill) does not count."""
    try:
        if os.path.getsize(prefix.url) < prefix.size:
            return False
        return storage.object_crc32c(prefix.url, prefix.size) == prefix.crc32c
    except (OSError, BatchformError):
        return False
