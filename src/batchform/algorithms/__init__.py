"""SageMaker's built-in algorithms (PCA, k-means), trained and served without AWS.

Training: `batchform.algorithms.<name>.train(base_dir)` or
`python -m batchform.algorithms.<name> train` runs on a SageMaker-shaped workspace
(`<base>/input/config`, `<base>/input/data/<channel>`) and writes `<base>/model/`.
Serving: `batchform.algorithms.serving` is a Python handler (model_fn, input_fn,
predict_fn, output_fn) for any model those trainings wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

ALGORITHMS = ("pca", "kmeans")
SERVING_PROGRAM = Path(__file__).with_name("serving.py")
"""The handler file serving every built-in algorithm's model."""


def training_module(algorithm: str) -> str:
    """The module to run as `python -m <module> train` for an algorithm."""
    if algorithm not in ALGORITHMS:
        raise KeyError(f"unknown built-in algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    return f"{__name__}.{algorithm}"


def trainer(algorithm: str) -> Callable[[Path], None]:
    """The in-process training entry point, `train(base_dir)`, of an algorithm."""
    module = importlib.import_module(training_module(algorithm))
    return cast(Callable[[Path], None], module.train)
