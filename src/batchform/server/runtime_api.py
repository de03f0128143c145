"""sagemaker-runtime's InvokeEndpoint: `POST /endpoints/<name>/invocations`.

The request body goes to one of the endpoint's model processes from the event loop;
the answer comes back with the model's Content-Type and custom attributes. Errors are
the REST-JSON shapes botocore turns into `ValidationError`, `ModelError` (with the
model's status and message) and `ModelNotReadyException`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from batchform.errors import BatchformError, EndpointModelError, ServiceError
from batchform.jobs.endpoints import Endpoints, invocation_headers
from batchform.server.protocol import ApiError

logger = logging.getLogger(__name__)

#: InvokeEndpoint's limit on request and response bodies.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
PATH_PREFIX = "/endpoints/"
PATH_SUFFIX = "/invocations"
_STATUS = {"ValidationError": 400, "ModelError": 424, "ModelNotReadyException": 429}

Authenticate = Callable[[Scope, list[tuple[str, str]], bytes], None]


def endpoint_name(path: str) -> str | None:
    """The endpoint an invocation path names, or None for any other path."""
    if path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX):
        name = path[len(PATH_PREFIX) : -len(PATH_SUFFIX)]
        return name if name and "/" not in name else None
    return None


class RuntimeApi:
    def __init__(self, endpoints: Endpoints, authenticate: Authenticate) -> None:
        self.endpoints = endpoints
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        wanted = {key.lower(): value for key, value in headers}
        try:
            body, size = await _body(receive)
            if size > MAX_PAYLOAD_BYTES:
                raise _Refusal("ValidationError", _too_large("Request", size))
            try:
                self.authenticate(scope, headers, body)
            except ApiError as error:
                raise _Refusal(error.code, error.message, status=error.status) from error
            status, answer_headers, answer = await self._invoke(name, body, wanted)
        except _Refusal as refusal:
            status, answer_headers, answer = refusal.answer()
        await _send(send, status, answer_headers, answer)

    async def _invoke(
        self, name: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            self.endpoints.check_invocable(name)
            answer = await self.endpoints.manager.invoke_async(
                name,
                body,
                invocation_headers(
                    headers.get("content-type"),
                    headers.get("accept"),
                    headers.get("x-amzn-sagemaker-custom-attributes"),
                ),
                headers.get("x-amzn-sagemaker-target-variant"),
            )
        except EndpointModelError as exc:
            raise _Refusal("ModelError", str(exc), _model_fields(exc)) from exc
        except ServiceError as exc:
            raise _Refusal(exc.code, str(exc)) from exc
        except BatchformError as exc:
            logger.warning("invocation of %s failed: %s", name, exc)
            raise _Refusal("InternalFailure", str(exc), status=500) from exc
        if len(answer.body) > MAX_PAYLOAD_BYTES:
            raise _Refusal("ModelError", _too_large("Response", len(answer.body)), status=424)
        out = {
            "content-type": answer.content_type,
            "x-amzn-invoked-production-variant": answer.invoked_variant,
        }
        if answer.custom_attributes:
            out["x-amzn-sagemaker-custom-attributes"] = answer.custom_attributes
        return 200, out, answer.body


class _Refusal(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        self.code, self.message, self.fields = code, message, fields or {}
        self.status = status or _STATUS.get(code, 400 if code.endswith("Exception") else 500)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        payload = {"__type": self.code, "message": self.message, **self.fields}
        headers = {"content-type": "application/json", "x-amzn-errortype": self.code}
        return self.status, headers, orjson.dumps(payload)


def _model_fields(error: EndpointModelError) -> dict[str, Any]:
    return {
        "OriginalStatusCode": error.original_status,
        "OriginalMessage": error.original_message,
        "LogStreamArn": error.log_stream_arn,
    }


def _too_large(what: str, size: int) -> str:
    return (
        f"{what} payload size {size} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes "
        "for InvokeEndpoint; use batch transform for larger payloads"
    )


async def _body(receive: Receive) -> tuple[bytes, int]:
    """The body (kept only up to just past the limit) and its full size."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if size <= MAX_PAYLOAD_BYTES:
            chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), size


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
