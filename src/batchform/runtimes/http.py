"""A model reached over HTTP by SageMaker's serving contract (DESIGN §3.1).

`HttpRuntime` talks to a server that is already running (`--model-url`); the process
runtime starts a server and then calls it through one of these. Requests go through
batchform's own small HTTP/1.1 client (httpclient.py), which costs a quarter of
urllib3's CPU per request. Errors are translated here, at the boundary, so the engine
only ever sees batchform's exception tree.
"""

from __future__ import annotations

import json
from typing import Any

from batchform.errors import (
    ConfigurationError,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RuntimeStartError,
)
from batchform.runtimes.base import (
    ExecutionParameters,
    InvocationRequest,
    InvocationResponse,
    Runtime,
)
from batchform.runtimes.httpclient import ConnectionPool, HttpTimeout

# The body of an error response goes into a job's FailureReason; a page of HTML from a
# crashed framework would drown the useful part, so only the start is kept.
ERROR_EXCERPT_BYTES = 1024
PING_TIMEOUT_SECONDS = 2.0
EXECUTION_PARAMETERS_TIMEOUT_SECONDS = 10.0

_STRATEGY_NAMES = {"MULTIRECORD": "MultiRecord", "SINGLERECORD": "SingleRecord"}


def normalise_batch_strategy(value: object) -> str | None:
    """`MULTI_RECORD`, `MultiRecord` … → `MultiRecord`; anything else → None."""
    if not isinstance(value, str):
        return None
    return _STRATEGY_NAMES.get(value.replace("_", "").upper())


def parse_execution_parameters(document: object) -> ExecutionParameters:
    """Read what a model said at /execution-parameters, ignoring what makes no sense.

    A model that answers nonsense for one field should not lose the others, so each is
    judged on its own and unusable values become None (the request or defaults decide).
    """
    if not isinstance(document, dict):
        return ExecutionParameters()
    return ExecutionParameters(
        max_concurrent_transforms=_positive_int(document.get("MaxConcurrentTransforms")),
        batch_strategy=normalise_batch_strategy(document.get("BatchStrategy")),
        max_payload_in_mb=_non_negative_int(document.get("MaxPayloadInMB")),
    )


def _positive_int(value: object) -> int | None:
    number = _non_negative_int(value)
    return number if number else None


def _non_negative_int(value: object) -> int | None:
    # bool is an int in Python; `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _excerpt(body: bytes) -> str:
    return body[:ERROR_EXCERPT_BYTES].decode("utf-8", errors="replace")


class HttpRuntime(Runtime):
    """A model server at a base URL, called through one keep-alive connection pool.

    The pool holds up to `concurrency` keep-alive connections and blocks callers beyond
    that (the registry sizes it generously: the engine's concurrency may come from
    /execution-parameters, after the pool exists). Nothing is retried here: the engine
    retries per InvocationsMaxRetries, and a retry hidden below it would multiply that
    budget.
    """

    def __init__(self, url: str, concurrency: int = 1) -> None:
        self.url = url.rstrip("/")
        try:
            self._pool = ConnectionPool(self.url, maxsize=max(1, concurrency))
        except ValueError as exc:
            raise ConfigurationError(f"model URL {url}: {exc}") from exc

    def start(self) -> None:
        """Check that the server is there; it was started by someone else."""
        if not self.ping():
            raise RuntimeStartError(f"model at {self.url} did not answer GET /ping with 200")

    def ping(self, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
        try:
            response = self._pool.request("GET", "/ping", timeout=timeout)
        except OSError:
            return False
        return response.status == 200

    def execution_parameters(self) -> ExecutionParameters:
        # The endpoint is optional in the contract: silence, errors and garbage all mean
        # "the model has no opinion".
        try:
            response = self._pool.request(
                "GET", "/execution-parameters", timeout=EXECUTION_PARAMETERS_TIMEOUT_SECONDS
            )
            if response.status != 200:
                return ExecutionParameters()
            document: Any = json.loads(response.body)
        except (OSError, ValueError):
            return ExecutionParameters()
        return parse_execution_parameters(document)

    def invoke(self, request: InvocationRequest) -> InvocationResponse:
        try:
            response = self._pool.request(
                "POST",
                "/invocations",
                body=request.payload,
                headers=_headers(request),
                timeout=request.timeout_seconds,
            )
        except HttpTimeout as exc:
            raise ModelTimeoutError(request.timeout_seconds) from exc
        except OSError as exc:
            raise ModelConnectionError(f"model at {self.url} could not be reached: {exc}") from exc
        if not 200 <= response.status < 300:
            raise ModelError(response.status, _excerpt(response.body))
        return InvocationResponse(response.body, response.headers.get("content-type"))

    def stop(self) -> None:
        self._pool.close()


def _headers(request: InvocationRequest) -> dict[str, str]:
    headers = {}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    if request.accept is not None:
        headers["Accept"] = request.accept
    return headers
