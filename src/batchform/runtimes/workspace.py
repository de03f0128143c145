"""An instance's private `/opt/ml` and the environment of the serving contract.

SageMaker runs every container with its own `/opt/ml`; here each instance gets a folder
shaped the same way, and `SAGEMAKER_BASE_DIR` tells the model where it is (the SageMaker
inference toolkits honour that variable), so models written for SageMaker find their
files without change.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The folders SageMaker mounts under /opt/ml for a serving container.
_FOLDERS = ("model", "code", "input/config", "output")

_CONTRACT_STRATEGIES = {"MULTIRECORD": "MULTI_RECORD", "SINGLERECORD": "SINGLE_RECORD"}


@dataclass(frozen=True)
class Workspace:
    """The `/opt/ml`-shaped folder of one instance."""

    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"


def create_workspace(root: str | os.PathLike[str]) -> Workspace:
    """Make (or reuse) the folder; absolute, because the model runs with it as cwd."""
    workspace = Workspace(Path(root).absolute())
    for folder in _FOLDERS:
        (workspace.root / folder).mkdir(parents=True, exist_ok=True)
    return workspace


def contract_strategy(batch_strategy: str) -> str:
    """The spelling models see in SAGEMAKER_BATCH_STRATEGY: `MULTI_RECORD`/`SINGLE_RECORD`."""
    name = _CONTRACT_STRATEGIES.get(batch_strategy.replace("_", "").upper())
    if name is None:
        raise ValueError(f"unknown batch strategy {batch_strategy!r}")
    return name


def contract_environment(
    *,
    port: int,
    base_dir: str | os.PathLike[str],
    max_payload_in_mb: int,
    batch_strategy: str,
    max_concurrent_transforms: int,
    model_environment: Mapping[str, str] | None = None,
    job_environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a model is started with, in contract order; later entries win.

    The model's and the job's Environment come last so a user can override anything,
    as SageMaker allows.
    """
    base = Path(base_dir)
    environment = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_MODEL_DIR": str(base / "model"),
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(max_payload_in_mb),
        "SAGEMAKER_BATCH_STRATEGY": contract_strategy(batch_strategy),
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(max_concurrent_transforms),
    }
    environment.update(model_environment or {})
    environment.update(job_environment or {})
    return environment


def free_port() -> int:
    """A loopback port nobody listens on right now.

    The kernel picks it; another process could take it before the model binds, which
    then shows up as a start-up failure rather than a silent mix-up.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def link_model_folder(workspace: Workspace, source: str | os.PathLike[str]) -> None:
    """Make the workspace's `model/` the model folder that ships next to `serve`.

    A link rather than a copy: weights can be gigabytes and every instance would copy
    them again. Whatever `model/` held before belongs to this workspace alone.
    """
    target = workspace.model_dir
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.symlink_to(Path(source).absolute(), target_is_directory=True)


# glibc gives large freed blocks straight back to the kernel and shrinks the heap, so
# each request's payload-sized buffers are faulted in again page by page: a numpy
# handler spent a third of its time in page faults. Kept in the heap, they are reused.
_ALLOCATOR_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": str(256 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
}
# OpenBLAS threads spin for about 2**28 cycles after each call before they sleep: a
# model that makes one small product per request kept a second core busy spinning.
_BLAS_SETTINGS = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def worker_tuning(workers: int, cores: int | None = None) -> dict[str, str]:
    """Settings for Python model workers: native thread pools (BLAS, OpenMP) sized to
    each of `workers` processes' share of `cores` (the machine's by default; an
    instance's share of it when several run), since each worker's numpy would otherwise
    start a thread per core and the pools together oversubscribe the machine; and an
    allocator that keeps payload-sized buffers for the next request. A user's own
    setting wins.
    """
    share = str(max(1, (cores or os.cpu_count() or 1) // max(1, workers)))
    threads = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), share)
    settings = {**threads, **_BLAS_SETTINGS, **_ALLOCATOR_SETTINGS}
    return {name: value for name, value in settings.items() if name not in os.environ}


def interpreter_first(env: dict[str, str]) -> dict[str, str]:
    """`env` with the folder of batchform's own interpreter first on PATH.

    Model and training programs written in Python (`#!/usr/bin/env python3`) then run
    under the interpreter batchform runs under, with the packages installed beside it,
    as they would in an activated virtualenv. Programs in other languages see no change.
    """
    folder = os.path.dirname(sys.executable)
    path = env.get("PATH", os.defpath)
    if path.split(os.pathsep)[0] == folder:
        return env
    return {**env, "PATH": folder + os.pathsep + path}
