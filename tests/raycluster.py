"""A Ray cluster of several nodes on this machine, for the Ray executor's tests.

`ray.cluster_utils.Cluster` starts a head and worker nodes as separate raylets on
loopback: each has its own resources, object store and worker processes, so actors
placed on different nodes are as apart as Ray can make them on one machine. The nodes
get logical CPUs and memory (2 CPUs, 8.5 GiB: one ml.m5.large instance each) and small
object stores, so three of them fit a 2-core test machine. The head also serves Ray
Client, so a process can join with a `ray://` address as it would join a remote cluster.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NODES = 3
NODE = {
    "num_cpus": 2,
    "memory": int(8.5 * 2**30),
    "object_store_memory": 100 * 2**20,
}


@contextmanager
def simulated_cluster(nodes: int = NODES) -> Iterator[Any]:
    """A head and `nodes - 1` workers, with this process connected as the driver."""
    import ray
    from ray.cluster_utils import Cluster

    port = _free_port()
    head = {**NODE, "ray_client_server_port": port, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.client_address = f"ray://127.0.0.1:{port}"
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="batchform", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def add_worker(cluster: Any) -> Any:
    """One more worker node (after a test took one away)."""
    node = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    return node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
