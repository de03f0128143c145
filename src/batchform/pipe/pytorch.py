"""A Pipe-mode channel as a PyTorch `IterableDataset` (`pip install 'batchform[torch]'`).

Each pass of a DataLoader reads the channel's next epoch. A FIFO is one stream with one
reader, so the data cannot be split between DataLoader workers: use `num_workers=0`, or
1 to read in a worker process (the epoch count is shared through the state file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from batchform.pipe.dataset import PipeModeDataset

try:
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "batchform.pipe.pytorch needs PyTorch: pip install 'batchform[torch]'"
    ) from exc


class PipeModeIterableDataset(IterableDataset):  # type: ignore[misc,unused-ignore]
    """The records of a Pipe channel, each passed through `transform` when one is given."""

    def __init__(
        self,
        channel: str,
        record_format: str = "RecordIO",
        transform: Callable[[bytes], Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.records = PipeModeDataset(channel, record_format, **options)
        self.transform = transform

    def __iter__(self) -> Iterator[Any]:
        check_single_reader(get_worker_info())
        transform = self.transform
        for record in self.records:
            yield transform(record) if transform else record


def check_single_reader(worker_info: Any) -> None:
    """Refuse more than one DataLoader worker: each would open the same FIFO."""
    workers = getattr(worker_info, "num_workers", 1) if worker_info is not None else 1
    if workers > 1:
        raise RuntimeError(
            f"a Pipe-mode channel is one stream and cannot be shared by {workers} "
            "DataLoader workers; use num_workers=0 or 1"
        )
