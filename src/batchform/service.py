"""The one service layer: the CLI, the server and the SDK call only this.

`Service` (models and jobs kept in the store and run in the background) is loaded on
first use, so `batchform transform`, which runs one job in-process, does not pay for
importing the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchform.algorithms import ALGORITHMS as BUILTIN_ALGORITHMS
from batchform.algorithms.images import BUILTIN_PREFIX
from batchform.jobs.transformrun import (
    TransformRun,
    job_dir,
    log_path,
    parse_transform_request,
    resume_run,
)
from batchform.storage.filesystems import filesystem, translate_errors
from batchform.training import (
    SecondaryStatus,
    SecondaryStatusTransition,
    TrainingOutcome,
    TrainingRun,
    parse_training_request,
)
from batchform.training.artifacts import OUTPUT_TARBALL, artifact_url

if TYPE_CHECKING:
    from batchform.jobs.control import Service, ServiceSettings

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

_LAZY = {"Service", "ServiceSettings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from batchform.jobs import control

        return getattr(control, name)
    raise AttributeError(f"module 'batchform.service' has no attribute '{name}'")
