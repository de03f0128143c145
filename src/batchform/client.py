"""A small client of a batchform server's API, for the CLI (no boto3 needed).

Speaks AWS JSON 1.1 like boto3 does, and signs requests (SigV4) when given keys, so it
works against `batchform server --auth` too.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

from batchform.errors import BatchformError, ServiceError

ENDPOINT_ENV = "BATCHFORM_ENDPOINT_URL"


class ApiCallError(ServiceError):
    """The server refused a call; `code` is the error code it answered."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class ApiClient:
    endpoint_url: str
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, endpoint_url: str) -> ApiClient:
        return cls(
            endpoint_url.rstrip("/"),
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )

    def sagemaker(self, operation: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("sagemaker", f"SageMaker.{operation}", body or {})

    def logs(self, operation: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("logs", f"Logs_20140328.{operation}", body or {})

    def _call(self, service: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = orjson.dumps(body)
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        if self.access_key and self.secret_key:
            from batchform.server.signing import sign

            headers = sign(
                "POST",
                self.endpoint_url + "/",
                headers,
                payload,
                self.access_key,
                self.secret_key,
                self.region,
                service,
            )
        request = urllib.request.Request(
            self.endpoint_url + "/", data=payload, headers=headers, method="POST"
        )
        return _send(request, self.timeout)


def _send(request: urllib.request.Request, timeout: float) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = orjson.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        raise _api_error(exc.read()) from None
    except OSError as exc:
        raise BatchformError(
            f"cannot reach the batchform server at {request.full_url}: {exc}"
        ) from exc


def _api_error(raw: bytes) -> ApiCallError:
    try:
        error = orjson.loads(raw)
        code = str(error.get("__type", "Error")).rsplit("#", 1)[-1]
        return ApiCallError(code, str(error.get("message") or error.get("Message") or ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ApiCallError("Error", raw.decode(errors="replace")[:500])
