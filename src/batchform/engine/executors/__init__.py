"""Executors: where a job's instances run (threads here, Ray actors on a cluster).

A registry of names to classes, imported on first use so that `ray` is loaded only by
jobs that ask for it; without its extra, asking names the package to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from batchform.engine.executors.base import (
    Executor,
    InstanceContext,
    InstanceLost,
    InstancePool,
    InstanceResources,
    NoCapacity,
    PoolSpec,
)
from batchform.errors import ConfigurationError

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorSettings",
    "InstanceContext",
    "InstanceLost",
    "InstancePool",
    "InstanceResources",
    "NoCapacity",
    "PoolSpec",
    "get_executor",
]


@dataclass(frozen=True)
class ExecutorSettings:
    """Which executor runs a job's instances, and where.

    `address` is the Ray cluster to join (`ray://head:10001`, `head:6379`, `auto`);
    None means RAY_ADDRESS when set, else a Ray instance started on this machine.
    """

    name: str = "local"
    address: str | None = None


# name -> (module, class, extra that provides it)
_EXECUTORS: dict[str, tuple[str, str, str | None]] = {
    "local": ("batchform.engine.executors.local", "LocalExecutor", None),
    "ray": ("batchform.engine.executors.ray", "RayExecutor", "ray"),
}
EXECUTORS: Mapping[str, tuple[str, str, str | None]] = MappingProxyType(_EXECUTORS)


def get_executor(settings: ExecutorSettings | str = "local") -> Executor:
    """The executor `settings` names; ConfigurationError if unknown or not installed."""
    if isinstance(settings, str):
        settings = ExecutorSettings(settings)
    try:
        module_name, class_name, extra = _EXECUTORS[settings.name]
    except KeyError:
        known = ", ".join(sorted(_EXECUTORS))
        raise ConfigurationError(f"unknown executor '{settings.name}' (known: {known})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'batchform[{extra}]'" if extra else ""
        raise ConfigurationError(f"executor '{settings.name}' is not installed{hint}") from exc
    executor: Executor = getattr(module, class_name).from_settings(settings)
    return executor
