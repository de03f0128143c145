"""`batchform server` and `batchform jobs …`: the service, served and queried.

`jobs` commands talk to a server when given --endpoint-url (or BATCHFORM_ENDPOINT_URL);
otherwise they read the local store in BATCHFORM_HOME directly.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batchform.cli_executor import checked_executor, executor_options
from batchform.errors import BatchformError

console = Console(stderr=True)
out = Console()

EXIT_FAILED = 1


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int, help="0 picks a free port.")
@click.option("--database-url", envvar="BATCHFORM_DATABASE_URL", help="SQLAlchemy URL.")
@click.option("--max-concurrent-jobs", default=2, show_default=True, type=click.IntRange(1))
@click.option("--max-instances-per-job", default=16, show_default=True, type=click.IntRange(1))
@click.option("--auth", is_flag=True, help="Accept only requests signed (SigV4) with known keys.")
@click.option(
    "--credentials",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AWS-style credentials file with the access keys --auth accepts.",
)
@click.option("--allow-unsigned", is_flag=True, help="Serve a non-loopback host without --auth.")
@click.option(
    "--heartbeat",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between a running job's heartbeats; a job silent for 5 of them is "
    "taken over (resumed) by a live server.",
)
@executor_options
def server(
    host: str,
    port: int,
    database_url: str | None,
    max_concurrent_jobs: int,
    max_instances_per_job: int,
    auth: bool,
    credentials: Path | None,
    allow_unsigned: bool,
    heartbeat: float,
    executor: str,
    ray_address: str | None,
) -> None:
    """Serve the SageMaker API (boto3, the sagemaker SDK, the AWS CLI) on this machine."""
    import os

    from batchform.jobs.runner import RunnerSettings
    from batchform.server.serve import run_server
    from batchform.service import ServiceSettings

    if not auth and not allow_unsigned and not _loopback(host):
        raise click.UsageError(
            f"--host {host} is reachable from other machines: add --auth (SigV4 with your "
            "keys) or, on a trusted network, --allow-unsigned"
        )
    keys = None
    if auth:
        from batchform.server.accesskeys import load_access_keys

        keys = _or_exit(lambda: load_access_keys(os.environ, credentials))
    settings = ServiceSettings(
        database_url=database_url,
        runner=RunnerSettings(
            max_concurrent_jobs=max_concurrent_jobs,
            heartbeat_seconds=heartbeat,
            stale_after_seconds=5 * heartbeat,
            executor=_or_exit(lambda: checked_executor(executor, ray_address)),
        ),
        max_instances_per_job=max_instances_per_job,
    )
    _or_exit(lambda: run_server(settings, host, port, keys, announce=console.print))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_group(function: Callable[[], None]) -> click.Group:
    """A command group whose commands talk to --endpoint-url or the local store."""

    @click.option(
        "--endpoint-url",
        envvar="BATCHFORM_ENDPOINT_URL",
        help="A batchform server; by default the local store is used directly.",
    )
    @click.pass_context
    @functools.wraps(function)
    def group(context: click.Context, endpoint_url: str | None) -> None:
        context.obj = _Backend(endpoint_url)

    return click.group(name=function.__name__)(group)


@_api_group
def jobs() -> None:
    """List, describe, follow and stop transform jobs."""


@jobs.command("list")
@click.option("--status", help="Only jobs in this status (InProgress, Completed, …).")
@click.option("--name-contains")
@click.option("--max-results", default=50, show_default=True, type=click.IntRange(1, 100))
@click.pass_obj
def list_jobs(
    backend: _Backend, status: str | None, name_contains: str | None, max_results: int
) -> None:
    """Transform jobs, newest first."""
    body: dict[str, Any] = {"MaxResults": max_results}
    if status:
        body["StatusEquals"] = status
    if name_contains:
        body["NameContains"] = name_contains
    answer = backend.call("ListTransformJobs", body)
    table = Table("name", "status", "created", "ended", "failure reason")
    for job in answer["TransformJobSummaries"]:
        table.add_row(
            job["TransformJobName"],
            job["TransformJobStatus"],
            _when(job.get("CreationTime")),
            _when(job.get("TransformEndTime")),
            job.get("FailureReason", ""),
        )
    out.print(table)


@jobs.command()
@click.argument("job_name")
@click.pass_obj
def describe(backend: _Backend, job_name: str) -> None:
    """DescribeTransformJob's answer, as JSON."""
    answer = backend.call("DescribeTransformJob", {"TransformJobName": job_name})
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")


@jobs.command()
@click.argument("job_name")
@click.pass_obj
def stop(backend: _Backend, job_name: str) -> None:
    """Ask a job to stop; it leaves no partial output."""
    backend.call("StopTransformJob", {"TransformJobName": job_name})
    console.print(f"stop requested for {job_name}")


@jobs.command()
@click.argument("job_name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.pass_obj
def logs(backend: _Backend, job_name: str, follow: bool) -> None:
    """The job's log: the engine's data log and the model's output."""
    from batchform.jobs.logtail import follow_log

    backend.call("DescribeTransformJob", {"TransformJobName": job_name})
    for line in follow_log(backend.log_pages(job_name), lambda: backend.finished(job_name), follow):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@_api_group
def models() -> None:
    """Create, list, describe and delete models."""


@models.command("create")
@click.argument("model_name")
@click.option("--image", help="Model folder, file:// URI, builtin:<algorithm> or a model URL.")
@click.option("--model-data", help="ModelDataUrl: the model.tar.gz to serve.")
@click.option("--from-training-job", "training_job", help="Serve what this training job made.")
@click.option("--env", "environment", multiple=True, help="KEY=VALUE for the model.")
@click.pass_obj
def create_model(
    backend: _Backend,
    model_name: str,
    image: str | None,
    model_data: str | None,
    training_job: str | None,
    environment: tuple[str, ...],
) -> None:
    """CreateModel; with --from-training-job, its image and artifacts (like the SDK's
    create_model_from_job)."""
    if training_job:
        job = backend.call("DescribeTrainingJob", {"TrainingJobName": training_job})
        image = image or job["AlgorithmSpecification"].get("TrainingImage")
        model_data = model_data or job["ModelArtifacts"]["S3ModelArtifacts"]
    if not image:
        raise click.UsageError("give --image, or --from-training-job")
    container: dict[str, Any] = {"Image": image}
    if model_data:
        container["ModelDataUrl"] = model_data
    if environment:
        container["Environment"] = dict(entry.split("=", 1) for entry in environment)
    answer = backend.call("CreateModel", {"ModelName": model_name, "PrimaryContainer": container})
    out.print(answer["ModelArn"])


@models.command("list")
@click.pass_obj
def list_models(backend: _Backend) -> None:
    answer = backend.call("ListModels", {"MaxResults": 100})
    table = Table("name", "created")
    for model in answer["Models"]:
        table.add_row(model["ModelName"], _when(model.get("CreationTime")))
    out.print(table)


@models.command("describe")
@click.argument("model_name")
@click.pass_obj
def describe_model(backend: _Backend, model_name: str) -> None:
    answer = backend.call("DescribeModel", {"ModelName": model_name})
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")


@models.command("delete")
@click.argument("model_name")
@click.pass_obj
def delete_model(backend: _Backend, model_name: str) -> None:
    backend.call("DeleteModel", {"ModelName": model_name})
    console.print(f"deleted {model_name}")


class _Backend:
    """The server's API when an endpoint is given, else the service over the local store."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self._service: Any = None
        self._client: Any = None

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = _or_exit(lambda: self._call(operation, body))
        return answer

    def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.endpoint_url:
            answer: dict[str, Any] = self._api().sagemaker(operation, body)
            return answer
        local: dict[str, Any] = self._local().operations()[operation](body)
        return local

    def finished(self, job_name: str) -> bool:
        answer = self.call("DescribeTransformJob", {"TransformJobName": job_name})
        return answer["TransformJobStatus"] in ("Completed", "Failed", "Stopped")

    def log_pages(self, job_name: str) -> Callable[[str | None], tuple[list[str], str | None]]:
        """Reads the next lines of a job's log after a token (server or local file)."""
        from batchform.jobs.logtail import api_pages, file_pages

        if self.endpoint_url:
            return api_pages(self._api(), job_name)
        return file_pages(self._local().job_log(job_name))

    def _api(self) -> Any:
        if self._client is None:
            from batchform.client import ApiClient

            assert self.endpoint_url is not None
            self._client = ApiClient.from_environment(self.endpoint_url)
        return self._client

    def _local(self) -> Any:
        if self._service is None:
            from batchform.service import Service

            self._service = Service()
        return self._service


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _or_exit(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except BatchformError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(EXIT_FAILED)
