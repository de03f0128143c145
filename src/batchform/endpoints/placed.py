"""Endpoint instances placed by an executor: Ray actors across a cluster.

Each instance of a production variant is an executor instance (an actor reserving the
variant's InstanceType) that starts the model process on its node and answers with the
address the proxy reaches it at; requests then go straight from the proxy to that
process, never through Ray. The endpoint's watchdog asks every instance each second to
keep its model running: an instance that restarted its model answers with the new
address, and one whose actor was lost is placed again (a replacement actor, on any
node with room) while the others go on serving.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from batchform.endpoints.hosting import STARTUP_TIMEOUT, instance_runtime
from batchform.engine.executors import (
    ExecutorSettings,
    InstanceContext,
    InstanceLost,
    InstancePool,
    PoolSpec,
    get_executor,
)
from batchform.engine.executors.base import LogLine, NoProgress
from batchform.engine.executors.resources import instance_resources
from batchform.engine.remote import ShippedModel, ship_model
from batchform.errors import BatchformError, RuntimeStartError
from batchform.runtimes.base import RuntimeContext
from batchform.runtimes.registry import ModelReference, RuntimeOptions, runtime_factory

#: How long a watchdog check of one instance may take before it is skipped for now.
CHECK_SECONDS = 30.0
#: Where a placed model process listens: every interface, so other machines reach it.
ANY_ADDRESS = "0.0.0.0"
_RUNTIME = "endpoint-runtime"
#: The log stream of lines about the endpoint as a whole.
ENDPOINT_STREAM = "endpoint"

Log = Callable[[str, str], None]  # (stream, line)


@dataclass(frozen=True)
class ServeModel:
    """A task run where an instance lives: start its model once, then keep it running;
    answers the URL the model is reached at from other machines (None: not serving)."""

    model: ModelReference
    shipped: ShippedModel | None
    instance_id: str
    stream: str

    def __call__(self, context: InstanceContext) -> Serving | None:
        with context.lock:
            runtime = context.state.get(_RUNTIME)
            if runtime is None:
                runtime = self._start(context)
            elif not runtime.ensure_running():
                return None
            url: str | None = runtime.url
            return Serving(url, context.node, socket.gethostname()) if url else None

    def _start(self, context: InstanceContext) -> Any:
        model = self.shipped.unpacked(context) if self.shipped else self.model
        runtime_context = RuntimeContext(
            instance_name=self.instance_id,
            workspace=os.path.join(context.workspace, "model"),
            # A handler's workers: the instance's CPUs, not its whole machine's.
            environment={"SAGEMAKER_MODEL_SERVER_WORKERS": str(context.cpus), **model.environment},
            log=lambda line: context.log(line, self.stream),
        )
        runtime = instance_runtime(model, runtime_context, bind=ANY_ADDRESS)
        runtime.start()
        context.state[_RUNTIME] = runtime
        context.cleanup.callback(runtime.stop)
        context.log(f"instance {self.instance_id} is serving on {context.node}", self.stream)
        return runtime


@dataclass(frozen=True)
class Serving:
    """Where an instance's model listens: a loopback URL on `machine`, at `node`."""

    url: str
    node: str
    machine: str

    def reachable(self) -> str:
        """The URL from here: loopback on the same machine (a model listening on
        127.0.0.1 only is reached too), the node's address from any other."""
        if self.machine == socket.gethostname():
            return self.url
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=f"{self.node}:{parts.port}"))


@dataclass
class PlacedRuntime:
    """What the proxy holds of one placed instance: its current URL, kept fresh."""

    pool: InstancePool
    index: int
    task: ServeModel
    log: Log
    url: str | None = None
    _lost: bool = field(default=False, repr=False)

    def start(self) -> None:
        try:
            self._serving(STARTUP_TIMEOUT + CHECK_SECONDS)
        except FutureTimeout as exc:
            raise RuntimeStartError(f"{self.task.instance_id} did not start in time") from exc

    def ensure_running(self) -> bool:
        """The watchdog's call: re-place a lost instance, pick up a restarted model."""
        try:
            if self._lost:
                self._place_again()
            else:
                self._serving(CHECK_SECONDS)
        except InstanceLost as exc:
            self.url, self._lost = None, True
            self.log(
                self.task.stream,
                f"instance {self.task.instance_id} is down ({exc}): placing it again",
            )
        except (FutureTimeout, BatchformError) as exc:
            self.url = None
            self.log(self.task.stream, f"instance {self.task.instance_id} is not serving: {exc}")
        return self.url is not None

    def _serving(self, timeout: float) -> None:
        serving: Serving | None = self.pool.submit(self.index, self.task).result(timeout)
        self.url = serving.reachable() if serving else None

    def _place_again(self) -> None:
        if not self.pool.replace(self.index):
            return  # no room yet: the next check tries again
        self._lost = False
        self.start()
        self.log(self.task.stream, f"instance {self.task.instance_id} was placed again")

    def stop(self) -> None:
        self.url = None  # the pool's close stops the model where it runs


@dataclass
class PlacedVariant:
    """One variant's instances as an executor's pool."""

    pool: InstancePool
    runtimes: list[PlacedRuntime]

    def close(self) -> None:
        with contextlib.suppress(BatchformError):
            self.pool.close()


def place_variant(
    endpoint: str,
    model: ModelReference,
    variant: str,
    instance_type: str | None,
    instance_ids: list[str],
    executor: ExecutorSettings,
    workspace: str,
    log: Log,
) -> PlacedVariant:
    """Start a variant's instances on the executor's machines (not yet serving)."""
    factory = runtime_factory(model, RuntimeOptions())  # refuses a model it cannot run
    streams = [f"{variant}/{instance_id}" for instance_id in instance_ids]
    spec = PoolSpec(
        job_name=f"{endpoint}-{variant}",
        count=len(instance_ids),
        resources=instance_resources(instance_type, model.environment),
        workspace=workspace,
        on_event=lambda _index, event: _log_event(log, event),
        progress=NoProgress(),  # invocations are counted at the proxy
    )
    pool = get_executor(executor).start(spec)
    shipped = ship_model(factory, pool)
    runtimes = [
        PlacedRuntime(pool, index, ServeModel(model, shipped, instance_id, stream), log)
        for index, (instance_id, stream) in enumerate(zip(instance_ids, streams, strict=True))
    ]
    return PlacedVariant(pool, runtimes)


def _log_event(log: Log, event: object) -> None:
    """Lines instances send home; the pool's own (where each actor landed) go to the
    endpoint's stream, as its other lines about all its instances do."""
    if isinstance(event, LogLine):
        log(ENDPOINT_STREAM if event.stream == "data-log" else event.stream, event.line)
