"""The feeding side of Pipe mode, piece by piece: object order, RecordIO wrapping,
read-ahead, and the FIFO's write end (a real FIFO and a reader thread, no processes)."""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchform.errors import StorageError
from batchform.records import recordio
from batchform.storage import InputObject, list_inputs
from batchform.training.channels import ChannelSpec
from batchform.training.fifo import create_fifo, open_when_read, write_all
from batchform.training.streams import Prefetcher, channel_chunks, epoch_order


def objects(count: int) -> list[InputObject]:
    return [InputObject(f"/data/{i}", f"{i}", 1) for i in range(count)]


def test_objects_keep_their_listing_order_without_a_shuffle_config() -> None:
    listed = objects(5)
    assert [epoch_order(listed, None, epoch) for epoch in range(3)] == [listed] * 3


def test_a_seed_gives_each_epoch_its_own_repeatable_order() -> None:
    listed = objects(20)
    orders = [epoch_order(listed, 42, epoch) for epoch in range(3)]
    assert orders == [epoch_order(listed, 42, epoch) for epoch in range(3)]  # repeatable
    assert all(sorted(order, key=lambda obj: int(obj.key)) == listed for order in orders)
    assert len({tuple(order) for order in [*orders, listed]}) == 4
    assert epoch_order(listed, 43, 0) != orders[0]


@pytest.fixture
def channel_files(tmp_path: Path) -> Path:
    for name, data in {"a": b"12345", "b": b"", "c": b"abcdefgh"}.items():
        (tmp_path / "ch" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "ch" / name).write_bytes(data)
    return tmp_path / "ch"


def epoch_bytes(spec: ChannelSpec, epoch: int = 0) -> bytes:
    return b"".join(channel_chunks(spec, list_inputs(spec.uri, spec.data_type), epoch))


def test_an_epoch_is_the_objects_one_after_another(channel_files: Path) -> None:
    assert epoch_bytes(ChannelSpec("ch", str(channel_files), input_mode="Pipe")) == b"12345abcdefgh"


@pytest.mark.parametrize("compression", ["None", "Gzip"])
def test_a_recordio_wrapper_frames_each_object_as_mxnet_would(
    channel_files: Path, compression: str
) -> None:
    if compression == "Gzip":
        for path in channel_files.iterdir():
            path.write_bytes(gzip.compress(path.read_bytes()))
    spec = ChannelSpec("ch", str(channel_files), compression=compression, record_wrapper="RecordIO")
    framed = b"".join(recordio.encode_frame(data) for data in (b"12345", b"", b"abcdefgh"))
    assert epoch_bytes(spec) == framed


def test_a_wrapped_object_that_changed_size_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"longer than listed")
    spec = ChannelSpec("ch", str(tmp_path / "a"), record_wrapper="RecordIO")
    listed = [InputObject(str(tmp_path / "a"), "a", 4)]
    with pytest.raises(StorageError, match="changed while streamed"):
        b"".join(channel_chunks(spec, listed, 0))


# --- Prefetcher ---------------------------------------------------------------------------


def counted(produced: list[int], count: int) -> Iterator[bytes]:
    for number in range(count):
        produced.append(number)
        yield str(number).encode()


def test_the_prefetcher_hands_over_every_chunk_in_order() -> None:
    produced: list[int] = []
    with Prefetcher(counted(produced, 100), threading.Event(), depth=3) as chunks:
        assert [int(chunk) for chunk in chunks] == list(range(100))


def test_the_prefetcher_reads_at_most_depth_ahead_and_stops_when_closed() -> None:
    produced: list[int] = []
    prefetcher = Prefetcher(counted(produced, 1000), threading.Event(), depth=4)
    iterator = iter(prefetcher)
    assert next(iterator) == b"0"
    time.sleep(0.2)  # time enough to run ahead, were it not bounded
    assert len(produced) <= 1 + 4 + 1  # handed over, queued, and one waiting to be put
    prefetcher.close()
    time.sleep(0.3)
    assert len(produced) <= 1 + 4 + 2


def test_the_prefetcher_raises_what_the_producer_raised() -> None:
    def failing() -> Iterator[bytes]:
        yield b"fine"
        raise StorageError("s3://b/k", "connection reset")

    with pytest.raises(StorageError, match="connection reset"):
        list(Prefetcher(failing(), threading.Event()))


# --- the FIFO's write end -----------------------------------------------------------------


def test_opening_waits_for_a_reader_and_a_stop_ends_the_wait(tmp_path: Path) -> None:
    fifo = create_fifo(tmp_path / "train_0")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert open_when_read(fifo, stop) is None  # nobody read it: the stop got through


def test_everything_written_reaches_the_reader(tmp_path: Path) -> None:
    fifo = create_fifo(tmp_path / "train_0")
    data = os.urandom(5 << 20)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    fd = open_when_read(fifo, threading.Event())
    assert fd is not None
    assert write_all(fd, data, threading.Event())
    os.close(fd)
    reader.join(10)
    assert received == [data]


def test_a_reader_closing_early_or_a_stop_ends_a_write(tmp_path: Path) -> None:
    fifo = create_fifo(tmp_path / "train_0")
    opened = threading.Event()

    def read_a_little() -> None:
        with fifo.open("rb", buffering=0) as stream:
            opened.set()
            stream.read(10)

    threading.Thread(target=read_a_little).start()
    fd = open_when_read(fifo, threading.Event())
    assert fd is not None
    assert not write_all(fd, bytes(16 << 20), threading.Event())  # EPIPE: done with it
    os.close(fd)

    stalled = create_fifo(tmp_path / "train_1")
    reader = os.open(stalled, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
    fd = open_when_read(stalled, threading.Event())
    assert fd is not None
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert not write_all(fd, bytes(16 << 20), stop)
    os.close(fd)
    os.close(reader)
