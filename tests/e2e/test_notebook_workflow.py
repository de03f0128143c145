"""examples/notebook_workflow.py, the seed notebook's walk-through, run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scripts.notebook_from_script import notebook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notebook_workflow.py"


def test_the_walk_through_runs_and_finds_the_planted_clusters(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--items", "1200", "--users", "600", "--work", "work"],
        cwd=tmp_path,
        env={**os.environ, "BATCHFORM_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout
    assert re.search(r"batch transform: 1146 items reduced", output)
    assert "endpoint loop: 1146 items" in output and "same answers: True" in output
    tastes = re.findall(r"^cluster \d+: \d+ items; most from planted taste (\d+)$", output, re.M)
    assert len(tastes) >= 4, output[-2000:]
    assert len(set(tastes)) == len(tastes), "each cluster found is a different planted taste"


def test_the_notebook_holds_the_scripts_cells() -> None:
    committed = json.loads(EXAMPLE.with_suffix(".ipynb").read_text())
    assert committed["cells"] == notebook(EXAMPLE.read_text())["cells"], (
        "regenerate it: python scripts/notebook_from_script.py examples/notebook_workflow.py"
    )
