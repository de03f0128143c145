"""The model artifact of a built-in algorithm: arrays in an .npz, facts in a JSON file.

`<model>/model_algo-1.npz` holds the parameters under SageMaker's names (PCA: `mean`,
`v`, `s`; k-means: `centroids`), float64, loadable with nothing but numpy;
`<model>/model_algo-1.json` says which algorithm wrote them, the format version, and
the hyperparameters and figures of the training run. (SageMaker's own `model_algo-1`
is an MXNet parameter file; the names are kept so the layout reads familiar.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchform.algorithms.csvblock import Array
from batchform.errors import ConfigurationError

ARRAYS_FILE = "model_algo-1.npz"
META_FILE = "model_algo-1.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelFiles:
    """A loaded artifact: what the JSON says, and the arrays."""

    meta: dict[str, object]
    arrays: dict[str, Array]

    @property
    def algorithm(self) -> str:
        return str(self.meta.get("algorithm"))

    def array(self, name: str) -> Array:
        if name not in self.arrays:
            raise ConfigurationError(f"{ARRAYS_FILE} has no array {name!r}")
        return self.arrays[name]


def save_model(
    model_dir: Path, algorithm: str, arrays: Mapping[str, Array], meta: Mapping[str, object]
) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / ARRAYS_FILE).open("wb") as out:
        np.savez(
            out, allow_pickle=False, **{name: np.asarray(value) for name, value in arrays.items()}
        )
    facts = {"algorithm": algorithm, "format_version": FORMAT_VERSION, **meta}
    (model_dir / META_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def load_model(model_dir: Path) -> ModelFiles:
    meta_path, arrays_path = model_dir / META_FILE, model_dir / ARRAYS_FILE
    if not meta_path.is_file() or not arrays_path.is_file():
        raise ConfigurationError(
            f"{model_dir} is not a batchform built-in algorithm model "
            f"(expected {META_FILE} and {ARRAYS_FILE})"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigurationError(
            f"{meta_path}: format_version {meta.get('format_version')!r} is not supported "
            f"(this batchform reads {FORMAT_VERSION})"
        )
    with np.load(arrays_path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return ModelFiles(meta, arrays)
