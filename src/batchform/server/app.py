"""The batchform server: SageMaker's API, CloudWatch Logs' reads, health and metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from batchform.errors import ResourceNotFound
from batchform.server import protocol
from batchform.server.protocol import ApiError, Handler
from batchform.service import Service

logger = logging.getLogger(__name__)

TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


class Api:
    """Dispatches `X-Amz-Target` to the service (SageMaker) or the log readers (Logs)."""

    def __init__(self, service: Service, access_keys: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.access_keys = access_keys
        self.sagemaker = service.operations()

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            self._authenticate(request, raw)
            handler = self._handler(request.headers.get("x-amz-target"))
            body = protocol.decode_body(raw)
            answer = protocol.success(await run_in_threadpool(protocol.call, handler, body))
        except ApiError as error:
            answer = protocol.failure(error)
        return Response(answer.body, answer.status, dict(answer.headers))

    def _handler(self, target: str | None) -> Handler:
        service, operation = protocol.split_target(target)
        if service == "SageMaker" and operation in self.sagemaker:
            return self.sagemaker[operation]
        if service == "Logs_20140328":
            return self._logs_handler(operation)
        raise ApiError("UnknownOperationException", f"Unknown operation {target}")

    def _logs_handler(self, operation: str) -> Handler:
        from batchform.server.cloudwatch import LOG_OPERATIONS, LogsError

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
        if group != TRANSFORM_LOG_GROUP:
            return None
        try:
            return self.service.job_log(job)
        except ResourceNotFound:
            return None

    def _authenticate(self, request: Request, raw: bytes) -> None:
        if self.access_keys is None:
            return
        from batchform.server.sigv4 import AuthError, SignedRequest, verify

        # Signatures cover the path, query and headers as sent, before any decoding.
        signed = SignedRequest.from_pairs(
            request.method,
            request.scope["raw_path"].decode("latin-1"),
            request.scope["query_string"].decode("latin-1"),
            [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in request.headers.raw
            ],
            raw,
        )
        try:
            verify(signed, self.access_keys)
        except AuthError as exc:
            raise ApiError(exc.code, exc.message, exc.status) from exc


def create_app(service: Service, access_keys: Mapping[str, str] | None = None) -> Starlette:
    """The ASGI app; starting it starts the job runner, stopping it hands jobs back."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    routes = [
        Route("/", Api(service, access_keys).handle, methods=["POST"]),
        Route("/healthz", _healthz(service), methods=["GET"]),
        Route("/metrics", _metrics(service), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


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
