"""A numpy model that rejects any request holding a record it cannot score.

Records starting with `BAD` fail the whole request with HTTP 500, as a real model fails
on one malformed row. Used to show record-level isolation at work.
"""

from __future__ import annotations

import io

import numpy as np


def model_fn(model_dir: str) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((64, 4))


def transform_fn(
    model: np.ndarray, body: bytes, content_type: str, accept: str
) -> tuple[bytes, str]:
    if b"BAD" in body:
        raise ValueError("cannot score a record marked BAD")
    values = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
    width = min(values.shape[1], model.shape[0])
    scores = values[:, :width] @ model[:width]
    lines = "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in scores)
    return lines.encode(), "text/csv"
