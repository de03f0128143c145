"""The batchform server: SageMaker's API, CloudWatch Logs' reads, health and metrics."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from batchform.console import console_routes
from batchform.errors import ServiceError
from batchform.jobs.logs import TRAINING_LOG_GROUP, TRANSFORM_LOG_GROUP
from batchform.server import protocol, sts
from batchform.server.cloudwatch import LOG_OPERATIONS
from batchform.server.metrics import API_LATENCY
from batchform.server.protocol import ApiError, Handler
from batchform.server.runtime_api import RuntimeApi, endpoint_name
from batchform.service import Service

logger = logging.getLogger(__name__)

_READS = frozenset(
    {
        "DescribeModel",
        "ListModels",
        "DescribeTransformJob",
        "ListTransformJobs",
        "DescribeTrainingJob",
        "ListTrainingJobs",
        "DescribeEndpointConfig",
        "ListEndpointConfigs",
        "DescribeEndpoint",
        "ListEndpoints",
    }
)


class Api:
    """Dispatches `X-Amz-Target` to the service (SageMaker) or the log readers (Logs).

    A bare ASGI app rather than a Starlette endpoint: the API is the hot path of a
    server polled by many clients, and every layer costs there.
    """

    def __init__(self, service: Service, access_keys: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.access_keys = access_keys
        self.sagemaker = service.operations()
        # SQLite reads in WAL mode never wait for a writer: answering them on the event
        # loop saves a thread hand-off per call. Writes, log reads and other databases
        # (a network away) go to worker threads.
        self.inline = _READS if service.store.url.startswith("sqlite") else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        raw = await _body(receive)
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        target = next((value for name, value in headers if name.lower() == "x-amz-target"), None)
        try:
            self._authenticate(scope, headers, raw)
            if target is None and sts.is_query_request(_header(headers, "content-type")):
                answer = sts.answer(raw, protocol.request_id(), _access_key(headers))
            else:
                answer = protocol.success(await self._run(target, protocol.decode_body(raw)))
        except ApiError as error:
            answer = protocol.failure(error)
        await _send(send, answer)
        API_LATENCY.labels(self._operation_label(target)).observe(time.perf_counter() - started)

    async def _run(self, target: str | None, body: dict[str, Any]) -> dict[str, Any]:
        handler = self._handler(target)
        if protocol.split_target(target)[1] in self.inline:
            return protocol.call(handler, body)
        answer: dict[str, Any] = await run_in_threadpool(protocol.call, handler, body)
        return answer

    def _operation_label(self, target: str | None) -> str:
        operation = (target or "").rpartition(".")[2]
        known = operation in self.sagemaker or operation in LOG_OPERATIONS
        return operation if known else "other"

    def _handler(self, target: str | None) -> Handler:
        service, operation = protocol.split_target(target)
        if service == "SageMaker" and operation in self.sagemaker:
            return self.sagemaker[operation]
        if service == "Logs_20140328":
            return self._logs_handler(operation)
        raise ApiError("UnknownOperationException", f"Unknown operation {target}")

    def _logs_handler(self, operation: str) -> Handler:
        from batchform.server.cloudwatch import LogsError

        found = LOG_OPERATIONS.get(operation)
        if found is None:
            raise ApiError("UnknownOperationException", f"Unknown operation {operation}")

        def handle(body: dict[str, Any]) -> dict[str, Any]:
            try:
                return found(body, self._log_file)
            except LogsError as exc:
                raise ApiError(exc.code, exc.message, exc.status) from exc

        return handle

    def _log_file(self, group: str, job: str) -> Path | None:
        try:
            if group == TRANSFORM_LOG_GROUP:
                return self.service.job_log(job)
            if group == TRAINING_LOG_GROUP:
                path: Path = self.service.training.log_path(job)
                return path
        except ServiceError:
            return None
        return None

    def authenticate(self, scope: Scope, headers: list[tuple[str, str]], raw: bytes) -> None:
        """Refuse (ApiError 403) a request not signed by a known key, when keys are set."""
        self._authenticate(scope, headers, raw)

    def _authenticate(self, scope: Scope, headers: list[tuple[str, str]], raw: bytes) -> None:
        if self.access_keys is None:
            return
        from batchform.server.sigv4 import AuthError, SignedRequest, verify

        # Signatures cover the path, query and headers as sent, before any decoding.
        signed = SignedRequest.from_pairs(
            scope["method"],
            scope["raw_path"].decode("latin-1"),
            scope["query_string"].decode("latin-1"),
            headers,
            raw,
        )
        try:
            verify(signed, self.access_keys)
        except AuthError as exc:
            raise ApiError(exc.code, exc.message, exc.status) from exc


def _header(headers: list[tuple[str, str]], wanted: str) -> str | None:
    return next((value for name, value in headers if name.lower() == wanted), None)


def _access_key(headers: list[tuple[str, str]]) -> str | None:
    """The key id in a SigV4 Authorization header (`Credential=<key>/<scope>`)."""
    authorization = _header(headers, "authorization") or ""
    _, found, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if found else None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, answer: protocol.Answer) -> None:
    headers = [(name.encode(), value.encode()) for name, value in answer.headers.items()]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def create_app(service: Service, access_keys: Mapping[str, str] | None = None) -> ASGIApp:
    """The ASGI app; starting it starts the job runner, stopping it hands jobs back.

    API calls (POST /) go straight to `Api`; Starlette routes the rest (health, metrics,
    the console) and runs the lifespan.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    api = Api(service, access_keys)
    runtime = RuntimeApi(service.endpoints, api.authenticate)
    routes = [
        Route("/", api, methods=["POST"]),
        Route("/healthz", _healthz(service), methods=["GET"]),
        Route("/metrics", _metrics(service), methods=["GET"]),
        *console_routes(service, access_keys),
    ]
    rest = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"] == "/":
                await api(scope, receive, send)
                return
            endpoint = endpoint_name(scope["path"])
            if endpoint is not None:
                await runtime(scope, receive, send, endpoint)
                return
        await rest(scope, receive, send)

    return app


def _healthz(service: Service) -> Any:
    async def healthz(_request: Request) -> Response:
        try:
            await run_in_threadpool(service.store.schema_version)
        except Exception as exc:
            return PlainTextResponse(f"database unavailable: {exc}\n", status_code=503)
        return PlainTextResponse("ok\n")

    return healthz


def _metrics(service: Service) -> Any:
    async def metrics(_request: Request) -> Response:
        from batchform.server.metrics import CONTENT_TYPE, render

        text = await run_in_threadpool(render, service)
        return Response(text, media_type=CONTENT_TYPE)

    return metrics
