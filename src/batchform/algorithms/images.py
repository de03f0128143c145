"""Image references that name a built-in algorithm, for training and for serving alike.

`builtin:pca`, or the registry URI SageMaker's `image_uris.retrieve` gives for it
(`<account>.dkr.ecr.<region>.amazonaws.com/pca:1`, any account, region and tag), so
estimators and models written for SageMaker run unchanged.
"""

from __future__ import annotations

import re

from batchform.algorithms import ALGORITHMS
from batchform.errors import ConfigurationError

BUILTIN_PREFIX = "builtin:"

# Any account and region, the China partition too; a tag or a digest, or neither.
_REGISTRY_URI = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[\w.-]+|@sha256:[0-9a-f]{64})?$"
)


def builtin_algorithm(image: str) -> str | None:
    """`pca` for `builtin:pca` or SageMaker's PCA registry URI; None for other images."""
    if image.startswith(BUILTIN_PREFIX):
        name = image.removeprefix(BUILTIN_PREFIX)
        if name not in ALGORITHMS:
            raise ConfigurationError(f"unknown built-in algorithm {image!r}. {RUNNABLE_BUILTINS}")
        return name
    match = _REGISTRY_URI.match(image)
    if match is None:
        return None
    # SageMaker's own repositories are named after the algorithm, sometimes in a folder.
    repository = match["repository"].rsplit("/", 1)[-1]
    if repository not in ALGORITHMS:
        raise ConfigurationError(f"registry image {image!r} is not a built-in. {RUNNABLE_BUILTINS}")
    return repository


def _runnable_builtins() -> str:
    builtins = ", ".join(f"{BUILTIN_PREFIX}{name}" for name in ALGORITHMS)
    registry = ", ".join(
        f"<account>.dkr.ecr.<region>.amazonaws.com/{name}:1" for name in ALGORITHMS
    )
    return f"Built-in algorithms: {builtins}, or their SageMaker registry URIs ({registry})"


RUNNABLE_BUILTINS = _runnable_builtins()
