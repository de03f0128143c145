"""A numpy model: CSV rows in, each row projected onto 8 outputs, CSV rows out.

The "model" is a fixed random projection. model_fn reads its size and seed from
model.json; the matrix for n input columns is
`np.random.default_rng(seed).standard_normal((n, outputs))`, made on first use for each
column count and cached, so any CSV width works and every run gives the same numbers.
One output line per input line, so records in == records out under SplitType=Line.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
import numpy.typing as npt

try:  # batchform's CSV codecs: the same values as numpy's, several times faster
    from batchform.runtimes.codecs import array_to_csv, csv_to_array
except ImportError:  # elsewhere (a SageMaker container, say), plain numpy does the job

    def csv_to_array(body: bytes | str) -> npt.NDArray[Any]:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)

    def array_to_csv(prediction: object) -> bytes:
        out = io.StringIO()
        np.savetxt(out, np.asarray(prediction), delimiter=",", fmt="%s")
        return out.getvalue().encode("utf-8")


class Projection:
    def __init__(self, outputs: int, seed: int) -> None:
        self.outputs = outputs
        self.seed = seed
        self._matrices: dict[int, npt.NDArray[np.float64]] = {}

    def matrix(self, features: int) -> npt.NDArray[np.float64]:
        found = self._matrices.get(features)
        if found is None:
            rng = np.random.default_rng(self.seed)
            found = self._matrices[features] = rng.standard_normal((features, self.outputs))
        return found

    def predict(self, rows: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return rows @ self.matrix(rows.shape[1])


def model_fn(model_dir: str) -> Projection:
    settings = {"outputs": 8, "seed": 0}
    path = os.path.join(model_dir, "model.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            settings.update(json.load(file))
    return Projection(int(settings["outputs"]), int(settings["seed"]))


def transform_fn(
    model: Projection, body: bytes, content_type: str | None, accept: str | None
) -> tuple[bytes, str]:
    # Always CSV out, whatever Accept says, so output lines match input lines.
    return array_to_csv(model.predict(csv_to_array(body))), "text/csv"
