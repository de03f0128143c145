"""The one plug point between the SDK and batchform: a `Backend`.

A backend runs SageMaker operations (request and response bodies in SageMaker's
PascalCase shapes), invokes endpoints and reads job logs. `EmbeddedBackend` runs the
service in this process (its jobs in worker processes it spawns); `RemoteBackend` talks
to a `batchform server`. Everything above this module is the same for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from batchform.client import ENDPOINT_ENV


class JobKind(str, Enum):
    """The jobs whose logs are read, with the CloudWatch log group SageMaker gives them."""

    TRAINING = "/aws/sagemaker/TrainingJobs"
    TRANSFORM = "/aws/sagemaker/TransformJobs"

    @property
    def log_group(self) -> str:
        return self.value


@dataclass(frozen=True)
class InvokeRequest:
    endpoint_name: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None


@dataclass(frozen=True)
class Invocation:
    """An endpoint's answer: what InvokeEndpoint returns."""

    body: bytes
    content_type: str
    custom_attributes: str | None = None
    invoked_variant: str | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    stream: str  # `data-log`, `instance-1`, ... (the part after `<job>/`)
    message: str


class LogReader(Protocol):
    def read(self) -> list[LogLine]:
        """The lines written since the last read (everything, the first time)."""
        ...


class Backend(Protocol):
    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one SageMaker operation; ApiCallError with SageMaker's code on refusal."""
        ...

    def invoke_endpoint(self, request: InvokeRequest) -> Invocation: ...

    def log_reader(self, kind: JobKind, job_name: str) -> LogReader: ...

    def close(self) -> None: ...


def make_backend(
    endpoint_url: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    settings: Any = None,
) -> Backend:
    """A server's backend when an endpoint URL is given (or in BATCHFORM_ENDPOINT_URL),
    else the embedded service (`settings`: a ServiceSettings, or None for defaults)."""
    url = endpoint_url or os.environ.get(ENDPOINT_ENV)
    if url:
        from batchform.sdk.remote import RemoteBackend

        if settings is not None:
            raise ValueError("service settings apply to the embedded service, not to a server")
        return RemoteBackend.connect(url, access_key, secret_key, region)
    from batchform.sdk.embedded import EmbeddedBackend

    return EmbeddedBackend(settings)
