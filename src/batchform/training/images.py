"""What a training job's `AlgorithmSpecification.TrainingImage` runs on this machine.

batchform has no container runtime: an "image" is either a local folder (or `file://`
URI) holding the executable a SageMaker container would be started with (`train`, or an
`entrypoint` given `train` as its argument, as `docker run <image> train` does), or one
of the built-in algorithms, named `builtin:<name>` or by the registry URI SageMaker's
`image_uris.retrieve` gives for it (`<account>.dkr.ecr.<region>.amazonaws.com/pca:1`),
so estimators written for SageMaker run unchanged.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from batchform.algorithms import training_module
from batchform.algorithms.images import BUILTIN_PREFIX, RUNNABLE_BUILTINS, builtin_algorithm
from batchform.errors import ConfigurationError
from batchform.runtimes.process import container_command, container_folder
from batchform.spec.training import AlgorithmSpecification


@dataclass(frozen=True)
class TrainingCommand:
    """The process a training job starts; `builtin` names the algorithm when it is one."""

    argv: tuple[str, ...]
    builtin: str | None = None

    def describe(self) -> str:
        return f"{BUILTIN_PREFIX}{self.builtin}" if self.builtin else " ".join(self.argv)


def training_command(specification: AlgorithmSpecification) -> TrainingCommand:
    """The command for a job's AlgorithmSpecification; ConfigurationError when batchform
    cannot run it as asked."""
    if specification.training_image is None:
        raise ConfigurationError(
            f"AlgorithmName {specification.algorithm_name!r}: algorithm resources are not "
            f"supported; give AlgorithmSpecification.TrainingImage. {_RUNNABLE}"
        )
    if specification.container_entrypoint or specification.container_arguments:
        # Running the image's `train` instead would quietly do something else.
        raise ConfigurationError(
            "AlgorithmSpecification.ContainerEntrypoint and ContainerArguments are not "
            "supported yet; put the command in the image folder's `train`"
        )
    return resolve_training_image(specification.training_image)


def resolve_training_image(image: str) -> TrainingCommand:
    """The command for `image`; ConfigurationError saying what can run instead."""
    try:
        algorithm = builtin_algorithm(image)
    except ConfigurationError as exc:
        raise _refused(image) from exc
    if algorithm is not None:
        module = training_module(algorithm)
        return TrainingCommand((sys.executable, "-m", module, "train"), builtin=algorithm)
    if image.startswith("file://") or os.path.isdir(image):
        folder = container_folder(image)
        if not folder.is_dir():
            raise ConfigurationError(f"training image folder {folder} does not exist")
        return TrainingCommand(tuple(train_command(folder)))
    raise _refused(image)


def _refused(image: str) -> ConfigurationError:
    return ConfigurationError(f"training image {image!r} cannot be run here. {_RUNNABLE}")


def train_command(folder: Path) -> list[str]:
    """`<folder>/train`, or `<folder>/entrypoint train` as an image's entrypoint gets it."""
    return container_command(folder, "train")


_RUNNABLE = (
    "batchform runs: a local folder or file:// URI holding an executable 'train' "
    f"(or 'entrypoint'). {RUNNABLE_BUILTINS}"
)
