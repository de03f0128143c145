"""SageMaker's enumerations, spelled as its API spells them."""

from __future__ import annotations

from enum import Enum


class SplitType(str, Enum):
    NONE = "None"
    LINE = "Line"
    RECORDIO = "RecordIO"
    TFRECORD = "TFRecord"


class BatchStrategy(str, Enum):
    MULTI_RECORD = "MultiRecord"
    SINGLE_RECORD = "SingleRecord"

    @classmethod
    def parse(cls, value: str) -> BatchStrategy:
        """Accept both spellings models use in /execution-parameters."""
        compact = value.replace("_", "").lower()
        for strategy in cls:
            if strategy.value.lower() == compact:
                return strategy
        raise ValueError(f"unknown batch strategy {value!r}")


class AssembleWith(str, Enum):
    NONE = "None"
    LINE = "Line"


class CompressionType(str, Enum):
    NONE = "None"
    GZIP = "Gzip"


class S3DataType(str, Enum):
    S3_PREFIX = "S3Prefix"
    MANIFEST_FILE = "ManifestFile"
    AUGMENTED_MANIFEST_FILE = "AugmentedManifestFile"


class JoinSource(str, Enum):
    INPUT = "Input"
    NONE = "None"
