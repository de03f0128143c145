"""The training side of a built-in algorithm: SageMaker's /opt/ml workspace in, model out.

Reads `<base>/input/config/hyperparameters.json` and `inputdataconfig.json`, hands the
algorithm its channels, and leaves the model in `<base>/model/` (the runner tars it into
model.tar.gz). Any failure is written to `<base>/output/failure`, which becomes the job's
FailureReason, with SageMaker's prefixes: "ClientError: " when the job's configuration or
data is at fault (what a user must fix), "AlgorithmError: " when the algorithm broke.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchform.algorithms.data import Channel, parse_content_type
from batchform.errors import BatchformError, ConfigurationError

DEFAULT_BASE_DIR = "/opt/ml"
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInput:
    """What a training job gives an algorithm: its hyperparameters, channels, folders."""

    base_dir: Path
    hyperparameters: dict[str, object]
    channels: dict[str, Channel]

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    def channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def train_channel(self) -> Channel:
        """The `train` channel; an error naming what is missing when it has no files."""
        channel = self.channels.get("train")
        if channel is None:
            raise ConfigurationError("No training data: the job has no 'train' channel")
        if channel.input_mode == "File" and not channel.sources():
            folder = channel.directory / channel.name
            raise ConfigurationError(f"No training data: channel 'train' has no files in {folder}")
        if channel.input_mode == "Pipe" and not channel.sources()[0].exists():
            raise ConfigurationError(
                f"No training data: channel 'train' is in Pipe mode, but its first FIFO "
                f"{channel.sources()[0]} does not exist"
            )
        return channel


def no_rows_error(channel: Channel) -> ConfigurationError:
    return ConfigurationError(f"No training data: channel {channel.name!r} holds no rows")


def read_training_input(base_dir: Path, supported_channels: Sequence[str]) -> TrainingInput:
    config = base_dir / "input" / "config"
    hyperparameters = _read_json_object(config / "hyperparameters.json", missing_ok=True)
    channels = _channels(base_dir, _read_json_object(config / "inputdataconfig.json"))
    unsupported = sorted(set(channels) - set(supported_channels))
    if unsupported:
        raise ConfigurationError(
            f"channel(s) {', '.join(unsupported)} are not supported "
            f"(supported: {', '.join(supported_channels)})"
        )
    return TrainingInput(base_dir, hyperparameters, channels)


def _read_json_object(path: Path, *, missing_ok: bool = False) -> dict[str, object]:
    if not path.exists():
        if missing_ok:
            return {}
        raise ConfigurationError(f"{path} is missing")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must hold a JSON object")
    return value


def _channels(base_dir: Path, config: dict[str, object]) -> dict[str, Channel]:
    data_dir = base_dir / "input" / "data"
    return {name: _channel(name, data_dir, spec) for name, spec in config.items()}


def _channel(name: str, data_dir: Path, spec: object) -> Channel:
    spec = spec if isinstance(spec, dict) else {}
    content_type = spec.get("ContentType")
    media, label_size = parse_content_type(name, content_type if content_type else None)
    mode = str(spec.get("TrainingInputMode") or "File")
    return Channel(name, data_dir, media, label_size, "Pipe" if mode == "Pipe" else "File")


def write_workspace(
    base_dir: Path,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, str],
    input_mode: str = "File",
) -> Path:
    """Lay out `base_dir` as SageMaker does for a job, for local runs and tests:
    hyperparameters.json, inputdataconfig.json (channel name → ContentType) and one
    empty folder a channel. Returns `<base_dir>/input/data`, where the files go."""
    config = base_dir / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters)))
    described = {
        name: {"ContentType": content_type, "TrainingInputMode": input_mode}
        for name, content_type in channels.items()
    }
    (config / "inputdataconfig.json").write_text(json.dumps(described))
    data_dir = base_dir / "input" / "data"
    for name in channels:
        (data_dir / name).mkdir(parents=True, exist_ok=True)
    return data_dir


def run_training(
    base_dir: Path,
    supported_channels: Sequence[str],
    fit: Callable[[TrainingInput], None],
) -> None:
    """Run `fit` on the workspace; on failure write output/failure, then re-raise."""
    try:
        fit(read_training_input(base_dir, supported_channels))
    except BatchformError as exc:
        _write_failure(base_dir, f"ClientError: {exc}")
        raise
    except Exception as exc:
        _write_failure(base_dir, f"AlgorithmError: {type(exc).__name__}: {exc}")
        raise


def _write_failure(base_dir: Path, message: str) -> None:
    output = base_dir / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "failure").write_text(message, encoding="utf-8")


def main(algorithm: str, train: Callable[[Path], None], argv: Sequence[str]) -> int:
    """`python -m batchform.algorithms.<algorithm> train`: the container's entry point."""
    if list(argv) != ["train"]:
        print(f"usage: python -m batchform.algorithms.{algorithm} train", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s")
    base_dir = Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)
    try:
        train(base_dir)
    except BatchformError as exc:
        print(f"ClientError: {exc}", file=sys.stderr)
        return 1
    except Exception:
        _log.exception("%s training failed", algorithm)
        return 1
    return 0
