"""The one service layer: the CLI, the server and the SDK call only this.

`Service` (models and jobs kept in the store and run in the background) and training
are loaded on first use, so `batchform transform`, which runs one job in-process, does
not pay for importing the database layer or the training code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchform.jobs.transformrun import (
    TransformRun,
    job_dir,
    log_path,
    parse_transform_request,
    resume_run,
)
from batchform.storage.filesystems import filesystem, translate_errors

if TYPE_CHECKING:
    from batchform.algorithms import ALGORITHMS as BUILTIN_ALGORITHMS
    from batchform.algorithms.images import BUILTIN_PREFIX
    from batchform.jobs.control import Service, ServiceSettings
    from batchform.training import (
        SecondaryStatus,
        SecondaryStatusTransition,
        TrainingOutcome,
        TrainingRun,
        parse_training_request,
    )
    from batchform.training.artifacts import OUTPUT_TARBALL, artifact_url

__all__ = [
    "BUILTIN_ALGORITHMS",
    "BUILTIN_PREFIX",
    "OUTPUT_TARBALL",
    "SecondaryStatus",
    "SecondaryStatusTransition",
    "Service",
    "ServiceSettings",
    "TrainingOutcome",
    "TrainingRun",
    "TransformRun",
    "artifact_url",
    "filesystem",
    "job_dir",
    "log_path",
    "parse_training_request",
    "parse_transform_request",
    "resume_run",
    "translate_errors",
]

# Loaded on first use: a transform run needs none of these.
_LAZY = {
    "Service": ("batchform.jobs.control", "Service"),
    "ServiceSettings": ("batchform.jobs.control", "ServiceSettings"),
    "BUILTIN_ALGORITHMS": ("batchform.algorithms", "ALGORITHMS"),
    "BUILTIN_PREFIX": ("batchform.algorithms.images", "BUILTIN_PREFIX"),
    "SecondaryStatus": ("batchform.training", "SecondaryStatus"),
    "SecondaryStatusTransition": ("batchform.training", "SecondaryStatusTransition"),
    "TrainingOutcome": ("batchform.training", "TrainingOutcome"),
    "TrainingRun": ("batchform.training", "TrainingRun"),
    "parse_training_request": ("batchform.training", "parse_training_request"),
    "OUTPUT_TARBALL": ("batchform.training.artifacts", "OUTPUT_TARBALL"),
    "artifact_url": ("batchform.training.artifacts", "artifact_url"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'batchform.service' has no attribute '{name}'")
