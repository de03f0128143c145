"""`batchform server --executor ray --ray-address ray://…`: a CreateTransformJob with
InstanceCount 3 spreads over the three-node cluster, and DescribeTransformJob answers
with the same fields as for the same job on a server running jobs locally."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.integration.test_ray_transform import HANDLERS, csv_sum, outputs, put, rows
from tests.integration.test_server_api import create_model, wait_done
from tests.serverproc import running_server

VARYING = {
    "TransformJobName",
    "TransformJobArn",
    "TransformOutput",
    "ModelName",
    "ResponseMetadata",
    # The handler's workers, hence its concurrency, follow the instance's cores: an
    # ml.m5.large's 2 vCPUs on the cluster, a third of this machine's cores locally.
    "MaxConcurrentTransforms",
}
TIMES = {"CreationTime", "TransformStartTime", "TransformEndTime", "LastModifiedTime"}


def transform(sm: Any, name: str, bucket: str, output: str) -> dict[str, Any]:
    create_model(sm, f"{name}-model", HANDLERS / "csv_sum")
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=f"{name}-model",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{bucket}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"{bucket}/{output}/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 3},
    )
    return wait_done(sm, name)


def test_a_job_through_the_api_spreads_over_the_cluster(
    ray_cluster: Any, s3_env: str, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    inputs = {f"in/part-{i}.csv": rows(i, 300) for i in range(6)}
    put(s3_client, s3_bucket, inputs)
    ray_home, local_home = tmp_path / "ray", tmp_path / "local"
    # Through Ray Client, as `batchform server --ray-address ray://head:10001` joins.
    cluster = ("--executor", "ray", "--ray-address", ray_cluster.client_address)
    with running_server(ray_home, *cluster) as on_ray, running_server(local_home) as here:
        described = transform(on_ray.client(), "spread", s3_bucket, "ray")
        reference = transform(here.client(), "reference", s3_bucket, "local")

    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    expected = {f"{key[3:]}.out": csv_sum(data) for key, data in inputs.items()}
    assert outputs(s3_client, s3_bucket, "ray/") == expected
    assert set(described) == set(reference)
    same = set(described) - VARYING - TIMES
    assert {key: described[key] for key in same} == {key: reference[key] for key in same}
    local_share = max(1, (os.cpu_count() or 1) // 3)
    assert described["MaxConcurrentTransforms"] == 2
    assert reference["MaxConcurrentTransforms"] == local_share
    log = (ray_home / "jobs" / "spread" / "log").read_text()
    nodes = set(re.findall(r"instance-\d: Ray actor on node \S+ \((\w+)\)", log))
    assert len(nodes) == 3
