"""Shared request pieces and the translation of pydantic errors into SageMaker's words."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_pascal

from batchform.errors import SpecValidationError

#: SageMaker's pattern for job, model and endpoint names.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"

ResourceName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=NAME_PATTERN)]
EnvironmentKey = Annotated[
    str, StringConstraints(max_length=1024, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
]
EnvironmentValue = Annotated[str, StringConstraints(max_length=10240)]
Environment = Annotated[dict[EnvironmentKey, EnvironmentValue], Field(max_length=100)]


class Request(BaseModel):
    """Base of every request shape.

    Python code uses snake_case attributes; the wire and spec files use SageMaker's
    PascalCase names (the aliases). Unknown fields are rejected so typos surface.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_pascal
    )

    def cross_field_problems(self) -> list[tuple[str, str, object]]:
        """Rules that involve several fields, as (field, rule, value); none by default."""
        return []

    def to_request(self) -> dict[str, Any]:
        """The request body as SageMaker would accept it (unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Tag(Request):
    key: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    value: Annotated[str, StringConstraints(max_length=256)] = ""


RequestT = TypeVar("RequestT", bound=Request)


def parse_request(shape: type[RequestT], body: Any) -> RequestT:
    """Validate `body` as `shape`, raising SpecValidationError in SageMaker's wording."""
    try:
        request = shape.model_validate(body)
    except ValidationError as exc:
        raise SpecValidationError([_problem(error) for error in exc.errors()]) from exc
    problems = request.cross_field_problems()
    if problems:
        raise SpecValidationError(problems)
    return request


def _problem(error: Any) -> tuple[str, str, object]:
    location = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    field = ".".join(_lower_first(part) for part in location) or "request"
    # A missing member has no value of its own; SageMaker shows it as null.
    value = None if error["type"] == "missing" else error.get("input")
    return field, _rule(error), value


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _rule(error: Any) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    rules = {
        "greater_than_equal": "Member must have value greater than or equal to {ge}",
        "less_than_equal": "Member must have value less than or equal to {le}",
        "string_too_long": "Member must have length less than or equal to {max_length}",
        "string_too_short": "Member must have length greater than or equal to {min_length}",
        "too_long": "Member must have length less than or equal to {max_length}",
        "too_short": "Member must have length greater than or equal to {min_length}",
        "string_pattern_mismatch": "Member must satisfy regular expression pattern: {pattern}",
        "enum": "Member must satisfy enum value set: [{expected}]",
        "literal_error": "Member must satisfy enum value set: [{expected}]",
        "missing": "Member must not be null",
        "extra_forbidden": "Member is not a known field of this request",
    }
    if "expected" in context:
        context = {"expected": _enum_values(str(context["expected"]))}
    template = rules.get(kind)
    if template is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return template.format(**context)


def _enum_values(expected: str) -> str:
    """pydantic says "'A', 'B' or 'C'"; SageMaker says "[A, B, C]"."""
    return expected.replace(" or ", ", ").replace("'", "")
