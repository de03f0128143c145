"""What an `ml.*` InstanceType reserves on a Ray node: CPUs, memory and GPUs.

The mapping follows AWS's published sizes (docs/ray.md has the table):

- vCPUs from the size: `large` 2, `xlarge` 4, `<N>xlarge` 4 * N, `medium` 2 for the
  burstable `t` families and 1 otherwise;
- memory from the family's GiB per vCPU: `c` 2, `m` 4, `r` 8, `t` 2, `x` 16, `z` 8,
  `g4dn`/`g5` 4, `p2` 15.25, `p3` 7.625, `p4d` 12, `inf` 2, `trn` 4 (unknown families 4);
- GPUs from AWS's list of the GPU types (p2, p3, p4d, g4dn, g5).

Overrides, first found wins: the job's Environment, then this process's environment —
`BATCHFORM_INSTANCE_CPUS`, `BATCHFORM_INSTANCE_MEMORY_MB`, `BATCHFORM_INSTANCE_GPUS` —
and `BATCHFORM_INSTANCE_TYPES`, a JSON object mapping type names to
`{"cpus": …, "memory_gib": …, "gpus": …}` (for a cluster whose nodes are not AWS's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import orjson

from batchform.engine.executors.base import InstanceResources
from batchform.errors import ConfigurationError

CPUS = "BATCHFORM_INSTANCE_CPUS"
MEMORY_MB = "BATCHFORM_INSTANCE_MEMORY_MB"
GPUS = "BATCHFORM_INSTANCE_GPUS"
TYPES = "BATCHFORM_INSTANCE_TYPES"

_GIB = 2**30
_SHAPE = re.compile(r"^ml\.(?P<family>[a-z]+\d*[a-z]*)\.(?P<size>\d*x?large|medium|metal)$")
_GIB_PER_CPU = {
    "c": 2.0,
    "m": 4.0,
    "r": 8.0,
    "t": 2.0,
    "x": 16.0,
    "z": 8.0,
    "g4dn": 4.0,
    "g5": 4.0,
    "p2": 15.25,
    "p3": 7.625,
    "p3dn": 8.0,
    "p4d": 12.0,
    "inf": 2.0,
    "trn": 4.0,
}
_GPUS = {
    "p2.xlarge": 1,
    "p2.8xlarge": 8,
    "p2.16xlarge": 16,
    "p3.2xlarge": 1,
    "p3.8xlarge": 4,
    "p3.16xlarge": 8,
    "p3dn.24xlarge": 8,
    "p4d.24xlarge": 8,
    "g4dn.12xlarge": 4,
    "g5.12xlarge": 4,
    "g5.24xlarge": 4,
    "g5.48xlarge": 8,
}
_ONE_GPU_FAMILIES = ("g4dn", "g5")


def instance_resources(
    instance_type: str | None, environment: Mapping[str, str] | None = None
) -> InstanceResources:
    """The resources of one instance of `instance_type`, overrides applied."""
    settings = {**os.environ, **(environment or {})}
    base = _from_table(instance_type, settings.get(TYPES)) or aws_resources(instance_type)
    return InstanceResources(
        cpus=_number(settings, CPUS, base.cpus),
        memory_bytes=int(_number(settings, MEMORY_MB, base.memory_bytes / 2**20) * 2**20),
        gpus=int(_number(settings, GPUS, base.gpus)),
    )


def aws_resources(instance_type: str | None) -> InstanceResources:
    """AWS's vCPUs, memory and GPUs for an `ml.<family>.<size>` name; 1 CPU if unknown."""
    match = _SHAPE.match(instance_type or "")
    if match is None:
        return InstanceResources(cpus=1, memory_bytes=0)
    family, size = match["family"], match["size"]
    cpus = _vcpus(family, size)
    per_cpu = _GIB_PER_CPU.get(family) or _GIB_PER_CPU.get(_letters(family), 4.0)
    return InstanceResources(cpus, int(cpus * per_cpu * _GIB), _gpus(family, size))


def _vcpus(family: str, size: str) -> int:
    if size == "medium":
        return 2 if family.startswith("t") else 1
    if size == "large":
        return 2
    if size == "metal":
        return 96
    multiple = size.removesuffix("xlarge")
    return 4 * (int(multiple) if multiple else 1)


def _gpus(family: str, size: str) -> int:
    known = _GPUS.get(f"{family}.{size}")
    if known is not None:
        return known
    return 1 if family in _ONE_GPU_FAMILIES else 0


def _letters(family: str) -> str:
    """The family's leading letters: `m5d` -> `m`, `inf1` -> `inf`."""
    return re.match(r"[a-z]+", family)[0]  # type: ignore[index]


def _from_table(instance_type: str | None, table: str | None) -> InstanceResources | None:
    if not table or not instance_type:
        return None
    try:
        entry = orjson.loads(table).get(instance_type)
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise ConfigurationError(f"{TYPES} must be a JSON object of instance types") from exc
    if entry is None:
        return None
    aws = aws_resources(instance_type)
    return InstanceResources(
        cpus=float(entry.get("cpus", aws.cpus)),
        memory_bytes=int(float(entry.get("memory_gib", aws.memory_bytes / _GIB)) * _GIB),
        gpus=int(entry.get("gpus", aws.gpus)),
    )


def _number(settings: Mapping[str, str], name: str, default: float) -> float:
    text = settings.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {text!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative, not {text!r}")
    return value
