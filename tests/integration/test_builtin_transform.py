"""A built-in algorithm's trained model, batch-transformed by reference (`builtin:pca`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import orjson
import pytest

from batchform.algorithms import pca
from batchform.algorithms.training import write_workspace


def trained_pca(tmp_path: Path, data: np.ndarray, components: int) -> Path:
    base = tmp_path / "train"
    hyperparameters = {
        "feature_dim": str(data.shape[1]),
        "num_components": str(components),
        "mini_batch_size": "50",
        "subtract_mean": "True",
    }
    data_dir = write_workspace(base, hyperparameters, {"train": "text/csv"})
    np.savetxt(data_dir / "train" / "part.csv", data, delimiter=",", fmt="%d")
    pca.train(base)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in (base / "model").iterdir():
            tar.add(path, arcname=path.name)
    return archive


@pytest.mark.parametrize(
    "image", ["builtin:pca", "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"]
)
def test_transform_with_a_builtin_pca_model(tmp_path: Path, image: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((300, 12)) < 0.3).astype(int)
    archive = trained_pca(tmp_path, data, components=3)
    (tmp_path / "in").mkdir()
    np.savetxt(tmp_path / "in" / "rows.csv", data, delimiter=",", fmt="%d")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchform.cli",
            "transform",
            "--model",
            image,
            "--model-data",
            str(archive),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--content-type",
            "text/csv",
            "--accept",
            "application/jsonlines",
            "--split-type",
            "Line",
            "--strategy",
            "MultiRecord",
            "--assemble-with",
            "Line",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BATCHFORM_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "rows.csv.out").read_text().splitlines()
    assert len(lines) == 300
    projections = np.array([orjson.loads(line)["projection"] for line in lines])
    centered = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:3][::-1].T  # SageMaker orders components least significant first
    signs = np.sign(np.sum(projections * expected, axis=0))
    assert np.allclose(projections * signs, expected, atol=1e-4)


def test_a_builtin_model_without_model_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("1,2\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchform.cli",
            "transform",
            "--model",
            "builtin:pca",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--content-type",
            "text/csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BATCHFORM_HOME": str(tmp_path / "home")},
    )
    assert done.returncode != 0
    assert "ModelDataUrl" in done.stderr
