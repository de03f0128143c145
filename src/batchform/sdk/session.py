"""`Session`: the sagemaker SDK's Session over batchform, embedded or a server.

`Session()` runs batchform's service in this process (its jobs in worker processes it
starts); `Session(endpoint_url=...)` (or BATCHFORM_ENDPOINT_URL) talks to a
`batchform server`. Methods keep the sagemaker SDK's names, arguments and answers
(SageMaker's response dicts). Close the session (or use it in a `with` block) to stop an
embedded service's runner; interpreter exit does it otherwise.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from batchform.client import ENDPOINT_ENV
from batchform.sdk import buckets
from batchform.sdk.backend import Backend, JobKind, make_backend
from batchform.sdk.clients import SageMakerClient, SageMakerRuntimeClient
from batchform.sdk.exceptions import ApiCallError
from batchform.sdk.hosting import HostingOperations
from batchform.sdk.requests import Tags, container_def, format_tags, without_none
from batchform.sdk.waiting import (
    JOB_ENDED,
    check_job_status,
    follow_logs,
    job_ended,
    poll_until,
)

if TYPE_CHECKING:
    from batchform.service import ServiceSettings

logger = logging.getLogger("batchform.sdk")

DEFAULT_REGION = "us-east-1"
#: batchform's service is local and cheap to ask: waits poll faster than the sagemaker
#: SDK's 5-30 s (they start at 0.1 s and back off to this).
DEFAULT_POLL_SECONDS = 2.0


class Session(HostingOperations):
    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        default_bucket: str | None = None,
        default_bucket_prefix: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        service_settings: ServiceSettings | None = None,
        backend: Backend | None = None,
    ) -> None:
        """`default_bucket`: an S3 bucket name, or a local folder (absolute path or
        file:// URL); by default the folder $BATCHFORM_HOME/bucket. `access_key`,
        `secret_key` and `region` sign requests to a server started with --auth (they
        default to AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION).
        `service_settings` configures the embedded service."""
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        self.backend = backend or make_backend(
            self.endpoint_url, access_key, secret_key, region, service_settings
        )
        self._region = region
        self._default_bucket_name = default_bucket
        self._default_bucket: str | None = None
        self.default_bucket_prefix = default_bucket_prefix
        self.sagemaker_client = SageMakerClient(self.backend)
        self.sagemaker_runtime_client = SageMakerRuntimeClient(self.backend)
        self.echo: Callable[[str], None] = print

    # The session itself

    @property
    def local_mode(self) -> bool:
        """False: batchform takes local paths wherever the SageMaker API takes S3 URIs,
        so nothing needs the sagemaker SDK's local mode."""
        return False

    @property
    def boto_region_name(self) -> str:
        return self._region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION

    @property
    def embedded(self) -> bool:
        """Whether the service runs in this process (no endpoint URL)."""
        return self.endpoint_url is None

    def call(self, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a SageMaker operation by name with a request body in SageMaker's shape."""
        return self.backend.call(operation, dict(body or {}))

    def close(self) -> None:
        """Stop the embedded service's runner (running jobs are handed back and resume
        under the next runner); nothing to do for a server."""
        self.backend.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Buckets and data

    def default_bucket(self) -> str:
        """The default bucket's name (an S3 bucket) or folder (local), created if missing."""
        if self._default_bucket is None:
            bucket = self._default_bucket_name or buckets.default_local_bucket()
            buckets.ensure_bucket(bucket)
            self._default_bucket = bucket
        return self._default_bucket

    def default_bucket_url(self) -> str:
        """Where keys of the default bucket (and prefix) start: `s3://<bucket>[/<prefix>]`
        or the local folder; build output paths from it to work with either kind."""
        base = buckets.bucket_url(self.default_bucket())
        return buckets.join_url(base, self.default_bucket_prefix)

    def upload_data(
        self,
        path: str,
        bucket: str | None = None,
        key_prefix: str = "data",
        callback: Callable[[int], None] | None = None,
        extra_args: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload a file (→ `<bucket>/<key_prefix>/<name>`, returned) or a folder's files
        (→ `<bucket>/<key_prefix>/<relative path>`, `<bucket>/<key_prefix>` returned).
        `callback` is called with each file's size once it is uploaded."""
        if extra_args:
            raise ValueError("upload_data: extra_args (S3 ExtraArgs) are not supported")
        prefix = self._bucket_prefix_url(bucket, key_prefix)
        return buckets.upload(path, prefix, callback)

    def download_data(
        self, path: str, bucket: str, key_prefix: str = "", extra_args: Any = None
    ) -> list[str]:
        """Download the objects whose keys start with `key_prefix` into the folder `path`;
        the local paths written."""
        if extra_args:
            raise ValueError("download_data: extra_args (S3 ExtraArgs) are not supported")
        return buckets.download(buckets.join_url(buckets.bucket_url(bucket), key_prefix), path)

    def _bucket_prefix_url(self, bucket: str | None, key_prefix: str) -> str:
        if bucket is None:
            return buckets.join_url(self.default_bucket_url(), key_prefix)
        return buckets.join_url(buckets.bucket_url(bucket), key_prefix)

    # Models

    def create_model(
        self,
        name: str,
        role: str | None = None,
        container_defs: dict[str, Any] | list[dict[str, Any]] | None = None,
        vpc_config: dict[str, Any] | None = None,
        enable_network_isolation: bool | None = None,
        primary_container: dict[str, Any] | None = None,
        tags: Tags = None,
    ) -> str:
        """CreateModel; a model that already exists is kept (with a warning), as the
        sagemaker SDK does. Returns the model's name."""
        containers = container_defs if container_defs is not None else primary_container
        body = without_none(
            ModelName=name,
            ExecutionRoleArn=role,
            VpcConfig=vpc_config,
            EnableNetworkIsolation=enable_network_isolation,
            Tags=format_tags(tags),
        )
        body["Containers" if isinstance(containers, list) else "PrimaryContainer"] = containers
        try:
            self.call("CreateModel", body)
        except ApiCallError as exc:
            if "already existing model" not in str(exc):
                raise
            logger.warning("Using already existing model: %s", name)
        return name

    def create_model_from_job(
        self,
        training_job_name: str,
        name: str | None = None,
        role: str | None = None,
        image_uri: str | None = None,
        model_data_url: str | None = None,
        env: Mapping[str, str] | None = None,
        enable_network_isolation: bool | None = None,
        vpc_config_override: dict[str, Any] | None = None,
        tags: Tags = None,
    ) -> str:
        """A model of a completed training job's artifacts, named after the job unless
        `name` is given; its image is the job's unless `image_uri` is given."""
        job = self.describe_training_job(training_job_name)
        container = container_def(
            image_uri or job["AlgorithmSpecification"]["TrainingImage"],
            model_data_url or model_artifacts(job),
            env,
        )
        return self.create_model(
            name or training_job_name,
            role or job.get("RoleArn"),
            container,
            vpc_config=vpc_config_override or job.get("VpcConfig"),
            enable_network_isolation=enable_network_isolation,
            tags=tags,
        )

    def describe_model(self, name: str) -> dict[str, Any]:
        return self.call("DescribeModel", {"ModelName": name})

    def delete_model(self, model_name: str) -> None:
        self.call("DeleteModel", {"ModelName": model_name})

    # Training jobs

    def describe_training_job(self, job_name: str) -> dict[str, Any]:
        return self.call("DescribeTrainingJob", {"TrainingJobName": job_name})

    def stop_training_job(self, job_name: str) -> None:
        self.call("StopTrainingJob", {"TrainingJobName": job_name})

    def wait_for_job(self, job: str, poll: float = DEFAULT_POLL_SECONDS) -> dict[str, Any]:
        """Wait for a training job to end; UnexpectedStatusException unless it completed
        (a stopped job only warns). Returns its description."""
        key = "TrainingJobStatus"
        description = poll_until(lambda: self.describe_training_job(job), job_ended(key), poll)
        check_job_status(job, description, key)
        return description

    def logs_for_job(
        self,
        job_name: str,
        wait: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
        log_type: str | bool = "All",
        timeout: float | None = None,
    ) -> None:
        """Print a training job's log; with `wait`, follow it until the job ends and
        then check its status as `wait_for_job` does."""
        if log_type in (False, "None"):
            if wait:
                self.wait_for_job(job_name, poll)
            return
        description = self._follow(JobKind.TRAINING, job_name, wait, poll, timeout)
        if wait:
            check_job_status(job_name, description, "TrainingJobStatus")
            seconds = description.get("TrainingTimeInSeconds")
            if seconds is not None:
                self.echo(f"Training seconds: {seconds}")
                self.echo(f"Billable seconds: {description.get('BillableTimeInSeconds', seconds)}")

    # Transform jobs

    def describe_transform_job(self, job_name: str) -> dict[str, Any]:
        return self.call("DescribeTransformJob", {"TransformJobName": job_name})

    def stop_transform_job(self, name: str) -> None:
        """Stop a transform job; one that has already ended is left as it is."""
        try:
            self.call("StopTransformJob", {"TransformJobName": name})
        except ApiCallError as exc:
            if exc.code != "ValidationException":
                raise
            logger.info("Transform job %s is already stopped or not running.", name)

    def wait_for_transform_job(
        self, job: str, poll: float = DEFAULT_POLL_SECONDS
    ) -> dict[str, Any]:
        key = "TransformJobStatus"
        description = poll_until(lambda: self.describe_transform_job(job), job_ended(key), poll)
        check_job_status(job, description, key)
        return description

    def logs_for_transform_job(
        self, job_name: str, wait: bool = False, poll: float = DEFAULT_POLL_SECONDS
    ) -> None:
        description = self._follow(JobKind.TRANSFORM, job_name, wait, poll, None)
        if wait:
            check_job_status(job_name, description, "TransformJobStatus")

    def _follow(
        self, kind: JobKind, job_name: str, wait: bool, poll: float, timeout: float | None
    ) -> dict[str, Any]:
        """Echo a job's log (following it with `wait`); its last description."""
        describe, key = self._describer(kind, job_name)
        latest = [describe()]
        reader = self.backend.log_reader(kind, job_name)
        deadline = None if timeout is None else time.monotonic() + timeout

        def finished() -> bool:
            latest[0] = describe()
            timed_out = deadline is not None and time.monotonic() > deadline
            return timed_out or latest[0][key] in JOB_ENDED

        follow_logs(reader, finished, wait, poll, self.echo)
        return latest[0]

    def _describer(self, kind: JobKind, job_name: str) -> tuple[Callable[[], dict[str, Any]], str]:
        if kind is JobKind.TRAINING:
            return (lambda: self.describe_training_job(job_name)), "TrainingJobStatus"
        return (lambda: self.describe_transform_job(job_name)), "TransformJobStatus"


def model_artifacts(job: Mapping[str, Any]) -> str | dict[str, Any]:
    """A training job's model: its model.tar.gz URL, or, when the job wrote it
    uncompressed, a ModelDataSource for the folder."""
    url = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not url:
        raise ValueError(
            f"training job {job.get('TrainingJobName')} has no model artifacts "
            f"(status {job.get('TrainingJobStatus')}); wait for it to complete"
        )
    compression = (job.get("OutputDataConfig") or {}).get("CompressionType", "GZIP")
    if compression != "NONE":
        return str(url)
    folder = url if url.endswith("/") else url + "/"
    return {"S3DataSource": {"S3Uri": folder, "S3DataType": "S3Prefix", "CompressionType": "None"}}


_default_session: Session | None = None

#: batchform assumes no IAM roles; code that asks for one gets a well-formed placeholder.
PLACEHOLDER_ROLE = "arn:aws:iam::000000000000:role/batchform"


def get_execution_role(sagemaker_session: Session | None = None) -> str:
    """A role ARN for code that passes one along (RoleArn is optional in batchform)."""
    return PLACEHOLDER_ROLE


def default_session() -> Session:
    """The session objects use when given none: one per process, made on first use
    (embedded, or the server in BATCHFORM_ENDPOINT_URL)."""
    global _default_session
    if _default_session is None:
        _default_session = Session()
    return _default_session
