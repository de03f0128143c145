"""Executors: how a job's instances run (threads here, Ray actors on a cluster)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from batchform.errors import ConfigurationError

# name -> (module, class, extra that provides it)
_EXECUTORS: dict[str, tuple[str, str, str | None]] = {
    "local": ("batchform.engine.executors.local", "LocalExecutor", None),
}
EXECUTORS: Mapping[str, tuple[str, str, str | None]] = MappingProxyType(_EXECUTORS)


def get_executor(name: str) -> Any:
    try:
        module_name, class_name, extra = _EXECUTORS[name]
    except KeyError:
        known = ", ".join(sorted(_EXECUTORS))
        raise ConfigurationError(f"unknown executor '{name}' (known: {known})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'batchform[{extra}]'" if extra else ""
        raise ConfigurationError(f"executor '{name}' is not installed{hint}") from exc
    return getattr(module, class_name)()
