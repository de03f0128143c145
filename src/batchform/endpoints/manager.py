"""Every endpoint this service hosts: deployed, updated, deleted in the background, and
invoked, synchronously (embedded) or from the server's event loop.

Endpoint rows in the store say what should be serving; this keeps the processes that do.
On start it brings back the endpoints that were serving before (a server restart), and
a watchdog replaces model processes that die.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchform import config
from batchform.endpoints.hosting import INVOCATION_TIMEOUT, EndpointHost, Instance, VariantSpec
from batchform.endpoints.proxy import ProxyAnswer
from batchform.endpoints.stats import InvocationStats
from batchform.engine.executors import ExecutorSettings
from batchform.errors import (
    BatchformError,
    ConfigurationError,
    EndpointModelError,
    InvalidRequest,
    ModelConnectionError,
    ModelNotReady,
    ModelTimeoutError,
)
from batchform.jobs.logs import JobLog

WATCH_SECONDS = 1.0
#: How long an invocation waits for an endpoint that is (re)starting its instances.
READY_WAIT_SECONDS = 30.0
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"

StatusCallback = Callable[[str, str, str | None], None]  # endpoint, status, failure reason


@dataclass(frozen=True)
class EndpointAnswer:
    body: bytes
    content_type: str
    custom_attributes: str | None
    invoked_variant: str


def endpoint_dir(name: str) -> Path:
    return config.home() / "endpoints" / name


def log_path(name: str) -> Path:
    return endpoint_dir(name) / "log"


class EndpointManager:
    def __init__(self, on_status: StatusCallback, executor: ExecutorSettings | None = None) -> None:
        self.on_status = on_status
        #: Where instances run: model processes of this machine, or actors of a cluster.
        self.executor = executor or ExecutorSettings()
        self._hosts: dict[str, EndpointHost] = {}
        self._logs: dict[str, JobLog] = {}
        self._starting: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.stats = InvocationStats()

    def start(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="endpoint-watchdog", daemon=True)
        self._watchdog.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.stop()
        for log in list(self._logs.values()):
            log.close()

    # Deploying

    def deploy(self, name: str, variants: list[VariantSpec], success: str = "InService") -> None:
        """Start `variants` for endpoint `name` in the background; on success they replace
        whatever served it before, which is then stopped."""
        ready = self._starting.setdefault(name, threading.Event())
        thread = threading.Thread(
            target=self._deploy, args=(name, variants, success, ready), daemon=True
        )
        thread.start()

    def _deploy(
        self, name: str, variants: list[VariantSpec], success: str, ready: threading.Event
    ) -> None:
        log = self._log(name)
        root = endpoint_dir(name) / f"instances-{int(time.time() * 1000)}"
        host = EndpointHost(name, variants, root, log.write, self.executor)
        try:
            host.start()
        except BatchformError as exc:
            log.write("endpoint", f"endpoint {name} failed to start: {exc}")
            shutil.rmtree(root, ignore_errors=True)
            self._finish_failed(name, str(exc), ready)
            return
        with self._lock:
            old = self._hosts.get(name)
            self._hosts[name] = host
        ready.set()
        self._starting.pop(name, None)
        if old is not None:
            _retire(old)
        self.on_status(name, success, None)

    def _finish_failed(self, name: str, reason: str, ready: threading.Event) -> None:
        ready.set()
        self._starting.pop(name, None)
        with self._lock:
            serving = name in self._hosts
        # A failed update leaves the old configuration serving, as SageMaker rolls back.
        self.on_status(name, "InService" if serving else "Failed", reason)

    def _log(self, name: str) -> JobLog:
        with self._lock:
            log = self._logs.get(name)
            if log is None:
                log = self._logs[name] = JobLog(log_path(name))
            return log

    def undeploy(self, name: str) -> None:
        with self._lock:
            host = self._hosts.pop(name, None)
            log = self._logs.pop(name, None)
        if host is not None:
            _retire(host)
        if log is not None:
            log.close()
        self.stats.forget(name)

    def serving(self, name: str) -> bool:
        with self._lock:
            return name in self._hosts

    def instances(self, name: str) -> list[dict[str, Any]]:
        """The endpoint's model processes as they serve now (none while it starts)."""
        with self._lock:
            host = self._hosts.get(name)
        return [] if host is None else host.describe_instances()

    # Invoking

    def invoke(
        self,
        name: str,
        body: bytes,
        headers: dict[str, str],
        target_variant: str | None,
    ) -> EndpointAnswer:
        host = self._host(name)
        started = time.monotonic()
        try:
            instance, answer = host.invoke(body, headers, target_variant)
            self.stats.record(name, time.monotonic() - started, 200 <= answer.status < 300)
        except ConfigurationError as exc:
            raise InvalidRequest(str(exc)) from exc
        except (ModelConnectionError, ModelTimeoutError) as exc:
            raise ModelNotReady(f"Endpoint {name}: {exc}") from exc
        return _answer(name, instance, answer)

    async def invoke_async(
        self,
        name: str,
        body: bytes,
        headers: dict[str, str],
        target_variant: str | None,
    ) -> EndpointAnswer:
        host = self._host(name) if self.serving(name) else await self._wait_ready(name)
        tried: list[Instance] = []
        while True:
            try:
                instance = host.choose(target_variant, tried)
            except ConfigurationError as exc:
                raise InvalidRequest(str(exc)) from exc
            except ModelConnectionError as exc:
                raise ModelNotReady(f"Endpoint {name}: {exc}") from exc
            try:
                pool = instance.async_pool()
                if pool is None:
                    raise ModelConnectionError(f"instance {instance.instance_id} is restarting")
                started = time.monotonic()
                answer = await pool.post("/invocations", body, headers, INVOCATION_TIMEOUT)
                self.stats.record(name, time.monotonic() - started, 200 <= answer.status < 300)
                return _answer(name, instance, answer)
            except (ModelConnectionError, ModelTimeoutError) as exc:
                tried.append(instance)
                if len(tried) >= len(host.instances):
                    raise ModelNotReady(f"Endpoint {name}: {exc}") from exc
            finally:
                host.done(instance)

    def _host(self, name: str) -> EndpointHost:
        with self._lock:
            host = self._hosts.get(name)
        if host is None:
            ready = self._starting.get(name)
            if ready is not None and ready.wait(READY_WAIT_SECONDS):
                return self._host(name)
            raise ModelNotReady(f"Endpoint {name} is not ready to serve yet")
        return host

    async def _wait_ready(self, name: str) -> EndpointHost:
        ready = self._starting.get(name)
        if ready is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(ready.wait), READY_WAIT_SECONDS)
        return self._host(name)

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_SECONDS):
            with self._lock:
                hosts = list(self._hosts.values())
            for host in hosts:
                host.watch()


def _answer(name: str, instance: Instance, answer: ProxyAnswer) -> EndpointAnswer:
    if not 200 <= answer.status < 300:
        message = answer.body[:1024].decode("utf-8", errors="replace")
        raise EndpointModelError(answer.status, message, log_stream_arn(name, instance))
    return EndpointAnswer(
        body=answer.body,
        content_type=answer.headers.get("content-type", "application/octet-stream"),
        custom_attributes=answer.headers.get(CUSTOM_ATTRIBUTES.lower()),
        invoked_variant=instance.variant,
    )


def log_stream_arn(name: str, instance: Instance) -> str:
    from batchform.jobs.resources import DEFAULT_ACCOUNT, DEFAULT_REGION

    group = f"/aws/sagemaker/Endpoints/{name}"
    return (
        f"arn:aws:logs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:log-group:{group}"
        f":log-stream:{instance.variant}/{instance.instance_id}"
    )


def _retire(host: EndpointHost) -> None:
    host.stop()
    shutil.rmtree(host.root, ignore_errors=True)
