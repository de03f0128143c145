"""The remote backend: a `batchform server`, over its SageMaker, runtime and Logs APIs.

Operations go through `batchform.client.ApiClient` (AWS JSON 1.1, SigV4-signed when keys
are set); invocations are `POST /endpoints/<name>/invocations` as sagemaker-runtime's
InvokeEndpoint sends them; logs are read with CloudWatch Logs' DescribeLogStreams and
GetLogEvents, following each stream with its forward token as the sagemaker SDK does.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from batchform.client import ApiClient
from batchform.errors import BatchformError
from batchform.sdk.backend import Invocation, InvokeRequest, JobKind, LogLine
from batchform.sdk.exceptions import ApiCallError, ModelError

#: Longer than SageMaker's 60 s limit on a model's answer, so the server's error arrives.
INVOKE_TIMEOUT_SECONDS = 120.0
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"


@dataclasses.dataclass
class RemoteBackend:
    client: ApiClient

    @classmethod
    def connect(
        cls,
        endpoint_url: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
    ) -> RemoteBackend:
        """A backend for the server at `endpoint_url`; keys and region default to the
        AWS_* environment variables, as boto3's do."""
        client = ApiClient.from_environment(endpoint_url)
        return cls(
            dataclasses.replace(
                client,
                access_key=access_key or client.access_key,
                secret_key=secret_key or client.secret_key,
                region=region or client.region,
            )
        )

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.sagemaker(operation, body)

    def invoke_endpoint(self, request: InvokeRequest) -> Invocation:
        name = urllib.parse.quote(request.endpoint_name, safe="")
        url = f"{self.client.endpoint_url}/endpoints/{name}/invocations"
        headers = _invocation_headers(request)
        if self.client.access_key and self.client.secret_key:
            from batchform.server.signing import sign

            headers = sign(
                "POST",
                url,
                headers,
                request.body,
                self.client.access_key,
                self.client.secret_key,
                self.client.region,
                "sagemaker",
            )
        http = urllib.request.Request(url, data=request.body, headers=headers, method="POST")
        return _send_invocation(http)

    def log_reader(self, kind: JobKind, job_name: str) -> CloudWatchLogReader:
        return CloudWatchLogReader(self.client, kind.log_group, job_name)

    def close(self) -> None:
        """Nothing to release: every call is its own HTTP request."""


def _invocation_headers(request: InvokeRequest) -> dict[str, str]:
    headers = {"Content-Type": request.content_type or "application/octet-stream"}
    optional = {
        "Accept": request.accept,
        CUSTOM_ATTRIBUTES: request.custom_attributes,
        TARGET_VARIANT: request.target_variant,
    }
    headers.update({name: value for name, value in optional.items() if value})
    return headers


def _send_invocation(request: urllib.request.Request) -> Invocation:
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:
            body = response.read()
            headers = response.headers
    except urllib.error.HTTPError as exc:
        raise _invocation_error(exc.code, exc.read()) from None
    except OSError as exc:
        raise BatchformError(f"cannot reach the endpoint at {request.full_url}: {exc}") from exc
    return Invocation(
        body,
        headers.get("Content-Type", "application/octet-stream"),
        headers.get(CUSTOM_ATTRIBUTES),
        headers.get(INVOKED_VARIANT),
    )


def _invocation_error(status: int, raw: bytes) -> ApiCallError:
    """The runtime API's JSON error; ModelError carries the model's own status and text."""
    try:
        error = orjson.loads(raw)
        if not isinstance(error, dict):
            raise TypeError("not an object")
    except (orjson.JSONDecodeError, TypeError):
        return ApiCallError(f"HTTP {status}", raw.decode(errors="replace")[:500])
    code = str(error.get("__type") or error.get("code") or f"HTTP {status}").rsplit("#", 1)[-1]
    message = str(error.get("message") or error.get("Message") or "")
    if code == "ModelError":
        original = error.get("OriginalStatusCode")
        return ModelError(
            message,
            int(original) if original is not None else None,
            error.get("OriginalMessage"),
        )
    return ApiCallError(code, message)


class CloudWatchLogReader:
    """Every stream `<job>/...` of a job's log group, each followed by its forward token."""

    def __init__(self, client: ApiClient, group: str, job_name: str) -> None:
        self.client = client
        self.group = group
        self.job_name = job_name
        self._tokens: dict[str, str | None] = {}

    def read(self) -> list[LogLine]:
        lines: list[LogLine] = []
        for stream in self._streams():
            lines.extend(self._new_events(stream))
        lines.sort(key=lambda line: line.timestamp_ms)
        return lines

    def _streams(self) -> list[str]:
        names: list[str] = []
        body: dict[str, Any] = {
            "logGroupName": self.group,
            "logStreamNamePrefix": f"{self.job_name}/",
        }
        while True:
            answer = self.client.logs("DescribeLogStreams", body)
            names.extend(stream["logStreamName"] for stream in answer.get("logStreams", []))
            if not answer.get("nextToken"):
                return names
            body = {**body, "nextToken": answer["nextToken"]}

    def _new_events(self, stream: str) -> list[LogLine]:
        body: dict[str, Any] = {
            "logGroupName": self.group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        token = self._tokens.get(stream)
        if token:
            body["nextToken"] = token
        answer = self.client.logs("GetLogEvents", body)
        self._tokens[stream] = answer.get("nextForwardToken", token)
        short = stream.split("/", 1)[-1]
        return [
            LogLine(int(event["timestamp"]), short, str(event["message"]))
            for event in answer.get("events", [])
        ]
