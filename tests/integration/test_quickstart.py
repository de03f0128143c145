"""`batchform quickstart`, the README's main job, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_quickstart_runs_the_seed_workflow_and_finds_the_planted_clusters(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchform.cli",
            "quickstart",
            "--folder",
            str(tmp_path / "qs"),
            "--items",
            "1500",
            "--users",
            "800",
        ],
        env={**os.environ, "BATCHFORM_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stderr
    for step in ("Train the built-in PCA", "Batch-transform", "Train the DBSCAN", "Clusters of"):
        assert step in text
    clusters = re.findall(r"cluster (\d+): (\d+) items .* planted taste (\d+)", text)
    assert len(clusters) >= 4, text  # six tastes are planted; DBSCAN finds most of them
    tastes = [taste for _, _, taste in clusters]
    assert len(set(tastes)) == len(tastes), "two clusters mixed up the same planted taste"
    outputs = tmp_path / "qs" / "out"
    assert (outputs / "pca-test" / "test.csv.out").is_file()
    assert (outputs / "dbscan-test" / "test.csv.out.out").is_file()
    assert list((tmp_path / "qs" / "models").glob("pca-*/output/model.tar.gz"))
