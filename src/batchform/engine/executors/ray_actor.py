"""What runs on the nodes for the Ray executor: the instance actor and the sweeper.

The actor keeps an InstanceContext, runs the tasks it is handed one at a time and queues
what they report until the driver's pump drains it; the sweeper removes what a lost
instance left behind on its node.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import psutil
import ray

from batchform.engine.executors.base import (
    InstanceContext,
    ProgressRecorder,
    Task,
    portable,
)


@dataclass(frozen=True)
class NodeInfo:
    """Where an actor runs: its node, its process and its private workspace there."""

    node_id: str
    address: str
    pid: int
    workspace: str


@dataclass(frozen=True)
class Raised:
    """A task's exception, returned rather than raised so that it arrives as itself."""

    error: BaseException


@dataclass(frozen=True)
class RayShared:
    ref: Any

    def get(self) -> bytes:
        data: bytes = ray.get(self.ref)
        return data


class InstanceActor:
    """One instance: runs the tasks it is given, one at a time, and queues their events."""

    def __init__(self, index: int, job_name: str, cpus: int, environment: dict[str, str]):
        os.environ.update(environment)  # the actor owns its process
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in job_name)
        workspace = tempfile.mkdtemp(prefix=f"batchform-{safe}-instance-{index + 1}-")
        self._events: list[object] = []
        self._lock = threading.Lock()
        self._recorder = ProgressRecorder()
        node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self._context = InstanceContext(index, workspace, cpus, self._recorder, self._emit, node)
        self._context.cleanup.callback(shutil.rmtree, workspace, ignore_errors=True)
        atexit.register(self._context.cleanup.close)  # Ray ends idle actors gracefully

    def _emit(self, event: object) -> None:
        with self._lock:
            self._events.append(event)

    def ping(self) -> NodeInfo:
        node_id = ray.get_runtime_context().get_node_id()
        return NodeInfo(node_id, self._context.node, os.getpid(), self._context.workspace)

    def call(self, task: Task) -> Any:
        try:
            return task(self._context)
        except BaseException as exc:  # sent home as a value: see Raised
            return Raised(portable(exc))

    def drain(self) -> list[object]:
        with self._lock:
            events, self._events = self._events, []
        counts = self._recorder.take()
        return [*events, counts] if counts is not None else events

    def stop(self) -> None:
        self._context.stop.set()

    def close(self) -> None:
        self._context.stop.set()
        self._context.cleanup.close()


RemoteInstance = ray.remote(InstanceActor)


@ray.remote(num_cpus=0)
def sweep(workspace: str) -> None:
    """Kill what a lost instance left running in its workspace, then remove the folder."""
    own_group = os.getpgid(0)
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd") or ""
        if cwd != workspace and not cwd.startswith(workspace + os.sep):
            continue
        with contextlib.suppress(OSError, psutil.Error):
            group = os.getpgid(process.pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            else:
                process.kill()
    shutil.rmtree(workspace, ignore_errors=True)
