"""The control plane: models and transform jobs stored, run in the background, described.

Operations take and return SageMaker's request and response bodies (PascalCase dicts),
so every front end speaks the same shapes and raises the same errors. Front ends reach
it through `batchform.service`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchform.endpoints.manager import EndpointAnswer
from batchform.errors import (
    ConfigurationError,
    InvalidRequest,
    ResourceInUse,
    ResourceLimitExceeded,
    ResourceNotFound,
)
from batchform.jobs import lifecycle, progressview, resources
from batchform.jobs.endpoints import Endpoints
from batchform.jobs.lifecycle import JobStatus
from batchform.jobs.resources import required_name
from batchform.jobs.runner import JobRunner, RunnerSettings
from batchform.jobs.store import MODELS, TRANSFORM_JOBS, AlreadyExists, Row, Store
from batchform.jobs.timeseries import TimeSeriesRecorder
from batchform.jobs.trainingjobs import TrainingJobs
from batchform.jobs.transformrun import (
    log_path,
    model_dict,
    parse_transform_request,
)
from batchform.runtimes.registry import ModelReference, runtime_kind
from batchform.spec.common import parse_request
from batchform.spec.model import CreateModelRequest

Operation = Callable[[dict[str, Any]], dict[str, Any]]
TAG_PREFIX = "batchform:"


@dataclass
class ServiceSettings:
    database_url: str | None = None
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    #: Like SageMaker's account quota on transform instances per job.
    max_instances_per_job: int = 16


class Service:
    """Models and transform jobs: stored, run in the background, described."""

    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self.settings = settings or ServiceSettings()
        self.store = Store(self.settings.database_url)
        self.runner = JobRunner(self.store, self.settings.runner)
        self.training = TrainingJobs(self.store, self.runner)
        self.endpoints = Endpoints(self.store, model_reference, self.settings.runner.executor)
        self.timeseries = TimeSeriesRecorder(
            self.store, self.settings.runner.heartbeat_seconds, self.runner.owner
        )

    def start(self) -> None:
        self.runner.start()
        self.endpoints.start()
        self.timeseries.start()

    def close(self, timeout: float = 60.0) -> None:
        self.timeseries.close()
        self.endpoints.close()
        self.runner.shutdown(timeout)
        self.store.close()

    def operations(self) -> dict[str, Operation]:
        """SageMaker operation name → handler, for the server's dispatcher."""
        return {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "ListModels": self.list_models,
            "DeleteModel": self.delete_model,
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "StopTransformJob": self.stop_transform_job,
            **self.training.operations(),
            **self.endpoints.operations(),
        }

    def invoke_endpoint(
        self,
        name: str,
        body: bytes,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
    ) -> EndpointAnswer:
        """InvokeEndpoint for an in-process caller (the SDK's embedded session)."""
        return self.endpoints.invoke(
            name, body, content_type, accept, custom_attributes, target_variant
        )

    # Models

    def create_model(self, body: dict[str, Any]) -> dict[str, Any]:
        request = parse_request(CreateModelRequest, body)
        reference = model_reference(request.to_request())
        _check_runnable(reference)
        arn = resources.arn("model", request.model_name)
        row = {"name": request.model_name, "arn": arn, "request": request.to_request()}
        try:
            self.store.insert(MODELS, {**row, "created_at": time.time()})
        except AlreadyExists:
            raise InvalidRequest(f'Cannot create already existing model "{arn}".') from None
        return {"ModelArn": arn}

    def describe_model(self, body: dict[str, Any]) -> dict[str, Any]:
        return resources.describe_model(self._model(required_name(body, "ModelName")))

    def list_models(self, body: dict[str, Any]) -> dict[str, Any]:
        return resources.list_page(
            self.store, MODELS, body, ("Name", "CreationTime"), "Models", resources.model_summary
        )

    def delete_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = required_name(body, "ModelName")
        if not self.store.delete(MODELS, name):
            raise InvalidRequest(f'Could not find model "{resources.arn("model", name)}".')
        return {}

    def _model(self, name: str) -> Row:
        row = self.store.get(MODELS, name)
        if row is None:
            raise InvalidRequest(f'Could not find model "{resources.arn("model", name)}".')
        return row

    # Transform jobs

    def create_transform_job(self, body: dict[str, Any]) -> dict[str, Any]:
        request = parse_transform_request(with_tag_options(body))
        model = model_reference(self._model(request.model_name)["request"])
        self._check_instance_quota(request.transform_resources.instance_count)
        name = request.transform_job_name
        arn = resources.arn("transform-job", name)
        now = time.time()
        row = {
            "name": name,
            "arn": arn,
            "status": JobStatus.IN_PROGRESS.value,
            "model_name": request.model_name,
            "request": request.to_request(),
            "model": model_dict(model),
            "created_at": now,
            "modified_at": now,
            "attempts": 0,
            "resume": False,
        }
        try:
            self.store.insert(TRANSFORM_JOBS, row)
        except AlreadyExists:
            raise ResourceInUse(
                "Job name must be unique within an AWS account and region, and a job with "
                f"this name already exists ({arn})"
            ) from None
        self.runner.wake()
        return {"TransformJobArn": arn}

    def describe_transform_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return resources.describe_transform_job(self._job(required_name(body, "TransformJobName")))

    def list_transform_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        status = body.get("StatusEquals")
        if status is not None and status not in {s.value for s in JobStatus}:
            raise InvalidRequest(_status_problem(status))
        return resources.list_page(
            self.store,
            TRANSFORM_JOBS,
            body,
            ("Name", "CreationTime", "Status"),
            "TransformJobSummaries",
            resources.transform_job_summary,
            resources.SUMMARY_COLUMNS,
        )

    def stop_transform_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Waiting jobs stop at once; running ones go through Stopping."""
        row = self._job(required_name(body, "TransformJobName"))
        lifecycle.request_stop(self.store, TRANSFORM_JOBS, row)
        return {}

    def transform_job_view(self, name: str) -> dict[str, Any]:
        """Progress, objects, retries, dead letters and series of a job (the console's)."""
        return progressview.job_view(self._job(name))

    def job_log(self, name: str) -> Path:
        self._job(name)
        return log_path(name)

    def _job(self, name: str) -> Row:
        row = self.store.get(TRANSFORM_JOBS, name)
        if row is None:
            raise ResourceNotFound(f"Could not find requested job with name {name}")
        return row

    def _check_instance_quota(self, count: int) -> None:
        limit = self.settings.max_instances_per_job
        if count > limit:
            raise ResourceLimitExceeded(
                f"The account-level service limit 'instances per transform job' is {limit} "
                f"Instances, with a request delta of {count} Instances. Raise it with "
                "`batchform server --max-instances-per-job`."
            )


def model_reference(request: dict[str, Any]) -> ModelReference:
    """What batchform runs for a CreateModel request's (single) container."""
    containers = request.get("Containers") or [request.get("PrimaryContainer") or {}]
    if len(containers) > 1:
        raise InvalidRequest(
            "Containers: batchform runs one container per model (inference pipelines "
            f"of {len(containers)} containers are not supported)"
        )
    container = containers[0]
    image = container.get("Image")
    environment = dict(container.get("Environment") or {})
    data = container.get("ModelDataUrl") or _model_data_source(container.get("ModelDataSource"))
    if image and image.startswith(("http://", "https://")):
        return ModelReference(url=image, model_data_url=data, environment=environment)
    return ModelReference(image=image, model_data_url=data, environment=environment)


def _model_data_source(source: Any) -> str | None:
    """ModelDataSource (what the sagemaker SDK sends for a model of a training job) as the
    tarball URL batchform unpacks."""
    s3 = (source or {}).get("S3DataSource") if isinstance(source, dict) else None
    if not s3:
        return None
    if s3.get("S3DataType") != "S3Object" or s3.get("CompressionType", "Gzip") != "Gzip":
        raise InvalidRequest(
            "PrimaryContainer.ModelDataSource: only a compressed model (S3DataType S3Object, "
            "CompressionType Gzip: a model.tar.gz) can be served"
        )
    uri: str = s3["S3Uri"]
    return uri


def with_tag_options(body: dict[str, Any]) -> dict[str, Any]:
    """`batchform:on-error` style tags become BATCHFORM_ON_ERROR Environment entries."""
    options = {
        "BATCHFORM_" + tag["Key"][len(TAG_PREFIX) :].upper().replace("-", "_"): tag.get("Value", "")
        for tag in body.get("Tags") or []
        if isinstance(tag, dict) and str(tag.get("Key", "")).startswith(TAG_PREFIX)
    }
    if not options:
        return body
    return {**body, "Environment": {**options, **(body.get("Environment") or {})}}


def _check_runnable(model: ModelReference) -> None:
    try:
        runtime_kind(model)
    except ConfigurationError as exc:
        raise InvalidRequest(f"PrimaryContainer.Image: {exc}") from exc


def _status_problem(status: str) -> str:
    allowed = ", ".join(s.value for s in JobStatus)
    return (
        f"1 validation error detected: Value '{status}' at 'statusEquals' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{allowed}]"
    )
