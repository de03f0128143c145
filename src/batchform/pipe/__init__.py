"""Reading Pipe-mode channels inside a training container.

    from batchform.pipe import PipeModeDataset
    for record in PipeModeDataset(channel="train", record_format="RecordIO"):
        ...

Each pass reads the next epoch's FIFO (`input/data/train_0`, `train_1`, …). For PyTorch,
`batchform.pipe.pytorch.PipeModeIterableDataset` wraps the same in an IterableDataset.
"""

from batchform.pipe.dataset import PipeModeDataset, take_epoch
from batchform.pipe.records import RECORD_FORMATS, read_records

__all__ = ["RECORD_FORMATS", "PipeModeDataset", "read_records", "take_epoch"]
