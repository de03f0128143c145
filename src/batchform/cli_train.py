"""`batchform train`: a CreateTrainingJob run on this machine, from flags or a spec file."""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.markup import escape

from batchform.errors import BatchformError, SpecValidationError
from batchform.jobs.lifecycle import JobStatus
from batchform.service import (
    OUTPUT_TARBALL,
    SecondaryStatus,
    SecondaryStatusTransition,
    TrainingOutcome,
    TrainingRun,
    artifact_url,
    parse_training_request,
)

console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_STOPPED = 130

# SageMaker's channel-name pattern: what tells `train=text/csv` from `text/csv;a=b`.
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]+$")


@click.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A CreateTrainingJob request body (JSON or YAML); flags override it.",
)
@click.option(
    "--image",
    help="TrainingImage: a folder (or file:// URI) with an executable `train`, "
    "builtin:pca, builtin:kmeans, or their SageMaker registry URIs.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME=URL",
    help="An input channel: a prefix (path, file://, s3://), copied to input/data/NAME/ "
    "(File mode) or streamed into the FIFOs input/data/NAME_<epoch> (Pipe mode).",
)
@click.option(
    "--manifest", "manifests", multiple=True, metavar="NAME", help="Channel NAME is a ManifestFile."
)
@click.option(
    "--content-type",
    "content_types",
    multiple=True,
    metavar="[NAME=]TYPE",
    help="ContentType of channel NAME, or of every channel without NAME=.",
)
@click.option(
    "--input-mode",
    "input_modes",
    multiple=True,
    metavar="[NAME=]MODE",
    help="File or Pipe: the job's TrainingInputMode, or with NAME= channel NAME's InputMode.",
)
@click.option(
    "--hp", "hyperparameters", multiple=True, metavar="KEY=VALUE", help="A hyperparameter."
)
@click.option(
    "--output", "output_path", help="S3OutputPath: <output>/<job>/output/model.tar.gz is written."
)
@click.option("--job-name", help="TrainingJobName (default: batchform-train-<time>).")
@click.option(
    "--max-runtime", type=click.IntRange(1), metavar="SECONDS", help="MaxRuntimeInSeconds."
)
@click.option("--instance-type", help="ResourceConfig.InstanceType (ml.*).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment entry.")
@click.option("--verbose", "-v", is_flag=True, help="Print the job log as it is written.")
def train(spec_path: str | None, verbose: bool, **flags: Any) -> None:
    """Run a training job: copy (or stream) the channels in, run the image's `train`, upload
    the model."""
    body = _load_spec(spec_path) if spec_path else {}
    _apply_flags(body, flags)
    try:
        request = parse_training_request(body)
    except SpecValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    echo = (lambda line: console.print(line, style="dim", markup=False)) if verbose else None
    run = TrainingRun(request, echo=echo, on_status=_show_status)
    outcome = _run_to_the_end(run)
    _print_summary(run, outcome)
    code = _exit_code(outcome)
    if code:
        sys.exit(code)


def _load_spec(path: str) -> dict[str, Any]:
    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise click.UsageError(f"{path}: expected a CreateTrainingJob request object")
    return loaded


def _apply_flags(body: dict[str, Any], flags: dict[str, Any]) -> None:
    """Flags override (or fill in) the spec's fields; SageMaker's defaults fill the rest."""
    for path, value in (
        (("TrainingJobName",), flags["job_name"]),
        (("AlgorithmSpecification", "TrainingImage"), flags["image"]),
        (("OutputDataConfig", "S3OutputPath"), flags["output_path"]),
        (("ResourceConfig", "InstanceType"), flags["instance_type"]),
        (("StoppingCondition", "MaxRuntimeInSeconds"), flags["max_runtime"]),
    ):
        if value is not None:
            _node(body, path[:-1])[path[-1]] = value
    body.setdefault("TrainingJobName", time.strftime("batchform-train-%Y%m%d-%H%M%S"))
    body.setdefault("AlgorithmSpecification", {}).setdefault("TrainingInputMode", "File")
    resources = body.setdefault("ResourceConfig", {})
    if not resources.get("InstanceGroups"):
        resources.setdefault("InstanceType", "ml.m5.large")
        resources.setdefault("InstanceCount", 1)
    _node(body, ("HyperParameters",)).update(_pairs("--hp", flags["hyperparameters"]))
    _node(body, ("Environment",)).update(_pairs("--env", flags["env"]))
    _apply_channels(body, flags)


def _apply_channels(body: dict[str, Any], flags: dict[str, Any]) -> None:
    channels: list[dict[str, Any]] = body.get("InputDataConfig") or []
    by_name = {channel.get("ChannelName"): channel for channel in channels}
    for name, url in _pairs("--channel", flags["channels"]).items():
        if name not in by_name:
            by_name[name] = {"ChannelName": name}
            channels.append(by_name[name])
        source = _node(by_name[name], ("DataSource", "S3DataSource"))
        source["S3Uri"] = url
        source.setdefault("S3DataType", "S3Prefix")
    for name in flags["manifests"]:
        source = _node(_channel(by_name, name, "--manifest"), ("DataSource", "S3DataSource"))
        source["S3DataType"] = "ManifestFile"
    _apply_content_types(by_name, flags["content_types"])
    _apply_input_modes(body, by_name, flags["input_modes"])
    if channels:
        body["InputDataConfig"] = channels


def _apply_content_types(by_name: dict[Any, dict[str, Any]], entries: tuple[str, ...]) -> None:
    """`NAME=TYPE` sets one channel's ContentType; a bare TYPE every other channel's."""
    named: dict[str, str] = {}
    for entry in entries:
        name, separator, content_type = entry.partition("=")
        if separator and _CHANNEL_NAME.match(name):
            _channel(by_name, name, "--content-type")
            named[name] = content_type
        else:
            named.update({str(other): entry for other in by_name if other not in named})
    for name, content_type in named.items():
        by_name[name]["ContentType"] = content_type


def _apply_input_modes(
    body: dict[str, Any], by_name: dict[Any, dict[str, Any]], entries: tuple[str, ...]
) -> None:
    """`NAME=MODE` sets one channel's InputMode; a bare MODE the job's TrainingInputMode."""
    for entry in entries:
        name, separator, mode = entry.partition("=")
        if separator:
            _channel(by_name, name, "--input-mode")["InputMode"] = mode
        else:
            body["AlgorithmSpecification"]["TrainingInputMode"] = entry


def _channel(by_name: dict[Any, dict[str, Any]], name: str, option: str) -> dict[str, Any]:
    if name not in by_name:
        raise click.UsageError(f"{option} {name}: no channel named {name!r} (add --channel)")
    return by_name[name]


def _node(body: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = body
    for part in path:
        node = node.setdefault(part, {})
    return node


def _pairs(option: str, entries: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for entry in entries:
        key, separator, value = entry.partition("=")
        if not separator or not key:
            raise click.UsageError(f"{option} {entry!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _show_status(transition: SecondaryStatusTransition) -> None:
    moment = time.strftime("%H:%M:%S", time.localtime(transition.start_time))
    console.print(
        f"{moment} [bold]{transition.status.value}[/] - {transition.status_message}",
        highlight=False,
    )


def _run_to_the_end(run: TrainingRun) -> TrainingOutcome:
    """Run the job in a thread; Ctrl-C asks it to stop and waits until it has."""
    results: list[TrainingOutcome] = []
    errors: list[BaseException] = []
    finished = threading.Event()

    def target() -> None:
        try:
            results.append(run.run())
        except BaseException as exc:  # re-raised below, in the main thread
            errors.append(exc)
        finally:
            finished.set()

    threading.Thread(target=target, name="training-job", daemon=True).start()
    _wait_stopping_on_interrupt(finished, run)
    if errors:
        raise errors[0]
    return results[0]


def _wait_stopping_on_interrupt(finished: threading.Event, run: TrainingRun) -> None:
    # Leaving before the run ends would orphan the algorithm's process group, so further
    # Ctrl-Cs only repeat how long the stop may take.
    while True:
        try:
            while not finished.wait(timeout=0.25):
                pass
            return
        except KeyboardInterrupt:
            run.stop.set()
            console.print(
                f"stopping: SIGTERM to the algorithm, SIGKILL after {run.stop_grace:g} s; "
                "the model it saves by then is uploaded"
            )


def _print_summary(run: TrainingRun, outcome: TrainingOutcome) -> None:
    last = outcome.secondary_status_transitions[-1]
    rows = [("secondary status", f"{last.status.value} - {last.status_message}")]
    rows.append(("model artifacts", outcome.model_artifacts_url or "-"))
    if outcome.status is JobStatus.COMPLETED:
        output_path = run.request.output_data_config.s3_output_path
        rows.append(("output data", artifact_url(output_path, run.job_name, OUTPUT_TARBALL)))
    for metric in outcome.final_metrics or []:
        rows.append((f"metric {metric['MetricName']}", f"{metric['Value']:g}"))
    rows.append(("training time", f"{_seconds_in(outcome, SecondaryStatus.TRAINING):.1f} s"))
    rows.append(("log", str(run.log_path)))
    # Lines rather than a table: URLs and paths stay whole, to copy and paste.
    console.print(f"[bold]{run.job_name}: {outcome.status.value}[/]", highlight=False)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        console.print(f"  {name:<{width}}  {value}", markup=False, highlight=False, soft_wrap=True)
    if outcome.status is JobStatus.FAILED:
        console.print(
            f"[bold red]Failed:[/] {escape(str(outcome.failure_reason))}", highlight=False
        )


def _seconds_in(outcome: TrainingOutcome, status: SecondaryStatus) -> float:
    return sum(
        (entry.end_time or entry.start_time) - entry.start_time
        for entry in outcome.secondary_status_transitions
        if entry.status is status
    )


def _exit_code(outcome: TrainingOutcome) -> int:
    """0 Completed, 1 Failed (or out of MaxRuntimeInSeconds), 130 stopped by the user."""
    if outcome.status is JobStatus.COMPLETED:
        return 0
    if outcome.status is JobStatus.STOPPED:
        stopped_by_user = outcome.secondary_status is SecondaryStatus.STOPPED
        return EXIT_STOPPED if stopped_by_user else EXIT_FAILED
    return EXIT_FAILED


if __name__ == "__main__":
    train()


@click.command()
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("quickstart"),
    show_default=True,
    help="Where the data, models and outputs go.",
)
@click.option("--items", default=3000, show_default=True, type=click.IntRange(100))
@click.option("--users", default=1500, show_default=True, type=click.IntRange(100))
def quickstart(folder: Path, items: int, users: int) -> None:
    """The seed notebook's workflow on generated data: PCA, batch transform, DBSCAN."""
    from batchform.quickstart import run_quickstart
    from batchform.service import Service

    service = Service()
    service.start()
    started = time.monotonic()
    try:
        run_quickstart(service, folder.absolute(), _say, items=items, users=users)
    except BatchformError as exc:
        console.print(f"[red]quickstart failed:[/red] {escape(str(exc))}")
        sys.exit(EXIT_FAILED)
    finally:
        service.close()
    console.print(f"done in {time.monotonic() - started:.0f} s; everything is under {folder}/")


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)
