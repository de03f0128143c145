"""`batchform server --executor ray --ray-address …`: a CreateTransformJob with
InstanceCount 3 spreads over the three-node cluster, and DescribeTransformJob answers
with the same fields as for the same job on a server running jobs locally; an
endpoint's instances are actors on different nodes, and a lost one is placed again."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.integration.test_ray_transform import HANDLERS, csv_sum, outputs, put, rows, wait_for
from tests.integration.test_server_api import create_model, wait_done
from tests.integration.test_server_endpoints import ECHO, deploy, invoke
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


def answering(log: str) -> set[str]:
    """The endpoint's instances whose model logged an invocation."""
    return set(re.findall(r"\[(AllTraffic/i-spread-echo-alltraffic-\d)\] .*invocation", log))


def named_actors(prefix: str) -> list[str]:
    import ray

    found = ray.util.list_named_actors(all_namespaces=True)
    return sorted(actor["name"] for actor in found if actor["name"].startswith(prefix))


def test_an_endpoint_s_instances_are_actors_and_a_lost_one_is_placed_again(
    ray_cluster: Any, tmp_path: Path
) -> None:
    import ray

    cluster = ("--executor", "ray", "--ray-address", ray_cluster.address)
    with running_server(tmp_path, *cluster) as server:
        sagemaker, runtime = server.client(), server.client("sagemaker-runtime")
        described = deploy(sagemaker, "spread-echo", ECHO, count=2)
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        for n in range(20):
            assert invoke(runtime, "spread-echo", f"{n}\n".encode())["Body"].read() == b"%d\n" % n
        log_path = server.home / "endpoints" / "spread-echo" / "log"
        log = log_path.read_text()
        nodes = set(re.findall(r"instance-\d: Ray actor on node \S+ \((\w+)\)", log))
        assert len(nodes) == 2, "each instance on a node of its own"
        # The model's lines come home with the actors' next news (a fraction of a second).
        wait_for(lambda: len(answering(log_path.read_text())) == 2, timeout=20)

        actors = named_actors("spread-echo-AllTraffic/")
        assert len(actors) == 2
        ray.kill(ray.get_actor(actors[0], namespace="batchform"))
        answers = [invoke(runtime, "spread-echo", b"%d\n" % n)["Body"].read() for n in range(40)]
        assert answers == [b"%d\n" % n for n in range(40)]
        wait_for(lambda: "was placed again" in log_path.read_text(), timeout=60)
        assert len(named_actors("spread-echo-AllTraffic/")) == 2
        sagemaker.delete_endpoint(EndpointName="spread-echo")
        wait_for(lambda: named_actors("spread-echo-AllTraffic/") == [], timeout=60)
