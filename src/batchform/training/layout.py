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
from pathlib import Path
from typing import Any

from batchform.runtimes.workspace import Workspace, create_workspace
from batchform.spec.training import CreateTrainingJobRequest
from batchform.training.channels import ChannelSpec

#: The one host a job runs on here, named as SageMaker names the first instance.
HOST = "algo-1"
_INTERFACE = "eth0"
_GROUP = "homogeneousCluster"
# The toolkit keeps these out of SM_HPS: they configure the framework, not the script.
_FRAMEWORK_PREFIX = "sagemaker_"


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
    root: Path, request: CreateTrainingJobRequest, channels: list[ChannelSpec]
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
        "resourceconfig.json": resource_config(request),
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


def resource_config(request: CreateTrainingJobRequest) -> dict[str, Any]:
    """resourceconfig.json of a single-host job, with the instance-group keys newer
    toolkits read."""
    resources = request.resource_config
    groups = resources.instance_groups or []
    group = groups[0].instance_group_name if groups else _GROUP
    kind = resources.instance_type or (groups[0].instance_type if groups else "local")
    return {
        "current_host": HOST,
        "current_instance_type": kind,
        "current_group_name": group,
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": group, "instance_type": kind, "hosts": [HOST]}],
        "network_interface_name": _INTERFACE,
    }


def training_environment(
    workspace: TrainingWorkspace, request: CreateTrainingJobRequest, channels: list[ChannelSpec]
) -> dict[str, str]:
    """The variables `train` starts with; the job's Environment comes last and wins."""
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
        "SM_HOSTS": _compact([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NETWORK_INTERFACE_NAME": _INTERFACE,
        "SM_RESOURCE_CONFIG": _compact(resource_config(request)),
        "SM_INPUT_DATA_CONFIG": _compact(input_data_config(channels)),
    }
    environment.update(request.environment)
    return environment


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
