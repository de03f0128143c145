"""Pipe input mode: each Pipe channel streamed into FIFOs `<data>/<channel>_<epoch>`.

One feeder thread a channel, independent of the others. Epoch 0's FIFO exists before
the algorithm starts. When the algorithm opens a FIFO the feeder streams one epoch into
it (storage read ahead by a `Prefetcher`); once everything is written, or the reader
closed its end early, the next epoch's FIFO is created *before* the current one is
closed, so a reader that sees the end of epoch N finds `<channel>_<N+1>` already there.
Finished FIFOs are removed; the algorithm may read as many epochs as it likes.

A storage failure mid-stream must not look like the end of an epoch, which the
algorithm would take for a complete (and short) dataset: the feeder keeps the FIFO open
and reports the failure, and the run stops the algorithm before the FIFO is closed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from batchform.errors import StorageError
from batchform.storage import InputObject, list_inputs
from batchform.training.channels import ChannelSpec, host_share
from batchform.training.fifo import create_fifo, open_when_read, write_all
from batchform.training.streams import Prefetcher, channel_chunks

#: How long closing waits for a feeder thread; it never blocks for longer than a poll.
_JOIN_SECONDS = 5.0

Log = Callable[[str], None]


@dataclass(eq=False)
class ChannelFeeder:
    """Feeds one Pipe channel's FIFOs from a thread; `failure` holds what stopped it."""

    channel: ChannelSpec
    objects: list[InputObject]
    data_dir: Path
    log: Log
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = field(default=None, init=False)
    _fifos: set[Path] = field(default_factory=set, init=False)
    _fd: int | None = field(default=None, init=False)  # the FIFO being written
    _thread: threading.Thread | None = field(default=None, init=False)

    def fifo(self, epoch: int) -> Path:
        return self.data_dir / f"{self.channel.name}_{epoch}"

    def start(self) -> None:
        """Create epoch 0's FIFO here (so it exists when `train` starts), feed it in a thread."""
        self._fifos.add(create_fifo(self.fifo(0)))
        name = f"pipe-{self.channel.name}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop feeding, close the FIFO being written and remove every FIFO left."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)
        self._remove_fifos()

    def _run(self) -> None:
        epoch = 0
        try:
            while self._feed_epoch(epoch):
                self._fifos.add(create_fifo(self.fifo(epoch + 1)))
                self._close_fifo()  # the reader's end of file: epoch N+1's FIFO is there
                self._remove(self.fifo(epoch))
                epoch += 1
        except BaseException as exc:  # reported to the run, which stops the algorithm
            self.failure = _in_context(exc, self.channel.name, epoch)
            self.stop.wait()  # the FIFO stays open until then: no early end-of-file
        finally:
            self._close_fifo()
            self._remove_fifos()

    def _feed_epoch(self, epoch: int) -> bool:
        """Stream one epoch once the algorithm opens its FIFO; False if stopped instead.

        Storage is read from before the FIFO is opened, so the first bytes are ready
        the moment the algorithm asks.
        """
        chunks = channel_chunks(self.channel, self.objects, epoch)
        with Prefetcher(chunks, self.stop, name=self.channel.name) as prefetched:
            self._fd = open_when_read(self.fifo(epoch), self.stop)
            if self._fd is None:
                return False
            written, complete = self._write(self._fd, prefetched)
        if self.stop.is_set():
            return False
        how = "streamed" if complete else "closed by the algorithm after"
        self.log(f"channel {self.channel.name}: epoch {epoch} {how} {written:,} bytes")
        return True

    def _write(self, fd: int, chunks: Iterable[bytes]) -> tuple[int, bool]:
        """(bytes written, whether all were): the reader may close its end early."""
        written = 0
        for chunk in chunks:
            if not write_all(fd, chunk, self.stop):
                return written, False
            written += len(chunk)
        return written, True

    def _close_fifo(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _remove(self, path: Path) -> None:
        self._fifos.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _remove_fifos(self) -> None:
        for path in list(self._fifos):
            self._remove(path)


def _in_context(exc: BaseException, channel: str, epoch: int) -> BaseException:
    """A storage failure as FailureReason shows it: the object first, then where it was."""
    if not isinstance(exc, StorageError):
        return exc
    detail = str(exc).removeprefix(f"{exc.url}: ")
    failure = StorageError(exc.url, f"{detail} (Pipe channel {channel!r}, epoch {epoch})")
    failure.__cause__ = exc
    return failure


@dataclass
class PipeFeeders:
    """The feeders of a job's Pipe channels, from before `train` starts until it ended."""

    feeders: list[ChannelFeeder] = field(default_factory=list)

    def __enter__(self) -> PipeFeeders:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check(self) -> None:
        """Raise the first failure of any feeder (the run then fails the job with it)."""
        for feeder in self.feeders:
            if feeder.failure is not None:
                raise feeder.failure

    def close(self) -> None:
        for feeder in self.feeders:
            feeder.stop.set()  # all at once: each then ends within one poll
        for feeder in self.feeders:
            feeder.close()


def start_feeders(
    channels: list[ChannelSpec],
    data_dir: Path,
    log: Log,
    check: Callable[[], None],
    shard: tuple[int, int] = (0, 1),
) -> PipeFeeders:
    """List each Pipe channel's objects (once, as SageMaker does; this host's share of
    them), create its epoch-0 FIFO and start feeding it. `check` may raise between
    channels to interrupt."""
    feeders = PipeFeeders()
    try:
        for channel in (channel for channel in channels if channel.piped):
            check()
            objects = host_share(channel, list_inputs(channel.uri, channel.data_type), shard)
            feeder = ChannelFeeder(channel, objects, data_dir, log)
            feeder.start()
            feeders.feeders.append(feeder)
            log(_describe(channel, objects, feeder.fifo(0)))
    except BaseException:
        feeders.close()
        raise
    return feeders


def _describe(channel: ChannelSpec, objects: list[InputObject], fifo: Path) -> str:
    size = sum(obj.size or 0 for obj in objects)
    extras = [f"{channel.compression} decompressed"] if channel.compression != "None" else []
    if channel.record_wrapper != "None":
        extras.append(f"each object one {channel.record_wrapper} record")
    if channel.shuffle_seed is not None:
        extras.append(f"shuffled with seed {channel.shuffle_seed}")
    note = f" ({', '.join(extras)})" if extras else ""
    return (
        f"channel {channel.name}: Pipe mode, {len(objects)} object(s), {size:,} bytes "
        f"stored{note}, streamed into {fifo.parent}/{channel.name}_<epoch>"
    )
