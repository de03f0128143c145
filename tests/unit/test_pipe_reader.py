"""batchform.pipe: records cut from a stream, and PipeModeDataset's epochs (plain files
stand in for the FIFOs: the reader only opens and reads them)."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
from pathlib import Path

import pytest

from batchform.errors import ConfigurationError, InputFormatError
from batchform.pipe import PipeModeDataset, read_records, take_epoch
from batchform.records import recordio, tfrecord

RECORDS = [b"", b"a", b"abcd", b"x" * 5000, recordio.encode_record(b"")[:4] * 3 + b"tail"]


def records_of(data: bytes, record_format: str, chunk_bytes: int = 7) -> list[bytes]:
    return list(read_records(io.BytesIO(data), record_format, "pipe", chunk_bytes))


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 4096, 1 << 20])
def test_recordio_records_come_out_whole_whatever_the_reads(chunk_bytes: int) -> None:
    # The last record holds the magic at aligned offsets: MXNet's writer splits it in parts.
    data = b"".join(map(recordio.encode_record, RECORDS))
    assert records_of(data, "RecordIO", chunk_bytes) == RECORDS


@pytest.mark.parametrize("chunk_bytes", [1, 5, 4096])
def test_tfrecord_records_come_out_whole(chunk_bytes: int) -> None:
    data = b"".join(map(tfrecord.encode_record, RECORDS))
    assert records_of(data, "TFRecord", chunk_bytes) == RECORDS


def test_a_tfrecord_crc_mismatch_names_the_pipe_record_and_offset() -> None:
    first, second = tfrecord.encode_record(b"good"), bytearray(tfrecord.encode_record(b"bad!"))
    second[-1] ^= 0xFF
    with pytest.raises(InputFormatError, match="data CRC mismatch") as caught:
        records_of(first + bytes(second), "TFRecord")
    assert (caught.value.object_key, caught.value.record_index) == ("pipe", 1)
    assert caught.value.byte_offset == len(first)


def test_garbage_is_refused_as_not_recordio() -> None:
    with pytest.raises(InputFormatError, match="expected RecordIO magic") as caught:
        records_of(recordio.encode_record(b"ok") + struct.pack("<II", 1, 2), "RecordIO")
    assert caught.value.record_index == 1


@pytest.mark.parametrize("record_format", ["RecordIO", "TFRecord"])
def test_a_stream_ending_inside_a_record_is_an_error(record_format: str) -> None:
    codec = recordio if record_format == "RecordIO" else tfrecord
    data = codec.encode_record(b"whole") + codec.encode_record(b"cut short")[:-3]
    with pytest.raises(InputFormatError, match="truncated record") as caught:
        records_of(data, record_format)
    assert caught.value.record_index == 1


def test_text_lines_lose_their_endings_across_chunk_boundaries() -> None:
    data = b"one\r\ntwo\n\nthree\nlast without newline"
    expected = [b"one", b"two", b"", b"three", b"last without newline"]
    for chunk_bytes in (1, 2, 4, 100):
        assert records_of(data, "TextLine", chunk_bytes) == expected
    assert records_of(b"a\nb\n", "TextLine") == [b"a", b"b"]


def test_an_unknown_record_format_is_refused() -> None:
    with pytest.raises(ValueError, match="RecordIO, TFRecord, TextLine"):
        PipeModeDataset("train", "Parquet", pipe_dir="/nonexistent")


# --- PipeModeDataset ----------------------------------------------------------------------


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A job workspace with a Pipe channel `train` (3 epochs) and a File channel `test`."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    (tmp_path / "input" / "config").mkdir(parents=True)
    config = {"train": {"TrainingInputMode": "Pipe"}, "test": {"TrainingInputMode": "File"}}
    (tmp_path / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    data = tmp_path / "input" / "data"
    data.mkdir()
    for epoch in range(3):
        framed = [recordio.encode_record(f"epoch {epoch} record {i}".encode()) for i in range(2)]
        (data / f"train_{epoch}").write_bytes(b"".join(framed))
    return tmp_path


def test_each_pass_reads_the_next_epoch(base: Path) -> None:
    dataset = PipeModeDataset("train")
    assert list(dataset) == [b"epoch 0 record 0", b"epoch 0 record 1"]
    assert dataset.next_epoch == 1
    assert next(iter(dataset)) == b"epoch 1 record 0"  # a pass left mid-epoch still counts
    # The epoch is the channel's, not the object's: a new dataset carries on.
    assert list(PipeModeDataset("train", "RecordIO")) == [b"epoch 2 record 0", b"epoch 2 record 1"]
    assert (base / "pipe_state" / "train").read_text() == "3"


def test_the_epoch_is_taken_when_reading_starts(base: Path) -> None:
    dataset = PipeModeDataset("train")
    unused = iter(dataset)
    assert dataset.next_epoch == 0
    del unused
    assert next(iter(dataset)) == b"epoch 0 record 0"


def test_reading_past_the_last_fifo_says_what_is_missing(base: Path) -> None:
    (base / "pipe_state").mkdir()
    (base / "pipe_state" / "train").write_text("3")
    with pytest.raises(FileNotFoundError, match=r"train_3 does not exist.*Pipe mode"):
        list(PipeModeDataset("train"))


def test_channels_the_job_does_not_pipe_are_refused(base: Path) -> None:
    with pytest.raises(ConfigurationError, match="'test' is in File mode"):
        PipeModeDataset("test")
    with pytest.raises(
        ConfigurationError, match=r"'validation' is not one of this job's \(test, train\)"
    ):
        PipeModeDataset("validation")


def test_explicit_folders_need_no_job(tmp_path: Path) -> None:
    (tmp_path / "lines_0").write_bytes(b"x\ny\n")
    dataset = PipeModeDataset(
        "lines", "TextLine", pipe_dir=tmp_path, state_dir=tmp_path / "state", config_dir=tmp_path
    )
    assert list(dataset) == [b"x", b"y"]


def test_take_epoch_counts_per_channel(tmp_path: Path) -> None:
    assert [take_epoch(tmp_path, "a") for _ in range(3)] == [0, 1, 2]
    assert take_epoch(tmp_path, "b") == 0


def test_without_torch_the_adapter_names_the_extra() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PyTorch is installed")
    with pytest.raises(ImportError, match=r"pip install 'batchform\[torch\]'"):
        import batchform.pipe.pytorch  # noqa: F401


def test_torch_adapter_reads_an_epoch_per_pass(base: Path) -> None:
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from batchform.pipe.pytorch import PipeModeIterableDataset

    dataset = PipeModeIterableDataset("train", transform=lambda record: record.decode())
    loader = DataLoader(dataset, batch_size=None)
    assert list(loader) == ["epoch 0 record 0", "epoch 0 record 1"]
    assert list(loader) == ["epoch 1 record 0", "epoch 1 record 1"]
    two_workers = DataLoader(dataset, batch_size=None, num_workers=2)
    with pytest.raises(RuntimeError, match="cannot be shared by 2 DataLoader workers"):
        list(two_workers)


def test_records_flow_as_they_arrive_not_a_chunk_at_a_time(base: Path) -> None:
    # The writer sends one record and holds its end open: a buffered read of a whole
    # chunk would wait for more, or the end, and the record would not come out.
    fifo = base / "input" / "data" / "live_0"
    os.mkfifo(fifo)
    received, closed = threading.Event(), threading.Event()

    def writer() -> None:
        with fifo.open("wb") as stream:
            stream.write(recordio.encode_record(b"first"))
            stream.flush()
            received.wait(30)
        closed.set()

    thread = threading.Thread(target=writer)
    thread.start()
    dataset = PipeModeDataset("live", config_dir=base)  # no inputdataconfig.json there
    records = iter(dataset)
    assert next(records) == b"first"
    assert not closed.is_set()
    received.set()
    assert list(records) == []
    thread.join()
