"""Write a Jupyter notebook from a script of `# %%` cells (`# %% [markdown]` for text).

    python scripts/notebook_from_script.py examples/notebook_workflow.py

writes examples/notebook_workflow.ipynb; tests check the two stay the same cells.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def cells(script: str) -> list[dict[str, Any]]:
    """The script's cells as notebook cells, in order."""
    found: list[dict[str, Any]] = []
    for chunk in script.split("# %%")[1:]:
        header, _, body = chunk.partition("\n")
        lines = body.strip("\n").splitlines()
        if header.strip() == "[markdown]":
            text = [line.removeprefix("#").removeprefix(" ") for line in lines]
            found.append({"cell_type": "markdown", "metadata": {}, "source": _source(text)})
        else:
            found.append(
                {"cell_type": "code", "execution_count": None, "metadata": {},
                 "outputs": [], "source": _source(lines)}
            )  # fmt: skip
    return found


def _source(lines: list[str]) -> list[str]:
    return [line + "\n" for line in lines[:-1]] + lines[-1:]


def notebook(script: str) -> dict[str, Any]:
    return {
        "cells": cells(script),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def main() -> None:
    for name in sys.argv[1:]:
        path = Path(name)
        target = path.with_suffix(".ipynb")
        target.write_text(json.dumps(notebook(path.read_text()), indent=1) + "\n")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
