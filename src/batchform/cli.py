"""The `batchform` command."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from batchform import service
from batchform.cli_executor import executor_options
from batchform.engine.executors import ExecutorSettings
from batchform.engine.job import TransformOutcome
from batchform.engine.progress import ProgressSnapshot
from batchform.errors import BatchformError, SpecValidationError
from batchform.jobs.lifecycle import JobStatus
from batchform.runtimes.registry import ModelReference
from batchform.spec.enums import (
    AssembleWith,
    BatchStrategy,
    CompressionType,
    JoinSource,
    SplitType,
)
from batchform.spec.extensions import MAX_ERRORS, ON_ERROR, SPLIT_OVER_MB

console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 130


class _LazyGroup(click.Group):
    """Commands kept in other modules are imported only when they run (or are listed),
    so `batchform transform` does not pay for loading the server and training code."""

    _ELSEWHERE = {
        "check-model": ("batchform.cli_models", "check_model"),
        "serve-handler": ("batchform.cli_models", "serve_handler"),
        "server": ("batchform.cli_server", "server"),
        "jobs": ("batchform.cli_server", "jobs"),
        "models": ("batchform.cli_server", "models"),
        "train": ("batchform.cli_train", "train"),
        "quickstart": ("batchform.cli_train", "quickstart"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._ELSEWHERE:
            return super().get_command(ctx, cmd_name)
        module, name = self._ELSEWHERE[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=_LazyGroup)
@click.version_option(package_name="batchform")
def main() -> None:
    """Batch inference with SageMaker Batch Transform semantics, without AWS."""


def _choice(enum: type[Any]) -> click.Choice[str]:
    return click.Choice([member.value for member in enum])


@main.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A CreateTransformJob request body (JSON or YAML); flags override it.",
)
@click.option(
    "--model", "model_path", help="Model folder: a `serve` executable or an inference.py."
)
@click.option("--model-url", help="A model server already running (serving contract).")
@click.option("--model-data", help="ModelDataUrl: a model.tar.gz on any supported storage.")
@click.option("--input", "input_uri", help="Input prefix (path, file://, s3://) or manifest.")
@click.option("--manifest", is_flag=True, default=None, help="--input is a ManifestFile.")
@click.option("--output", "output_uri", help="Output path; each input gets <key>.out there.")
@click.option("--content-type", help="ContentType sent to the model.")
@click.option("--accept", help="Accept sent to the model.")
@click.option("--split-type", type=_choice(SplitType))
@click.option("--strategy", type=_choice(BatchStrategy), help="BatchStrategy.")
@click.option("--assemble-with", type=_choice(AssembleWith))
@click.option("--compression", type=_choice(CompressionType))
@click.option("--max-payload", type=int, help="MaxPayloadInMB (0-100; 0 = no limit).")
@click.option("--concurrency", type=int, help="MaxConcurrentTransforms per instance.")
@click.option("--instances", type=int, help="InstanceCount.")
@click.option("--instance-type", help="InstanceType (ml.*).")
@click.option("--timeout", type=int, help="InvocationsTimeoutInSeconds (1-3600).")
@click.option("--max-retries", type=int, help="InvocationsMaxRetries (0-3).")
@click.option("--input-filter", help="DataProcessing InputFilter (JSONPath), e.g. '$[1:]'.")
@click.option("--output-filter", help="DataProcessing OutputFilter (JSONPath).")
@click.option("--join-source", type=_choice(JoinSource), help="DataProcessing JoinSource.")
@click.option(
    "--on-error",
    type=click.Choice(["fail", "isolate"]),
    help="isolate: bisect failed batches, write good records, dead-letter bad ones.",
)
@click.option("--max-errors", help="Error budget with --on-error isolate: N records or P%.")
@click.option(
    "--split-objects-over",
    type=int,
    metavar="MB",
    help="Cut Line-split objects over MB into ranges of about MB, dealt evenly to instances.",
)
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Job Environment entry.")
@click.option("--name", help="TransformJobName (default: batchform-<time>).")
@click.option("--verbose", "-v", is_flag=True, help="Print the job log as it is written.")
@executor_options
def transform(
    spec_path: str | None,
    model_path: str | None,
    model_url: str | None,
    model_data: str | None,
    verbose: bool,
    executor: str,
    ray_address: str | None,
    **flags: Any,
) -> None:
    """Stream every input object through a model and write <key>.out for each."""
    body = _load_spec(spec_path) if spec_path else {}
    _apply_flags(body, flags)
    try:
        request = service.parse_transform_request(body)
    except SpecValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    model = ModelReference(image=model_path, model_data_url=model_data, url=model_url)
    settings = ExecutorSettings(executor, ray_address)
    _execute(service.TransformRun(request, model, echo=_echo(verbose), executor=settings))


@main.command()
@click.argument("job_name")
@click.option("--verbose", "-v", is_flag=True, help="Print the job log as it is written.")
@executor_options
def resume(job_name: str, verbose: bool, executor: str, ray_address: str | None) -> None:
    """Finish JOB_NAME: redo only the objects whose outputs are missing or damaged.

    Refused when the job's spec, its model or any input object changed since it started.
    """
    settings = ExecutorSettings(executor, ray_address)
    try:
        run = service.resume_run(job_name, echo=_echo(verbose), executor=settings)
    except BatchformError as exc:
        raise click.ClickException(str(exc)) from exc
    _execute(run)


def _echo(verbose: bool) -> Callable[[str], None] | None:
    if not verbose:
        return None
    return lambda line: console.print(line, style="dim", markup=False)


def _execute(run: service.TransformRun) -> None:
    outcome = _run_with_progress(run)
    _print_summary(outcome, run)
    if outcome.status is JobStatus.STOPPED:
        sys.exit(EXIT_STOPPED)
    if outcome.status is JobStatus.FAILED:
        console.print(
            f"[bold red]Failed:[/] {escape(str(outcome.failure_reason))}", highlight=False
        )
        sys.exit(EXIT_FAILED)


def _load_spec(path: str) -> dict[str, Any]:
    import yaml  # only specs given as files need it

    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise click.UsageError(f"{path}: expected a CreateTransformJob request object")
    return loaded


def _apply_flags(body: dict[str, Any], flags: dict[str, Any]) -> None:
    """Flags given on the command line override (or fill in) the spec's fields."""

    def put(path: tuple[str, ...], value: Any) -> None:
        if value is None:
            return
        node = body
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    source = ("TransformInput", "DataSource", "S3DataSource")
    put((*source, "S3Uri"), flags["input_uri"])
    put((*source, "S3DataType"), "ManifestFile" if flags["manifest"] else None)
    put(("TransformInput", "ContentType"), flags["content_type"])
    put(("TransformInput", "SplitType"), flags["split_type"])
    put(("TransformInput", "CompressionType"), flags["compression"])
    put(("TransformOutput", "S3OutputPath"), flags["output_uri"])
    put(("TransformOutput", "Accept"), flags["accept"])
    put(("TransformOutput", "AssembleWith"), flags["assemble_with"])
    put(("TransformResources", "InstanceCount"), flags["instances"])
    put(("TransformResources", "InstanceType"), flags["instance_type"])
    put(("ModelClientConfig", "InvocationsTimeoutInSeconds"), flags["timeout"])
    put(("ModelClientConfig", "InvocationsMaxRetries"), flags["max_retries"])
    put(("MaxPayloadInMB",), flags["max_payload"])
    put(("MaxConcurrentTransforms",), flags["concurrency"])
    put(("BatchStrategy",), flags["strategy"])
    put(("TransformJobName",), flags["name"])
    put(("DataProcessing", "InputFilter"), flags["input_filter"])
    put(("DataProcessing", "OutputFilter"), flags["output_filter"])
    put(("DataProcessing", "JoinSource"), flags["join_source"])
    if flags["on_error"]:
        body.setdefault("Environment", {})[ON_ERROR] = flags["on_error"]
    if flags["max_errors"]:
        body.setdefault("Environment", {})[MAX_ERRORS] = flags["max_errors"]
    if flags["split_objects_over"] is not None:
        body.setdefault("Environment", {})[SPLIT_OVER_MB] = str(flags["split_objects_over"])
    for entry in flags["env"]:
        key, sep, value = entry.partition("=")
        if not sep:
            raise click.UsageError(f"--env {entry!r}: expected KEY=VALUE")
        body.setdefault("Environment", {})[key] = value
    body.setdefault("TransformJobName", time.strftime("batchform-%Y%m%d-%H%M%S"))
    body.setdefault("ModelName", "local-model")


def _run_with_progress(run: service.TransformRun) -> TransformOutcome:
    """Run the job in a thread while the main thread draws progress and catches Ctrl-C."""
    holder: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            holder["outcome"] = run.run()
        except BaseException as exc:  # re-raised below, in the main thread
            holder["error"] = exc
        finally:
            finished.set()

    # Waiting on an Event, not Thread.join: a Ctrl-C inside join() can make later joins
    # return while the thread still runs.
    worker = threading.Thread(target=target, name="transform-job", daemon=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(run.request.transform_job_name, total=None, detail="")
        worker.start()
        try:
            while not finished.wait(timeout=0.25):
                _update_bar(bar, task, run.progress.snapshot())
        except KeyboardInterrupt:
            console.print("stopping: waiting for requests in flight, discarding partial output")
            run.stop.set()
            while not finished.wait(timeout=0.25):
                pass
        _update_bar(bar, task, run.progress.snapshot())
    if "error" in holder:
        error = holder["error"]
        if isinstance(error, BatchformError):
            console.print(f"[bold red]Error:[/] {escape(str(error))}", highlight=False)
            sys.exit(EXIT_FAILED)
        raise error
    outcome: TransformOutcome = holder["outcome"]
    return outcome


def _update_bar(bar: Progress, task: Any, snap: ProgressSnapshot) -> None:
    detail = (
        f"objects {snap.objects_done + snap.objects_failed}/{snap.objects_total} "
        f"records {snap.records:,}"
    )
    bar.update(task, total=snap.bytes_total or None, completed=snap.bytes_read, detail=detail)


def _print_summary(outcome: TransformOutcome, run: service.TransformRun) -> None:
    snap = outcome.progress
    table = Table(
        title=f"{run.request.transform_job_name}: {outcome.status.value}", show_header=False
    )
    rate = snap.bytes_read / snap.elapsed / 1e6 if snap.elapsed else 0.0
    rows = [
        (
            "objects",
            f"{snap.objects_done} done, {snap.objects_failed} failed, {snap.objects_total} total",
        ),
        ("records", f"{snap.records:,} ({snap.records / max(snap.elapsed, 1e-9):,.0f}/s)"),
        ("bytes", f"{snap.bytes_read:,} read, {snap.bytes_written:,} written ({rate:.1f} MB/s)"),
        (
            "batches",
            f"{snap.batches:,}, {snap.retries} retries, {snap.errors} errors, "
            f"{snap.bad_records} bad records",
        ),
        ("wall time", f"{snap.elapsed:.2f} s"),
        ("latency", _latency(snap)),
        ("settings", outcome.settings.data_log_line() if outcome.settings else "-"),
        ("log", str(run.log_path)),
        ("summary", run.summary_url or "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _latency(snap: ProgressSnapshot) -> str:
    if snap.latency_p50 is None or snap.latency_p99 is None:
        return "-"
    return f"p50 {snap.latency_p50 * 1000:.1f} ms, p99 {snap.latency_p99 * 1000:.1f} ms"


if __name__ == "__main__":
    main()
