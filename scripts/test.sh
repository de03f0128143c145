#!/usr/bin/env bash
# Set up a virtual environment with the test extra and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
