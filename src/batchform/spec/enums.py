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


class TrainingInputMode(str, Enum):
    PIPE = "Pipe"
    FILE = "File"
    FAST_FILE = "FastFile"


class S3DataDistribution(str, Enum):
    FULLY_REPLICATED = "FullyReplicated"
    SHARDED_BY_S3_KEY = "ShardedByS3Key"


class RecordWrapper(str, Enum):
    NONE = "None"
    RECORDIO = "RecordIO"


class OutputCompressionType(str, Enum):
    """How a training job packs its model artifacts (SageMaker spells these in capitals)."""

    GZIP = "GZIP"
    NONE = "NONE"
