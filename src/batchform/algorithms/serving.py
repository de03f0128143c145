"""Serving a built-in algorithm's model: a Python handler for the inference toolkit contract.

Point a HandlerSource at this file (`PROGRAM`) with the extracted model folder, or call
the functions directly; either way the model is loaded once by `model_fn`, which reads
the algorithm from the model's own files, so one handler serves PCA and k-means alike.

- `input_fn` reads text/csv, application/json, application/jsonlines and
  application/x-recordio-protobuf (415 for anything else);
- `predict_fn` checks the records against the model's feature_dim (400 when they differ)
  and computes one answer per record, in order;
- `output_fn` writes application/json (the default, also for */*),
  application/jsonlines, text/csv or application/x-recordio-protobuf (406 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from batchform.algorithms.csvblock import Array
from batchform.algorithms.kmeans import KMeansModel
from batchform.algorithms.modelfile import ModelFiles, load_model
from batchform.algorithms.pca import PCAModel
from batchform.algorithms.requests import Instances, decode
from batchform.algorithms.responses import Prediction, encode
from batchform.errors import ConfigurationError

PROGRAM = Path(__file__)
"""This handler's source file, for the runtimes that load handlers by path."""


class ServedModel(Protocol):
    @property
    def feature_dim(self) -> int: ...

    def predict(self, rows: Array) -> Prediction: ...


_LOADERS: dict[str, Callable[[ModelFiles], ServedModel]] = {
    "pca": PCAModel.from_files,
    "kmeans": KMeansModel.from_files,
}


def model_fn(model_dir: str) -> ServedModel:
    files = load_model(Path(model_dir))
    loader = _LOADERS.get(files.algorithm)
    if loader is None:
        raise ConfigurationError(
            f"{model_dir}: algorithm {files.algorithm!r} has no server "
            f"(supported: {', '.join(_LOADERS)})"
        )
    return loader(files)


def input_fn(body: bytes, content_type: str | None) -> Instances:
    # Annotated bytes: the handler runtime then passes the raw body, never a decoded str.
    return decode(body, content_type)


def predict_fn(data: Instances, model: ServedModel) -> Prediction:
    return model.predict(data.matrix(model.feature_dim))


def output_fn(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    return encode(prediction, accept)


def transform(
    model: ServedModel, body: bytes, content_type: str | None, accept: str | None
) -> tuple[bytes, str]:
    """All three steps for one payload (not named transform_fn: the toolkit refuses a
    module defining it next to input_fn, predict_fn and output_fn)."""
    return output_fn(predict_fn(input_fn(body, content_type), model), accept)
