"""Where a user's `inference.py` lives, found as the SageMaker inference toolkit finds it.

Kept apart from handler_module so that the engine's process, which only locates the
code, does not import what running it needs (numpy, the codecs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from batchform.errors import RuntimeStartError

DEFAULT_PROGRAM = "inference.py"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"


@dataclass(frozen=True)
class HandlerSource:
    """Where a handler lives: the model folder model_fn receives, and the .py file."""

    model_dir: str
    code_path: str

    @property
    def code_dir(self) -> str:
        return os.path.dirname(self.code_path)


def find_handler(model_dir: str, program: str | None = None) -> HandlerSource:
    """Locate SAGEMAKER_PROGRAM (default inference.py) as the toolkit does: in the model's
    code/ folder, then the model folder itself; a program given as a path is also tried
    as is."""
    program = program or DEFAULT_PROGRAM
    candidates = _candidate_paths(model_dir, program)
    for path in candidates:
        if os.path.isfile(path):
            return HandlerSource(os.path.abspath(model_dir), path)
    looked = ", ".join(candidates)
    raise RuntimeStartError(f"handler program {program!r} not found; looked in: {looked}")


def _candidate_paths(model_dir: str, program: str) -> list[str]:
    # The toolkit accepts the program as a module name ('inference') or a script name.
    script = program if program.endswith(".py") else f"{program}.py"
    paths = [os.path.join(model_dir, "code", script), os.path.join(model_dir, script)]
    if os.path.isabs(script) or os.sep in script or "/" in script:
        paths.append(script)
    return list(dict.fromkeys(os.path.abspath(path) for path in paths))
