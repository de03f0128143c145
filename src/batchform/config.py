"""Where batchform keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """BATCHFORM_HOME, by default ~/.batchform: database, job logs, workspaces."""
    configured = os.environ.get("BATCHFORM_HOME")
    path = Path(configured) if configured else Path.home() / ".batchform"
    path.mkdir(parents=True, exist_ok=True)
    return path
