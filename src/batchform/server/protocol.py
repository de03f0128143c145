"""AWS JSON 1.1: one POST per operation, named by X-Amz-Target; errors botocore can read."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from batchform.errors import BatchformError, ServiceError, SpecValidationError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ApiError(Exception):
    """An error answer: botocore reads `__type` as the code and `message` as the text."""

    code: str
    message: str
    status: int = 400


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


def split_target(target: str | None) -> tuple[str, str]:
    """'SageMaker.CreateModel' → ('SageMaker', 'CreateModel')."""
    service, _, operation = (target or "").partition(".")
    if not service or not operation:
        raise ApiError("UnknownOperationException", "Missing or malformed X-Amz-Target header")
    return service, operation


def decode_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError("SerializationException", f"The request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError("SerializationException", "The request body must be a JSON object")
    return body


def call(handler: Handler, body: dict[str, Any]) -> dict[str, Any]:
    """Run one operation, mapping batchform's errors to SageMaker's codes."""
    try:
        return handler(body)
    except SpecValidationError as exc:
        raise ApiError("ValidationException", str(exc)) from exc
    except ServiceError as exc:
        raise ApiError(exc.code, str(exc)) from exc
    except BatchformError as exc:
        logger.warning("operation failed: %s", exc)
        raise ApiError("InternalFailure", str(exc), 500) from exc


def success(body: dict[str, Any]) -> Answer:
    return Answer(200, orjson.dumps(body), _headers())


def failure(error: ApiError) -> Answer:
    payload = {"__type": error.code, "message": error.message}
    return Answer(error.status, orjson.dumps(payload), _headers())


# Request ids unique across restarts without the cost of a uuid4 per answer.
_BOOT = uuid.uuid4().hex[:12]
_SEQUENCE = itertools.count(1)


def request_id() -> str:
    return f"{_BOOT}-{next(_SEQUENCE):012d}"


def _headers() -> dict[str, str]:
    return {"content-type": CONTENT_TYPE, "x-amzn-requestid": request_id()}
