"""One endpoint's model processes: started, balanced, watched and replaced.

Each instance of a production variant is a model process speaking the serving contract
on its own loopback port: a container's `serve`, or `batchform serve-handler` for Python
handlers and built-in algorithms. Requests go to the variant's instance with the fewest
requests in flight; a process that dies is replaced by the watchdog, and requests that
meet a dead one are tried on another instance.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchform.endpoints.proxy import AsyncPool, ProxyAnswer
from batchform.engine.executors import ExecutorSettings
from batchform.errors import (
    BatchformError,
    ConfigurationError,
    InvocationError,
    ModelConnectionError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import Runtime, RuntimeContext
from batchform.runtimes.registry import ModelReference, local_folder, pool_size, runtime_kind

if TYPE_CHECKING:
    from batchform.endpoints.placed import PlacedRuntime, PlacedVariant

#: SageMaker's limit on how long a real-time model may take to answer.
INVOCATION_TIMEOUT = 60.0
#: What SageMaker waits for a model container to pass its first /ping.
STARTUP_TIMEOUT = 600.0
#: Model processes an endpoint replaces before it gives up on an instance.
MAX_RESTARTS = 100

Log = Callable[[str, str], None]  # (stream, line)


@dataclass(frozen=True)
class VariantSpec:
    name: str
    model: ModelReference
    instance_count: int
    weight: float = 1.0
    instance_type: str | None = None


@dataclass
class Instance:
    variant: str
    instance_id: str
    runtime: Runtime | PlacedRuntime
    in_flight: int = 0
    served: int = 0
    pool: AsyncPool | None = field(default=None, repr=False)
    sync_pool: tuple[str, Any] | None = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return getattr(self.runtime, "url", None)

    def sync_post(self, body: bytes, headers: dict[str, str]) -> ProxyAnswer:
        from batchform.runtimes.httpclient import ConnectionPool, HttpTimeout

        url = self.url
        if url is None:
            raise ModelConnectionError(f"instance {self.instance_id} is not serving")
        if self.sync_pool is None or self.sync_pool[0] != url:
            self.sync_pool = (url, ConnectionPool(url, 16))
        try:
            answer = self.sync_pool[1].request(
                "POST", "/invocations", body=body, headers=headers, timeout=INVOCATION_TIMEOUT
            )
        except HttpTimeout as exc:
            raise ModelTimeoutError(INVOCATION_TIMEOUT) from exc
        except OSError as exc:
            raise ModelConnectionError(f"instance {self.instance_id}: {exc}") from exc
        return ProxyAnswer(answer.status, answer.headers, answer.body)

    def async_pool(self) -> AsyncPool | None:
        """The keep-alive pool to the current process (a new one after a restart)."""
        url = self.url
        if url is None:
            return None
        if self.pool is None or (self.pool.host, self.pool.port) != _address(url):
            self.pool = AsyncPool(url)
        return self.pool


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    return host, int(port or 80)


class EndpointHost:
    """The running instances of one endpoint configuration."""

    def __init__(
        self,
        endpoint: str,
        variants: Sequence[VariantSpec],
        root: Path,
        log: Log,
        executor: ExecutorSettings | None = None,
    ):
        self.endpoint = endpoint
        self.variants = list(variants)
        self.root = root
        self.log = log
        self.executor = executor or ExecutorSettings()
        self.instances: list[Instance] = []
        self._lock = threading.Lock()
        # Instances an executor other than the local one placed, until they start.
        self._placed: dict[str, PlacedRuntime] = {}
        self._pools: list[PlacedVariant] = []

    def start(self) -> None:
        """Start every instance at once; any failure stops the others and is raised."""
        try:
            self._place()
        except BatchformError:
            self.stop()
            raise
        planned = [(variant, index) for variant in self.variants for index in _indices(variant)]
        with ThreadPoolExecutor(max_workers=max(1, len(planned))) as pool:
            futures = [pool.submit(self._start_instance, v, i) for v, i in planned]
            errors = [future.exception() for future in futures]
        self.instances = [future.result() for future in futures if future.exception() is None]
        failed = next((error for error in errors if error is not None), None)
        if failed is not None:
            self.stop()
            raise failed

    def stop(self) -> None:
        for instance in self.instances:
            instance.runtime.stop()
            if instance.pool is not None:
                instance.pool.close()
        for placed in self._pools:
            placed.close()

    def _place(self) -> None:
        """With a cluster executor, put each variant's instances on its machines."""
        if self.executor.name == "local":
            return
        from batchform.endpoints.placed import place_variant

        for variant in self.variants:
            if runtime_kind(variant.model) == "http":
                continue  # a model server already running somewhere: nothing to place
            ids = [_instance_id(self.endpoint, variant, i) for i in _indices(variant)]
            placed = place_variant(
                self.endpoint,
                variant.model,
                variant.name,
                variant.instance_type,
                ids,
                self.executor,
                str(self.root / variant.name),
                self.log,
            )
            self._pools.append(placed)
            self._placed.update(zip(ids, placed.runtimes, strict=True))

    def watch(self) -> None:
        """Replace model processes that have exited (called every second or so)."""
        for instance in self.instances:
            ensure = getattr(instance.runtime, "ensure_running", None)
            if ensure is not None:
                ensure()

    def choose(
        self, target_variant: str | None = None, exclude: Sequence[Instance] = ()
    ) -> Instance:
        """The live instance with the fewest requests in flight, in a variant drawn by
        weight (or the one asked for)."""
        variant = self._variant(target_variant)
        with self._lock:
            candidates = [
                instance
                for instance in self.instances
                if instance.variant == variant and instance not in exclude and instance.url
            ]
            if not candidates:
                raise ModelConnectionError(f"no instance of variant {variant} is serving")
            # Fewest in flight; among equals the one used least, so a quiet endpoint's
            # requests still take turns.
            chosen = min(candidates, key=lambda instance: (instance.in_flight, instance.served))
            chosen.in_flight += 1
            chosen.served += 1
            return chosen

    def describe_instances(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "variant": instance.variant,
                    "instance_id": instance.instance_id,
                    "serving": instance.url is not None,
                    "in_flight": instance.in_flight,
                    "served": instance.served,
                }
                for instance in self.instances
            ]

    def done(self, instance: Instance) -> None:
        with self._lock:
            instance.in_flight -= 1

    def invoke(
        self, body: bytes, headers: dict[str, str], target_variant: str | None
    ) -> tuple[Instance, ProxyAnswer]:
        """Synchronously, for the embedded service: on another instance if one is down."""
        tried: list[Instance] = []
        while True:
            instance = self.choose(target_variant, tried)
            try:
                return instance, instance.sync_post(body, headers)
            except (ModelConnectionError, ModelTimeoutError):
                tried.append(instance)
                if len(tried) >= len(self.instances):
                    raise
            finally:
                self.done(instance)

    def _variant(self, target: str | None) -> str:
        names = [variant.name for variant in self.variants]
        if target is not None:
            if target not in names:
                raise ConfigurationError(
                    f"Endpoint {self.endpoint} has no production variant named {target}"
                )
            return target
        if len(self.variants) == 1:
            return names[0]
        weights = [variant.weight for variant in self.variants]
        return random.choices(names, weights=weights if sum(weights) > 0 else None)[0]

    def _start_instance(self, variant: VariantSpec, index: int) -> Instance:
        instance_id = _instance_id(self.endpoint, variant, index)
        stream = f"{variant.name}/{instance_id}"
        runtime = self._placed.pop(instance_id, None) or self._local_runtime(
            variant, index, instance_id, stream
        )
        runtime.start()
        self.log(stream, f"instance {instance_id} of variant {variant.name} is serving")
        return Instance(variant.name, instance_id, runtime)

    def _local_runtime(
        self, variant: VariantSpec, index: int, instance_id: str, stream: str
    ) -> Runtime:
        workspace = self.root / variant.name / str(index)
        workspace.mkdir(parents=True, exist_ok=True)
        context = RuntimeContext(
            instance_name=instance_id,
            workspace=str(workspace),
            environment={**variant.model.environment},
            log=lambda line: self.log(stream, line),
        )
        return instance_runtime(variant.model, context)


def _indices(variant: VariantSpec) -> range:
    return range(1, variant.instance_count + 1)


def _instance_id(endpoint: str, variant: VariantSpec, index: int) -> str:
    return f"i-{endpoint}-{variant.name}-{index}".lower()


def instance_runtime(
    model: ModelReference, context: RuntimeContext, bind: str | None = None
) -> Runtime:
    """One instance's model process (not started), whatever kind of model it is.

    `bind` is the address a handler's server listens on (loopback unless given); a
    container's `serve` chooses its own.
    """
    from batchform.runtimes.http import HttpRuntime
    from batchform.runtimes.process import ProcessRuntime, ServeSettings, runtime_for_container

    kind = runtime_kind(model)
    connections = pool_size(1)
    settings = ServeSettings(
        concurrency=connections, startup_timeout=STARTUP_TIMEOUT, max_restarts=MAX_RESTARTS
    )
    if kind == "http":
        assert model.url is not None
        return HttpRuntime(model.url, concurrency=connections)
    if kind == "container":
        assert model.image is not None
        runtime = runtime_for_container(
            model.image,
            model_data_url=model.model_data_url,
            context=context,
            concurrency=connections,
            max_payload_in_mb=6,
            batch_strategy="SingleRecord",
            startup_timeout=STARTUP_TIMEOUT,
        )
        runtime.settings = settings
        return runtime
    code_dir, environment = _handler_code(model, kind)
    command = [sys.executable, "-m", "batchform.cli", "serve-handler", code_dir]
    if bind is not None:
        command += ["--host", bind]
    context = RuntimeContext(
        instance_name=context.instance_name,
        workspace=context.workspace,
        environment={**context.environment, **environment},
        log=context.log,
    )
    return ProcessRuntime(
        command, context=context, settings=settings, model_data_url=model.model_data_url
    )


def _handler_code(model: ModelReference, kind: str) -> tuple[str, dict[str, str]]:
    """The folder `serve-handler` loads and the variables that pick its program."""
    if kind == "builtin":
        from batchform.algorithms import SERVING_PROGRAM

        if not model.model_data_url:
            raise ConfigurationError(
                f"model image {model.image} is a built-in algorithm: it needs ModelDataUrl"
            )
        return str(SERVING_PROGRAM.parent), {"SAGEMAKER_PROGRAM": SERVING_PROGRAM.name}
    if model.image is None:
        raise ConfigurationError(
            "an endpoint needs the handler's code folder as the model's Image "
            "(a folder with inference.py or code/inference.py)"
        )
    folder = local_folder(model.image)
    code = os.path.join(folder, "code")
    return (code if os.path.isdir(code) else folder), {}


__all__ = [
    "EndpointHost",
    "Instance",
    "InvocationError",
    "RuntimeStartError",
    "VariantSpec",
    "instance_runtime",
]
