"""Which DataProcessing settings SageMaker accepts, and the media types it understands.

SageMaker's rules (developer guide, "Associate Prediction Results with Input Records"):
ContentType and Accept must be text/csv, application/json or application/jsonlines;
text/csv needs SplitType and AssembleWith Line; CSV rows can only be filtered by index.
A rule only applies to the side DataProcessing touches: an InputFilter alone never reads
the model's output, an OutputFilter without a join never reads the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchform.errors import SpecValidationError
from batchform.records.jsonpath import JsonPath, compile_path
from batchform.spec.enums import AssembleWith, JoinSource, SplitType

if TYPE_CHECKING:
    from batchform.spec.transform import CreateTransformJobRequest, DataProcessing

CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
SUPPORTED_MEDIA_TYPES = (CSV, JSON, JSON_LINES)

INPUT_FILTER_FIELD = "dataProcessing.inputFilter"
OUTPUT_FILTER_FIELD = "dataProcessing.outputFilter"

Problem = tuple[str, str, object]

_MEDIA_TYPES_RULE = f"Member must be one of [{', '.join(SUPPORTED_MEDIA_TYPES)}]"
_CSV_FILTER_RULE = (
    "JSONPath for text/csv records may only select columns by index or range, "
    "such as $[1:] or $[0,-1]"
)


def media_type(value: str | None) -> str | None:
    """`Text/CSV; charset=utf-8` → `text/csv`: parameters and case do not matter."""
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


def is_noop_filter(expression: str | None) -> bool:
    """SageMaker treats an absent, empty or `$` filter as "keep everything"."""
    return expression is None or expression.strip() in ("", "$")


def data_processing_problems(request: CreateTransformJobRequest) -> list[Problem]:
    """Every DataProcessing problem of a CreateTransformJob request, in SageMaker's words."""
    if request.data_processing is None:
        return []
    return combination_problems(
        request.data_processing,
        content_type=request.transform_input.content_type,
        accept=request.transform_output.accept,
        split_type=request.transform_input.split_type,
        assemble_with=request.transform_output.assemble_with,
    )


def combination_problems(
    data_processing: DataProcessing,
    *,
    content_type: str | None,
    accept: str | None,
    split_type: SplitType,
    assemble_with: AssembleWith | None,
) -> list[Problem]:
    """Problems of `data_processing` with these settings; `assemble_with` None skips its rule."""
    problems, filters = _compile_filters(data_processing)
    joins = data_processing.join_source is JoinSource.INPUT
    reads_input = joins or filters[0] is not None
    reads_output = joins or filters[1] is not None
    if reads_input:
        problems += _input_problems(content_type, split_type)
    if reads_output:
        problems += _output_problems(accept, assemble_with)
    problems += _csv_filter_problems(filters, joins, content_type, accept)
    return problems


def _compile_filters(
    data_processing: DataProcessing,
) -> tuple[list[Problem], tuple[JsonPath | None, JsonPath | None]]:
    problems: list[Problem] = []
    compiled: list[JsonPath | None] = []
    for field, expression in (
        (INPUT_FILTER_FIELD, data_processing.input_filter),
        (OUTPUT_FILTER_FIELD, data_processing.output_filter),
    ):
        try:
            compiled.append(compile_filter(expression, field))
        except SpecValidationError as exc:
            problems += exc.problems
            compiled.append(None)
    return problems, (compiled[0], compiled[1])


def compile_filter(expression: str | None, field: str) -> JsonPath | None:
    """The compiled filter, or None when it keeps everything."""
    if expression is None or is_noop_filter(expression):
        return None
    return compile_path(expression.strip(), field)


def _input_problems(content_type: str | None, split_type: SplitType) -> list[Problem]:
    kind = media_type(content_type)
    if kind not in SUPPORTED_MEDIA_TYPES:
        rule = f"{_MEDIA_TYPES_RULE} when DataProcessing filters or joins input records"
        return [("transformInput.contentType", rule, content_type)]
    if split_type not in (SplitType.LINE, SplitType.NONE):
        rule = "Member must satisfy enum value set: [Line, None] when DataProcessing is used"
        return [("transformInput.splitType", rule, split_type.value)]
    if kind == CSV and split_type is not SplitType.LINE:
        rule = "Member must be Line for text/csv input when DataProcessing is used"
        return [("transformInput.splitType", rule, split_type.value)]
    return []


def _output_problems(accept: str | None, assemble_with: AssembleWith | None) -> list[Problem]:
    kind = media_type(accept)
    if kind not in SUPPORTED_MEDIA_TYPES:
        rule = f"{_MEDIA_TYPES_RULE} when DataProcessing joins or filters output records"
        return [("transformOutput.accept", rule, accept)]
    if kind == CSV and assemble_with is AssembleWith.NONE:
        rule = "Member must be Line for text/csv output when DataProcessing is used"
        return [("transformOutput.assembleWith", rule, assemble_with.value)]
    return []


def _csv_filter_problems(
    filters: tuple[JsonPath | None, JsonPath | None],
    joins: bool,
    content_type: str | None,
    accept: str | None,
) -> list[Problem]:
    """Name-based paths cannot pick CSV columns; SageMaker fails such a job."""
    input_filter, output_filter = filters
    # The joined record takes the input's format; without a join it is the model's output.
    output_kind = media_type(content_type) if joins else media_type(accept)
    problems: list[Problem] = []
    for field, path, kind in (
        (INPUT_FILTER_FIELD, input_filter, media_type(content_type)),
        (OUTPUT_FILTER_FIELD, output_filter, output_kind),
    ):
        if path is not None and not path.selects_fields and kind == CSV:
            problems.append((field, _CSV_FILTER_RULE, path.expression))
    return problems
