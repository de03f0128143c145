"""`batchform check-model` and `batchform serve-handler`: commands about a model itself.

Kept out of cli.py (which is about jobs); cli.py registers both with main.add_command.
Nothing here imports cli.py, which imports this module.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batchform.errors import BatchformError
from batchform.runtimes import check
from batchform.runtimes.check import CheckOptions, CheckReport, CheckResult, Outcome
from batchform.runtimes.registry import ModelReference
from batchform.runtimes.serve_handler import (
    ServeOptions,
    default_port,
    default_workers,
    serve,
)

report_console = Console()  # the report is the command's output: stdout
log_console = Console(stderr=True)

EXIT_FAILED = 1
_MODEL_LOG_LINES = 15
_OUTCOME_STYLES = {
    Outcome.PASS: "[bold green]PASS[/]",
    Outcome.FAIL: "[bold red]FAIL[/]",
    Outcome.INFO: "[dim]info[/]",
}


def _environment(entries: tuple[str, ...]) -> dict[str, str]:
    environment = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep:
            raise click.UsageError(f"--env {entry!r}: expected KEY=VALUE")
        environment[key] = value
    return environment


@click.command("check-model")
@click.argument("model", required=False)
@click.option(
    "--sample",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Input data to invoke the model with (its first 6 MB are used).",
)
@click.option("--content-type", required=True, help="ContentType sent to the model.")
@click.option("--accept", help="Accept sent to the model.")
@click.option("--model-data", help="ModelDataUrl: a model.tar.gz on any supported storage.")
@click.option("--model-url", help="A model server already running, instead of MODEL.")
@click.option("--records", default=5, show_default=True, help="Records sent one by one.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per invocation.")
@click.option("--startup-timeout", default=600.0, show_default=True, help="Seconds to start.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Model Environment entry.")
def check_model(
    model: str | None,
    sample: str,
    content_type: str,
    accept: str | None,
    model_data: str | None,
    model_url: str | None,
    records: int,
    timeout: float,
    startup_timeout: float,
    env: tuple[str, ...],
) -> None:
    """Check that MODEL (a folder, or --model-url) honours the serving contract on a sample.

    Starts the model, checks /ping and /execution-parameters, invokes the sample under
    SingleRecord and MultiRecord and, for text/csv and JSON Lines, that every input
    record gets exactly one output record. Exit code 0 when every check passes.
    """
    if not (model or model_url or model_data):
        raise click.UsageError("give a MODEL folder, --model-url or --model-data")
    options = CheckOptions(
        content_type=content_type,
        accept=accept,
        single_records=records,
        timeout_seconds=timeout,
        startup_timeout=startup_timeout,
        environment=_environment(env),
    )
    reference = ModelReference(image=model, model_data_url=model_data, url=model_url)
    report = check.check_model(reference, check.read_sample(sample), options)
    print_report(report)
    if not report.passed:
        sys.exit(EXIT_FAILED)


def print_report(report: CheckReport) -> None:
    table = Table(title=f"check-model {report.model} ({report.kind})")
    for column in ("check", "result", "time"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail")
    for result in report.results:
        table.add_row(result.name, _OUTCOME_STYLES[result.outcome], _seconds(result), result.detail)
    report_console.print(table)
    if report.passed:
        report_console.print("[bold green]PASS[/]: the model honours the contract on this sample")
        return
    failed = sum(result.outcome is Outcome.FAIL for result in report.results)
    report_console.print(f"[bold red]FAIL[/]: {failed} check(s) failed")
    if report.model_log:
        report_console.print("the model's last lines:", style="bold")
        for line in report.model_log[-_MODEL_LOG_LINES:]:
            report_console.print(f"  {line}", markup=False, highlight=False)


def _seconds(result: CheckResult) -> str:
    if result.seconds is None:
        return "-"
    if result.seconds < 1:
        return f"{result.seconds * 1000:.1f} ms"
    return f"{result.seconds:.2f} s"


@click.command("serve-handler")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--port", type=int, help="Port (default: $SAGEMAKER_BIND_TO_PORT, else 8080).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes (default: $SAGEMAKER_MODEL_SERVER_WORKERS, else one per core).",
)
@click.option("--model-data", help="ModelDataUrl: a model.tar.gz unpacked for model_fn.")
def serve_handler(
    directory: str, port: int | None, host: str, workers: int | None, model_data: str | None
) -> None:
    """Serve the Python handler in DIRECTORY (inference.py) over SageMaker's serving contract.

    GET /ping, GET /execution-parameters and POST /invocations, answered by several
    worker processes, each with the model loaded once. SIGTERM or Ctrl-C stops it.
    """
    options = ServeOptions(
        code_dir=directory,
        host=host,
        port=default_port() if port is None else port,
        workers=workers or default_workers(),
        model_data_url=model_data,
    )
    try:
        serve(options, say=lambda line: click.echo(f"serve-handler: {line}", err=True))
    except BatchformError as exc:
        log_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_FAILED)
