"""What each host of a multi-host training job is told: resourceconfig.json, the toolkit's
variables, where its peers are, and its share of a ShardedByS3Key channel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchform.storage import InputObject
from batchform.training import parse_training_request
from batchform.training.channels import channel_specs, host_share
from batchform.training.hosts import host_count
from batchform.training.layout import (
    HostIdentity,
    create_training_workspace,
    host_names,
    resource_config,
    training_environment,
)

HOSTS = host_names(3)
ADDRESSES = {"algo-1": "10.0.0.1", "algo-2": "10.0.0.2", "algo-3": "10.0.0.3"}


def request(resources: dict[str, Any], distribution: str = "FullyReplicated") -> Any:
    source = {"S3DataType": "S3Prefix", "S3Uri": "s3://b/train/"}
    source["S3DataDistributionType"] = distribution
    return parse_training_request(
        {
            "TrainingJobName": "job",
            "AlgorithmSpecification": {"TrainingImage": "builtin:pca", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/training",
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": source}}],
            "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
            "ResourceConfig": resources,
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        }
    )


def test_each_host_is_named_as_sagemaker_names_them() -> None:
    assert HOSTS == ("algo-1", "algo-2", "algo-3")
    assert host_count(request({"InstanceType": "ml.m5.large", "InstanceCount": 3})) == 3


def test_resourceconfig_lists_every_host_and_names_the_current_one() -> None:
    job = request({"InstanceType": "ml.m5.xlarge", "InstanceCount": 3})
    config = resource_config(job, HostIdentity(1, HOSTS, ADDRESSES))
    assert config == {
        "current_host": "algo-2",
        "current_instance_type": "ml.m5.xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.m5.xlarge",
                "hosts": ["algo-1", "algo-2", "algo-3"],
            }
        ],
        "network_interface_name": "eth0",
    }


def test_instance_groups_get_their_hosts_in_order() -> None:
    groups = [
        {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "gpu", "InstanceType": "ml.p3.2xlarge", "InstanceCount": 2},
    ]
    config = resource_config(request({"InstanceGroups": groups}), HostIdentity(2, HOSTS))
    assert (config["current_group_name"], config["current_instance_type"]) == (
        "gpu",
        "ml.p3.2xlarge",
    )
    assert [group["hosts"] for group in config["instance_groups"]] == [
        ["algo-1"],
        ["algo-2", "algo-3"],
    ]


def test_a_host_learns_where_its_peers_are(tmp_path: Path) -> None:
    job = request({"InstanceType": "ml.m5.large", "InstanceCount": 3})
    host = HostIdentity(2, HOSTS, ADDRESSES, master_port=29500)
    workspace = create_training_workspace(tmp_path, job, channel_specs(job), host)
    env = training_environment(workspace, job, channel_specs(job), host)
    written = json.loads((workspace.config_dir / "resourceconfig.json").read_text())
    assert written["current_host"] == env["SM_CURRENT_HOST"] == "algo-3"
    assert json.loads(env["SM_HOSTS"]) == list(HOSTS)
    assert (env["SM_MASTER_ADDR"], env["SM_MASTER_PORT"]) == ("10.0.0.1", "29500")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("10.0.0.1", "29500")
    assert json.loads(env["BATCHFORM_HOST_ADDRESSES"]) == ADDRESSES


def test_a_single_host_job_is_told_of_no_peers(tmp_path: Path) -> None:
    job = request({"InstanceType": "ml.m5.large", "InstanceCount": 1})
    workspace = create_training_workspace(tmp_path, job, channel_specs(job))
    env = training_environment(workspace, job, channel_specs(job))
    assert env["SM_CURRENT_HOST"] == "algo-1" and json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert "SM_MASTER_ADDR" not in env and "BATCHFORM_HOST_ADDRESSES" not in env


def test_sharded_by_s3_key_deals_objects_to_hosts_in_key_order() -> None:
    objects = [InputObject(f"s3://b/train/{k}", k, 1) for k in "abcde"]
    sharded = channel_specs(
        request({"InstanceCount": 2, "InstanceType": "ml.m5.large"}, "ShardedByS3Key")
    )[0]
    replicated = channel_specs(request({"InstanceCount": 2, "InstanceType": "ml.m5.large"}))[0]
    assert [o.key for o in host_share(sharded, objects, (0, 2))] == ["a", "c", "e"]
    assert [o.key for o in host_share(sharded, objects, (1, 2))] == ["b", "d"]
    assert host_share(replicated, objects, (1, 2)) == objects
