"""A training job's private `/opt/ml`: its folders, config files and environment.

Laid out as SageMaker lays out a training container (DESIGN §3.5), with the variables
the SageMaker training toolkit sets, so a `train` written for SageMaker (or a script
using `sagemaker_training`) finds everything where it looks. `SAGEMAKER_BASE_DIR`
points the toolkits at this folder instead of /opt/ml.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchform.runtimes.workspace import Workspace, create_workspace
from batchform.spec.training import CreateTrainingJobRequest
from batchform.training.channels import ChannelSpec

#: The first (or only) host of a job, named as SageMaker names the first instance.
HOST = "algo-1"
#: The port the first host's training code may listen on for its peers, by default.
MASTER_PORT = 7777
_INTERFACE = "eth0"
_GROUP = "homogeneousCluster"
# The toolkit keeps these out of SM_HPS: they configure the framework, not the script.
_FRAMEWORK_PREFIX = "sagemaker_"


def host_names(count: int) -> tuple[str, ...]:
    """SageMaker's names for a job's hosts: algo-1 … algo-N."""
    return tuple(f"algo-{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class HostIdentity:
    """Which of a job's hosts this one is, and how its training code reaches the others.

    SageMaker makes `algo-N` resolvable inside its network; here those names resolve
    nowhere, so each host's address travels beside them (`addresses`), and the first
    host's is handed out as the rendezvous point (SM_MASTER_ADDR / MASTER_ADDR).
    """

    index: int = 0
    hosts: tuple[str, ...] = (HOST,)
    addresses: Mapping[str, str] = field(default_factory=dict)
    master_port: int = MASTER_PORT

    @property
    def name(self) -> str:
        return self.hosts[self.index]

    @property
    def primary(self) -> bool:
        return self.index == 0


class TrainingWorkspace(Workspace):
    """The `/opt/ml` of a training job, with the folders only training uses."""

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel


def create_training_workspace(
    root: Path,
    request: CreateTrainingJobRequest,
    channels: list[ChannelSpec],
    host: HostIdentity | None = None,
) -> TrainingWorkspace:
    """Make the folders and write hyperparameters, inputdataconfig and resourceconfig.json."""
    workspace = TrainingWorkspace(create_workspace(root).root)
    # A Pipe channel has no folder, only its FIFOs `<channel>_<epoch>` beside the others.
    copied = [channel.name for channel in channels if not channel.piped]
    for folder in (
        workspace.output_data_dir,
        workspace.data_dir,
        *map(workspace.channel_dir, copied),
    ):
        folder.mkdir(parents=True, exist_ok=True)
    files = {
        "hyperparameters.json": hyperparameters(request),
        "inputdataconfig.json": input_data_config(channels),
        "resourceconfig.json": resource_config(request, host),
    }
    for name, content in files.items():
        (workspace.config_dir / name).write_text(json.dumps(content), encoding="utf-8")
    return workspace


def hyperparameters(request: CreateTrainingJobRequest) -> dict[str, str]:
    """HyperParameters as SageMaker writes them: every value a string."""
    return {name: str(value) for name, value in request.hyper_parameters.items()}


def input_data_config(channels: list[ChannelSpec]) -> dict[str, dict[str, str]]:
    """inputdataconfig.json: per channel, as SageMaker describes it (no ContentType key
    when the channel names none)."""
    return {
        channel.name: {
            **({"ContentType": channel.content_type} if channel.content_type else {}),
            "TrainingInputMode": channel.input_mode,
            "S3DistributionType": channel.distribution,
            "RecordWrapperType": channel.record_wrapper,
            "CompressionType": channel.compression,
        }
        for channel in channels
    }


def resource_config(
    request: CreateTrainingJobRequest, host: HostIdentity | None = None
) -> dict[str, Any]:
    """resourceconfig.json as SageMaker writes it on `host`: every host of the job, and
    the instance groups with the hosts of each."""
    host = host or HostIdentity()
    groups = _groups(request, host.hosts)
    current = next(group for group in groups if host.name in group["hosts"])
    return {
        "current_host": host.name,
        "current_instance_type": current["instance_type"],
        "current_group_name": current["instance_group_name"],
        "hosts": list(host.hosts),
        "instance_groups": groups,
        "network_interface_name": _INTERFACE,
    }


def _groups(request: CreateTrainingJobRequest, hosts: tuple[str, ...]) -> list[dict[str, Any]]:
    """Hosts dealt to InstanceGroups in order (one homogeneous group without them)."""
    resources = request.resource_config
    declared = resources.instance_groups or []
    if not declared:
        kind = resources.instance_type or "local"
        return [{"instance_group_name": _GROUP, "instance_type": kind, "hosts": list(hosts)}]
    groups: list[dict[str, Any]] = []
    taken = 0
    for group in declared:
        count = group.instance_count if len(declared) > 1 else len(hosts)
        members = list(hosts[taken : taken + count])
        taken += count
        groups.append(
            {
                "instance_group_name": group.instance_group_name,
                "instance_type": group.instance_type,
                "hosts": members,
            }
        )
    groups[0]["hosts"] += list(hosts[taken:])  # never leave a host without a group
    return groups


def training_environment(
    workspace: TrainingWorkspace,
    request: CreateTrainingJobRequest,
    channels: list[ChannelSpec],
    host: HostIdentity | None = None,
) -> dict[str, str]:
    """The variables `train` starts with; the job's Environment comes last and wins."""
    host = host or HostIdentity()
    hps = toolkit_hyperparameters(hyperparameters(request))
    environment = {
        "SAGEMAKER_BASE_DIR": str(workspace.root),
        "TRAINING_JOB_NAME": request.training_job_name,
        **_folders(workspace),
        "SM_CHANNELS": _compact(sorted(_names(channels))),
        **{
            f"SM_CHANNEL_{name.upper()}": str(workspace.channel_dir(name))
            for name in _names(channels)
        },
        "SM_HPS": _compact(hps),
        **_per_hyperparameter(hps),
        "SM_NUM_CPUS": str(_cpu_count()),
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": _compact(list(host.hosts)),
        "SM_CURRENT_HOST": host.name,
        "SM_NETWORK_INTERFACE_NAME": _INTERFACE,
        "SM_RESOURCE_CONFIG": _compact(resource_config(request, host)),
        "SM_INPUT_DATA_CONFIG": _compact(input_data_config(channels)),
        **_peers(host),
    }
    environment.update(request.environment)
    return environment


def _peers(host: HostIdentity) -> dict[str, str]:
    """Where a distributed job's hosts meet, for hosts whose names do not resolve:
    SM_MASTER_ADDR/PORT (and torch's MASTER_ADDR/PORT) name the first host's address and
    a port free there; BATCHFORM_HOST_ADDRESSES maps every host name to its address."""
    if len(host.hosts) < 2:
        return {}
    master = host.addresses.get(host.hosts[0], "127.0.0.1")
    port = str(host.master_port)
    return {
        "SM_MASTER_ADDR": master,
        "SM_MASTER_PORT": port,
        "MASTER_ADDR": master,
        "MASTER_PORT": port,
        "BATCHFORM_HOST_ADDRESSES": _compact(dict(host.addresses)),
    }


def toolkit_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    """Hyperparameters as the toolkit hands them to scripts: JSON values decoded (so
    "0.5" is a number and "pure_nccl" stays a string), framework ones left out."""
    return {
        name: _decoded(value)
        for name, value in raw.items()
        if not name.startswith(_FRAMEWORK_PREFIX)
    }


def _per_hyperparameter(hps: dict[str, Any]) -> dict[str, str]:
    """SM_HP_<NAME> for each hyperparameter whose name can be a variable's: a name with
    '=' or a NUL byte cannot, and would stop the process from starting at all."""
    variables = {f"SM_HP_{name.upper()}": _env_value(value) for name, value in hps.items()}
    return {name: value for name, value in variables.items() if _settable(name, value)}


def _settable(name: str, value: str) -> bool:
    return "=" not in name and "\x00" not in name + value


def _folders(workspace: TrainingWorkspace) -> dict[str, str]:
    return {
        "SM_MODEL_DIR": str(workspace.model_dir),
        "SM_INPUT_DIR": str(workspace.input_dir),
        "SM_INPUT_CONFIG_DIR": str(workspace.config_dir),
        "SM_OUTPUT_DIR": str(workspace.output_dir),
        "SM_OUTPUT_DATA_DIR": str(workspace.output_data_dir),
    }


def _names(channels: list[ChannelSpec]) -> list[str]:
    return [channel.name for channel in channels]


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _compact(value: Any) -> str:
    # The toolkit's own spelling (mapping.to_env_vars): sorted keys, no spaces.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else _compact(value)


def _cpu_count() -> int:
    # The cores this process may use (a container's or taskset's limit), not the host's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
