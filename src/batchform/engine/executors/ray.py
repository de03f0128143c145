"""Runs each instance of a job as a Ray actor, spread over the cluster's nodes.

Every actor reserves its InstanceType's resources (executors/resources.py) and is
placed with Ray's SPREAD strategy, so N instances land on N nodes when the cluster has
them. A pump thread in this process brings each actor's events home every fraction of a
second and settles the futures of the tasks it ran; an actor that dies (its process
killed, its node gone) fails its task with InstanceLost, and what it left on its node
(model processes, workspace) is swept by a task placed on that node when the node is
still there. Imported only when a job asks for `ray`; the import fails without the extra.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from batchform.engine.executors import ExecutorSettings
from batchform.engine.executors.base import (
    InstanceLost,
    LogLine,
    NoCapacity,
    PoolSpec,
    Shared,
    Task,
)
from batchform.engine.executors.ray_actor import (
    NodeInfo,
    Raised,
    RayShared,
    RemoteInstance,
    sweep,
)
from batchform.errors import ConfigurationError

NAMESPACE = "batchform"
#: Seconds to wait for the cluster to place a job's instances (an autoscaler may add nodes).
PLACEMENT_TIMEOUT_ENV = "BATCHFORM_RAY_PLACEMENT_TIMEOUT"
DEFAULT_PLACEMENT_TIMEOUT = 120.0
#: Prefixes of this process's variables the actors get (storage endpoints and keys).
FORWARD_ENV = "BATCHFORM_RAY_FORWARD_ENV"
DEFAULT_FORWARDED = "AWS_"
_PUMP_SECONDS = 0.2
# Seconds of waiting for placement before the job's log says it is waiting.
_PATIENCE = 5.0
# Seconds a replacement may wait for the resources its dead predecessor held.
_RELEASE_SECONDS = 5.0
# Above this many actors the pump slows down, so that a job of hundreds of instances
# does not make thousands of drain calls a second to this one process.
_PUMP_ACTORS = 50
_CLOSE_SECONDS = 30.0
# Joining a cluster: attempts, and seconds of backoff times the attempt number.
_JOIN_ATTEMPTS = 3
_JOIN_BACKOFF = 2.0
# Tasks, drains, stop and close run side by side on an actor's threads.
_ACTOR_THREADS = 16


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> RayExecutor:
        return cls(settings.address)

    def start(self, spec: PoolSpec) -> RayPool:
        connect(self.address)
        return RayPool(spec, _placement_timeout())


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` (None: RAY_ADDRESS, else a new local Ray), once per
    process; `ray://` addresses go through Ray Client."""
    if ray.is_initialized():
        return
    for attempt in range(1, _JOIN_ATTEMPTS + 1):
        try:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
            return
        except ValueError as exc:  # a malformed address: trying again cannot help
            raise _cannot_join(address, exc) from exc
        except (ConnectionError, RuntimeError) as exc:
            # A busy head may be slow to start the Ray Client server it gives each
            # client; that passes, a cluster that is not there does not.
            if attempt == _JOIN_ATTEMPTS:
                raise _cannot_join(address, exc) from exc
            time.sleep(_JOIN_BACKOFF * attempt)


def _cannot_join(address: str | None, error: Exception) -> ConfigurationError:
    where = address or os.environ.get("RAY_ADDRESS") or "a new local Ray instance"
    return ConfigurationError(f"cannot join the Ray cluster at {where}: {error}")


def local_cluster() -> str:
    """Start Ray on this machine (or join the one running here); the address other
    processes of this machine join it by."""
    connect(None)
    return str(ray.get_runtime_context().gcs_address)


class RayPool:
    """A job's actors, their tasks in flight and the pump that brings their news home."""

    def __init__(self, spec: PoolSpec, placement_timeout: float) -> None:
        self._spec = spec
        self._timeout = placement_timeout
        self._token = uuid.uuid4().hex[:8]
        self._environment = forwarded_environment()
        self._actors: list[Any | None] = [None] * spec.count
        self._nodes: list[NodeInfo | None] = [None] * spec.count
        # A call's reference -> (instance, the actor it went to, its future).
        self._calls: dict[Any, tuple[int, Any, Future[Any]]] = {}
        self._draining: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._place(list(range(spec.count)), placement_timeout)
        self.spans_machines = _spans_machines()
        self._pump = threading.Thread(target=self._run_pump, name="ray-pump", daemon=True)
        self._pump.start()

    @property
    def count(self) -> int:
        return self._spec.count

    # -- placing actors ---------------------------------------------------------------

    def _create(self, index: int) -> Any:
        resources = self._spec.resources
        options: dict[str, Any] = {
            "name": f"{self._spec.job_name}/{self._token}/instance-{index + 1}",
            "namespace": NAMESPACE,
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "scheduling_strategy": "SPREAD",
            "max_concurrency": _ACTOR_THREADS,
            "max_restarts": 0,
        }
        if resources.memory_bytes:
            options["memory"] = resources.memory_bytes
        cpus = max(1, int(resources.cpus))
        return RemoteInstance.options(**options).remote(
            index, self._spec.job_name, cpus, self._environment
        )

    def _place(self, indices: list[int], timeout: float) -> bool:
        """Create actors for `indices` and wait until each answers; NoCapacity if not."""
        actors = {index: self._create(index) for index in indices}
        pings = {actors[index].ping.remote(): index for index in indices}
        ready, waiting = ray.wait(
            list(pings), num_returns=len(pings), timeout=min(_PATIENCE, timeout)
        )
        if waiting and timeout > _PATIENCE:  # say why nothing happens: an autoscaler may act
            self._say(
                f"waiting up to {timeout:g} s for the cluster to place {len(waiting)} "
                f"instance(s) ({self._spec.resources.describe()} each)"
            )
            more, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=timeout - _PATIENCE)
            ready += more
        if waiting:
            for actor in actors.values():
                ray.kill(actor)
            raise NoCapacity(self._unplaced(len(waiting), timeout))
        for ref in ready:
            self._placed(pings[ref], actors, ref)
        return True

    def _placed(self, index: int, actors: dict[int, Any], ping: Any) -> None:
        try:
            node: NodeInfo = ray.get(ping)
        except RayError as exc:
            for actor in actors.values():
                ray.kill(actor)
            raise ConfigurationError(f"instance-{index + 1} could not start: {exc}") from exc
        self._actors[index], self._nodes[index] = actors[index], node
        self._say(
            f"instance-{index + 1}: Ray actor on node {node.address} "
            f"({node.node_id[:8]}), pid {node.pid}"
        )

    def _say(self, line: str) -> None:
        self._spec.on_event(0, LogLine("data-log", line))

    def _unplaced(self, missing: int, timeout: float) -> str:
        total = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cluster = f"{total.get('CPU', 0):g} CPU, {total.get('memory', 0) / 2**30:.1f} GiB"
        if total.get("GPU"):
            cluster += f", {total['GPU']:g} GPU"
        return (
            f"the Ray cluster could not place {missing} of {self._spec.count} instance(s) "
            f"({self._spec.resources.describe()} each) within {timeout:g} s; it has "
            f"{cluster} in all. Lower InstanceCount, choose a smaller InstanceType or set "
            "BATCHFORM_INSTANCE_CPUS / BATCHFORM_INSTANCE_MEMORY_MB"
        )

    def replace(self, index: int) -> bool:
        if self._actors[index] is not None:
            return True  # replaced already, for another of the lost one's tasks
        # A dead actor's resources come back a moment after it died (a lost node's never
        # do): without room now, give the cluster that moment rather than none.
        timeout = min(self._timeout, 60.0) if self._room_for_one() else _RELEASE_SECONDS
        try:
            return self._place([index], timeout)
        except (NoCapacity, ConfigurationError):
            return False

    def _room_for_one(self) -> bool:
        free: dict[str, float] = ray.available_resources()  # type: ignore[no-untyped-call]
        needed = self._spec.resources
        return (
            free.get("CPU", 0) >= needed.cpus
            and free.get("memory", 0) >= needed.memory_bytes
            and free.get("GPU", 0) >= needed.gpus
        )

    # -- tasks ---------------------------------------------------------------------------

    def submit(self, index: int, task: Task) -> Future[Any]:
        future: Future[Any] = Future()
        actor = self._actors[index]
        if actor is None:
            future.set_exception(InstanceLost(f"instance-{index + 1} is gone"))
            return future
        with self._lock:
            self._calls[actor.call.remote(task)] = (index, actor, future)
        return future

    def share(self, data: bytes) -> Shared:
        return RayShared(ray.put(data))

    def stop(self) -> None:
        for actor in self._actors:
            if actor is not None:
                actor.stop.remote()

    def close(self) -> None:
        self._closed.set()
        self._pump.join(timeout=10)
        closing = [actor.close.remote() for actor in self._actors if actor is not None]
        with contextlib.suppress(RayError):
            ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_SECONDS)
        for index in range(self._spec.count):
            self._final_events(index)  # what the models said while they stopped
        for actor in self._actors:
            if actor is not None:
                ray.kill(actor)
        self._actors = [None] * self._spec.count

    # -- the pump ----------------------------------------------------------------------

    def _run_pump(self) -> None:
        interval = _PUMP_SECONDS * max(1.0, self._spec.count / _PUMP_ACTORS)
        while not self._closed.wait(interval):
            for index, actor in enumerate(self._actors):
                if actor is not None and index not in self._draining:
                    self._draining[index] = actor.drain.remote()
            self._collect_drains(timeout=0)
            self._settle()

    def _collect_drains(self, timeout: float, only: int | None = None) -> None:
        pending = {ref: i for i, ref in self._draining.items() if only in (None, i)}
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        for ref in ready:
            index = pending[ref]
            del self._draining[index]
            try:
                events: list[object] = ray.get(ref)
            except RayError:
                continue  # the actor is gone; its task's future says so
            for event in events:
                self._spec.on_event(index, event)

    def _settle(self) -> None:
        with self._lock:
            calls = dict(self._calls)
        if not calls:
            return
        ready, _ = ray.wait(list(calls), num_returns=len(calls), timeout=0)
        for ref in ready:
            index, actor, future = calls[ref]
            with self._lock:
                del self._calls[ref]
            self._final_events(index)
            self._resolve(ref, index, actor, future)

    def _final_events(self, index: int) -> None:
        """Everything the actor emitted before its task returned, before its result."""
        actor = self._actors[index]
        if actor is None:
            return
        with contextlib.suppress(GetTimeoutError, RayError):
            self._collect_drains(timeout=_CLOSE_SECONDS, only=index)
            self._draining[index] = actor.drain.remote()
            self._collect_drains(timeout=_CLOSE_SECONDS, only=index)

    def _resolve(self, ref: Any, index: int, actor: Any, future: Future[Any]) -> None:
        try:
            value = ray.get(ref)
        except RayActorError as exc:
            self._lost(index, actor)
            future.set_exception(InstanceLost(f"instance-{index + 1} was lost: {_first(exc)}"))
        except RayTaskError as exc:
            future.set_exception(exc.cause if isinstance(exc.cause, BaseException) else exc)
        except RayError as exc:
            self._lost(index, actor)
            future.set_exception(InstanceLost(f"instance-{index + 1} failed: {_first(exc)}"))
        else:
            if isinstance(value, Raised):
                future.set_exception(value.error)
            else:
                future.set_result(value)

    def _lost(self, index: int, actor: Any) -> None:
        """Forget a dead actor (not its replacement, if one already took its place) and
        sweep what it left on its node."""
        current = self._actors[index]
        if current is None or current is not actor:
            return
        node = self._nodes[index]
        self._actors[index] = None
        self._draining.pop(index, None)
        with contextlib.suppress(RayError):
            ray.kill(current)
        if node is not None and _alive(node.node_id):
            strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
            with contextlib.suppress(RayError):
                sweep.options(scheduling_strategy=strategy).remote(node.workspace)


def forwarded_environment() -> dict[str, str]:
    """This process's variables whose names start with BATCHFORM_RAY_FORWARD_ENV's
    prefixes (default `AWS_`): so actors reach storage the way this process does."""
    prefixes = [p for p in os.environ.get(FORWARD_ENV, DEFAULT_FORWARDED).split(",") if p]
    return {
        name: value
        for name, value in os.environ.items()
        if any(name.startswith(prefix) for prefix in prefixes)
    }


def _alive(node_id: str) -> bool:
    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return any(node.get("NodeID") == node_id and node.get("Alive") for node in nodes)


def _spans_machines() -> bool:
    nodes = [node for node in ray.nodes() if node.get("Alive")]  # type: ignore[no-untyped-call]
    if len(nodes) != 1:
        return True
    here = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    return bool(nodes[0].get("NodeManagerAddress") != here)


def _placement_timeout() -> float:
    text = os.environ.get(PLACEMENT_TIMEOUT_ENV)
    try:
        return float(text) if text else DEFAULT_PLACEMENT_TIMEOUT
    except ValueError:
        raise ConfigurationError(f"{PLACEMENT_TIMEOUT_ENV} must be a number of seconds") from None


def _first(error: BaseException) -> str:
    """The first line of Ray's (long) explanation."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]
