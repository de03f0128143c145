"""The bytes of one epoch of a Pipe-mode channel, read from storage ahead of the FIFO.

An epoch is every object of the channel, one after another, as stored (Gzip ones
decompressed), in listing order or, with a ShuffleConfig, in an order drawn from the
seed and the epoch number, so every epoch differs and every run repeats it. With
`RecordWrapperType: RecordIO` each object becomes one RecordIO record, as SageMaker
wraps "each individual S3 object" for algorithms that want RecordIO.

Memory stays bounded: objects are read in CHUNK_BYTES pieces, and the `Prefetcher`
keeps at most `depth` of them waiting for the FIFO.
"""

from __future__ import annotations

import contextlib
import queue
import random
import struct
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from batchform.errors import StorageError
from batchform.records.recordio import MAGIC, MAX_RECORD_SIZE
from batchform.spec.enums import CompressionType
from batchform.storage import InputObject, open_input
from batchform.training.channels import ChannelSpec

CHUNK_BYTES = 1 << 20
#: Chunks read ahead of the FIFO per channel: storage and the algorithm work at once.
PREFETCH_CHUNKS = 16
_GET_TIMEOUT_SECONDS = 0.1
_CLOSE_WAIT_SECONDS = 5.0
_RECORDIO_HEADER = struct.Struct("<II")

Chunks = Generator[bytes, None, None]


def epoch_order(objects: list[InputObject], seed: int | None, epoch: int) -> list[InputObject]:
    """The objects in the order epoch `epoch` streams them: as listed, or shuffled."""
    if seed is None:
        return list(objects)
    shuffled = list(objects)
    # A string seed is hashed (SHA-512) by random: stable across runs and versions.
    random.Random(f"{seed}/{epoch}").shuffle(shuffled)
    return shuffled


def channel_chunks(channel: ChannelSpec, objects: list[InputObject], epoch: int) -> Chunks:
    """Every byte of one epoch of `channel`, in pieces of at most CHUNK_BYTES."""
    for obj in epoch_order(objects, channel.shuffle_seed, epoch):
        if channel.record_wrapper == "RecordIO":
            yield from recordio_wrapped(obj, channel.compression)
        else:
            yield from object_chunks(obj, channel.compression)


def object_chunks(obj: InputObject, compression: str) -> Generator[bytes, None, int]:
    """The object's bytes (decompressed), in pieces; returns how many there were."""
    total = 0
    with open_input(obj, compression) as source:
        while chunk := source.read(CHUNK_BYTES):
            total += len(chunk)
            yield chunk
    return total


def recordio_wrapped(obj: InputObject, compression: str) -> Chunks:
    """The object as one RecordIO record: header, its bytes, padding to 4 bytes.

    The header holds the length, so it must be known before the first byte is sent: the
    listing's size for a plain object, a first pass counting the bytes of a Gzip one.
    """
    length = _content_length(obj, compression)
    if length > MAX_RECORD_SIZE:
        raise StorageError(
            obj.url,
            f"{length} bytes cannot be one RecordIO record (at most {MAX_RECORD_SIZE}); "
            "use RecordWrapperType None",
        )
    yield _RECORDIO_HEADER.pack(MAGIC, length)
    streamed = yield from object_chunks(obj, compression)
    if streamed != length:
        raise StorageError(
            obj.url, f"the object changed while streamed: {streamed} bytes, {length} expected"
        )
    if length % 4:
        yield bytes(4 - length % 4)


def _content_length(obj: InputObject, compression: str) -> int:
    if CompressionType(compression) is CompressionType.NONE and obj.size is not None:
        return obj.size
    total = 0
    with open_input(obj, compression) as source:
        while chunk := source.read(CHUNK_BYTES):
            total += len(chunk)
    return total


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class Prefetcher:
    """Runs `chunks` in a thread of its own, at most `depth` chunks ahead of the reader.

    Iterating yields the chunks and re-raises what the producer raised. `close` (or
    leaving the `with` block) ends the producer between two chunks; so does `stop`.
    """

    def __init__(
        self, chunks: Chunks, stop: threading.Event, depth: int = PREFETCH_CHUNKS, name: str = ""
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._cancelled = threading.Event()
        self._stop = stop
        self._thread = threading.Thread(
            target=self._produce, args=(chunks,), name=f"prefetch-{name}", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while (item := self._get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, bytes)
            yield item

    def close(self) -> None:
        """Stop the producer; wait a little for it (a storage read may hold it longer)."""
        self._cancelled.set()
        with contextlib.suppress(queue.Empty):
            while True:  # room for a producer blocked on a full queue to see the flag
                self._queue.get_nowait()
        self._thread.join(_CLOSE_WAIT_SECONDS)

    def _get(self) -> object:
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=_GET_TIMEOUT_SECONDS)
            except queue.Empty:
                continue
        return _END

    def _produce(self, chunks: Chunks) -> None:
        try:
            with contextlib.closing(chunks):  # closes the object being read, if any
                for chunk in chunks:
                    if not self._put(chunk):
                        return
            self._put(_END)
        except BaseException as exc:  # handed to the reader's thread, raised there
            self._put(_Failed(exc))

    def _put(self, item: object) -> bool:
        while not (self._cancelled.is_set() or self._stop.is_set()):
            try:
                self._queue.put(item, timeout=_GET_TIMEOUT_SECONDS)
                return True
            except queue.Full:
                continue
        return False
