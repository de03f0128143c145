"""A job's log: every line the engine and the model write, kept in a file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


class JobLog:
    """Appends timestamped lines to `path`; optionally echoes them (the CLI's --verbose)."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        self._echo = echo
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._lock:
            self._file.write(f"{stamp} {line}\n")
            self._file.flush()
        if self._echo is not None:
            self._echo(line)

    def close(self) -> None:
        with self._lock:
            self._file.close()
