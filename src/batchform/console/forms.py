"""The create-transform-job form: its fields, and the CreateTransformJob body it makes.

Form inputs are named by the request's own dotted paths (`TransformInput.SplitType`), so
a body and a form map both ways without a table per field, and the server's validation
problems (`transformInput.splitType`) land beside the input they are about.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

S3_URI = "TransformInput.DataSource.S3DataSource.S3Uri"


@dataclass(frozen=True)
class Field:
    name: str  # the dotted request path
    label: str
    kind: str = "text"  # text, int, select, lines (KEY=VALUE a line), bool
    options: tuple[str, ...] = ()
    default: str = ""
    help: str = ""
    required: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[Field, ...]


SECTIONS = (
    Section(
        "Job",
        (
            Field("TransformJobName", "Job name", required=True,
                  help="Letters, digits and hyphens; unique on this server."),
            Field("ModelName", "Model", kind="select", required=True),
        ),
    ),
    Section(
        "Input",
        (
            Field("TransformInput.DataSource.S3DataSource.S3DataType", "Input type",
                  kind="select", options=("S3Prefix", "ManifestFile"), default="S3Prefix",
                  help="A prefix (every object whose key starts with it) or a manifest file."),
            Field(S3_URI, "Input location", required=True,
                  help="s3://bucket/prefix, a local path or file:// URL, or a manifest."),
            Field("TransformInput.ContentType", "Content type", default="text/csv"),
            Field("TransformInput.SplitType", "Split type", kind="select",
                  options=("None", "Line", "RecordIO", "TFRecord"), default="Line"),
            Field("TransformInput.CompressionType", "Compression", kind="select",
                  options=("None", "Gzip"), default="None"),
        ),
    ),
    Section(
        "Output",
        (
            Field("TransformOutput.S3OutputPath", "Output location", required=True,
                  help="Each input's results go to <output>/<key>.out."),
            Field("TransformOutput.Accept", "Accept"),
            Field("TransformOutput.AssembleWith", "Assemble with", kind="select",
                  options=("None", "Line"), default="Line"),
            Field("TransformOutput.KmsKeyId", "Output KMS key"),
        ),
    ),
    Section(
        "Resources and batching",
        (
            Field("TransformResources.InstanceType", "Instance type", default="ml.m5.large"),
            Field("TransformResources.InstanceCount", "Instance count", kind="int", default="1"),
            Field("TransformResources.VolumeKmsKeyId", "Volume KMS key"),
            Field("MaxConcurrentTransforms", "Max concurrent transforms", kind="int",
                  help="Requests in flight per instance; empty lets the model say (else 1)."),
            Field("MaxPayloadInMB", "Max payload (MB)", kind="int", default="6"),
            Field("BatchStrategy", "Batch strategy", kind="select",
                  options=("", "MultiRecord", "SingleRecord"), default="MultiRecord"),
            Field("ModelClientConfig.InvocationsTimeoutInSeconds", "Invocation timeout (s)",
                  kind="int", default="600"),
            Field("ModelClientConfig.InvocationsMaxRetries", "Invocation retries", kind="int",
                  default="3"),
        ),
    ),
    Section(
        "Data processing",
        (
            Field("DataProcessing.InputFilter", "Input filter", help="JSONPath, e.g. $[1:]"),
            Field("DataProcessing.JoinSource", "Join source", kind="select",
                  options=("None", "Input"), default="None"),
            Field("DataProcessing.OutputFilter", "Output filter"),
        ),
    ),
    Section(
        "Environment, tags and capture",
        (
            Field("Environment", "Environment", kind="lines",
                  help="KEY=VALUE, one a line; BATCHFORM_ON_ERROR=isolate isolates bad records."),
            Field("Tags", "Tags", kind="lines", help="Key=Value, one a line."),
            Field("DataCaptureConfig.DestinationS3Uri", "Data capture destination"),
            Field("DataCaptureConfig.KmsKeyId", "Data capture KMS key"),
            Field("DataCaptureConfig.GenerateInferenceId", "Generate inference id", kind="bool"),
            Field("ExperimentConfig.ExperimentName", "Experiment name"),
            Field("ExperimentConfig.TrialName", "Trial name"),
            Field("ExperimentConfig.TrialComponentDisplayName", "Trial component display name"),
            Field("ExperimentConfig.RunName", "Run name"),
        ),
    ),
)  # fmt: skip

FIELDS = {field.name: field for section in SECTIONS for field in section.fields}


def defaults(now: float | None = None) -> dict[str, str]:
    values = {name: field.default for name, field in FIELDS.items()}
    values["TransformJobName"] = time.strftime("job-%Y%m%d-%H%M%S", time.gmtime(now))
    return values


def body_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The CreateTransformJob body a filled form asks for, and what could not be read.

    Empty inputs are left out (the server's defaults apply); numbers that are not numbers
    go through as text, so the server's own message says what is wrong with them.
    """
    body: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, field in FIELDS.items():
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        value, problem = _value(field, raw)
        if problem:
            problems[name] = problem
        elif value is not None:
            _put(body, name.split("."), value)
    return body, problems


def _value(field: Field, raw: str) -> tuple[Any, str | None]:
    if field.kind == "int":
        return (int(raw), None) if raw.lstrip("-").isdigit() else (raw, None)
    if field.kind == "bool":
        return raw == "true", None
    if field.kind == "lines":
        return _pairs(field, raw)
    return raw, None


def _pairs(field: Field, raw: str) -> tuple[Any, str | None]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        key, found, value = line.partition("=")
        if not found or not key.strip():
            return None, f"Line {number} is not KEY=VALUE: {line.strip()!r}"
        pairs[key.strip()] = value.strip()
    if field.name == "Tags":
        return [{"Key": key, "Value": value} for key, value in pairs.items()], None
    return pairs, None


def _put(body: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        body = body.setdefault(part, {})
    body[path[-1]] = value


def form_from_body(body: Mapping[str, Any]) -> dict[str, str]:
    """Form values holding a request's (or a DescribeTransformJob answer's) settings."""
    values = {name: "" for name in FIELDS}
    for name, field in FIELDS.items():
        value = _get(body, name.split("."))
        if value is None:
            continue
        values[name] = _text(field, value)
    return values


def _get(body: Mapping[str, Any], path: list[str]) -> Any:
    current: Any = body
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _text(field: Field, value: Any) -> str:
    if field.kind == "bool":
        return "true" if value else "false"
    if field.name == "Tags":
        return "\n".join(f"{tag.get('Key', '')}={tag.get('Value', '')}" for tag in value)
    if field.kind == "lines":
        return "\n".join(f"{key}={item}" for key, item in dict(value).items())
    return str(value)


def clone_values(described: Mapping[str, Any], now: float | None = None) -> dict[str, str]:
    """A form to run a job again: its settings under a new name."""
    values = form_from_body(described)
    values["TransformJobName"] = f"{described['TransformJobName'][:44]}-" + time.strftime(
        "%Y%m%d-%H%M%S", time.gmtime(now)
    )
    return values


def field_for_problem(path: str) -> str | None:
    """The form input a validation problem's path (`transformInput.splitType`) is about:
    the longest input name that is the path or a parent of it; for a missing parent
    (`transformInput.dataSource`), its first required input."""
    wanted = path.lower()
    best: str | None = None
    for name in FIELDS:
        lowered = name.lower()
        if wanted == lowered or wanted.startswith(lowered + "."):
            best = name if best is None or len(name) > len(best) else best
    if best is not None:
        return best
    children = [name for name in FIELDS if name.lower().startswith(wanted + ".")]
    required = [name for name in children if FIELDS[name].required]
    found = required or children
    return found[0] if found else None
