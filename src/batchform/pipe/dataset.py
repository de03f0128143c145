"""`PipeModeDataset`: the records of a Pipe-mode channel, one epoch per pass.

Shaped after sagemaker_tensorflow's PipeModeDataset, without TensorFlow: each pass over
the dataset opens the channel's next FIFO, `<pipe_dir>/<channel>_<epoch>`. Which epoch
comes next is kept per channel in a file under `state_dir`, so a new dataset object, or
another process (a DataLoader worker), carries on with the next epoch instead of opening
a FIFO that was already read, which would block for ever.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from batchform.errors import ConfigurationError
from batchform.pipe.records import CHUNK_BYTES, check_record_format, read_records

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"


class PipeModeDataset:
    """Iterate to read one epoch of `channel`'s records (bytes); iterate again for the next.

    `record_format` is "RecordIO" (MXNet framing, what `RecordWrapperType: RecordIO`
    produces), "TFRecord" (CRCs checked) or "TextLine" (lines without their ending).
    The folders default to the job's workspace (`SAGEMAKER_BASE_DIR`, else /opt/ml).
    """

    def __init__(
        self,
        channel: str,
        record_format: str = "RecordIO",
        *,
        pipe_dir: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        base = Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)
        self.channel = channel
        self.record_format = check_record_format(record_format)
        self.pipe_dir = Path(pipe_dir) if pipe_dir else base / "input" / "data"
        self.state_dir = Path(state_dir) if state_dir else base / "pipe_state"
        self.chunk_bytes = chunk_bytes
        _check_pipe_channel(Path(config_dir) if config_dir else base / "input" / "config", channel)

    def __iter__(self) -> Iterator[bytes]:
        # A generator: the epoch is taken when reading starts, not when iter() is called.
        epoch = take_epoch(self.state_dir, self.channel)
        path = self.pipe_dir / f"{self.channel}_{epoch}"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: is channel {self.channel!r} in Pipe mode, and has "
                "this job started it?"
            )
        # Unbuffered: a read returns what the FIFO holds, so records flow as they arrive.
        with path.open("rb", buffering=0) as stream:
            yield from read_records(stream, self.record_format, str(path), self.chunk_bytes)

    @property
    def next_epoch(self) -> int:
        """The epoch the next pass reads."""
        try:
            text = (self.state_dir / self.channel).read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text else 0


def take_epoch(state_dir: Path, channel: str) -> int:
    """The channel's next epoch, counted on for the next caller (under a file lock, so
    processes sharing the workspace never get the same epoch)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / channel
    path.touch(exist_ok=True)
    with path.open("r+", encoding="ascii") as state:
        fcntl.flock(state, fcntl.LOCK_EX)
        text = state.read().strip()
        epoch = int(text) if text else 0
        state.seek(0)
        state.truncate()
        state.write(str(epoch + 1))
    return epoch


def _check_pipe_channel(config_dir: Path, channel: str) -> None:
    """When the job's inputdataconfig.json is there, the channel must be a Pipe one."""
    path = config_dir / "inputdataconfig.json"
    if not path.is_file():
        return  # not run by a training job: the caller knows where its FIFOs are
    config = json.loads(path.read_text(encoding="utf-8"))
    if channel not in config:
        known = ", ".join(sorted(config)) or "none"
        raise ConfigurationError(f"channel {channel!r} is not one of this job's ({known})")
    mode = config[channel].get("TrainingInputMode", "File")
    if mode != "Pipe":
        raise ConfigurationError(
            f"channel {channel!r} is in {mode} mode: PipeModeDataset reads Pipe-mode "
            "channels (read this one's files under input/data/<channel>/)"
        )
