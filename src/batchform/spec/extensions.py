"""batchform's options beyond SageMaker, carried in the job's Environment.

The CLI and SDK have flags for them; through boto3 they ride on `BATCHFORM_*` entries
of the CreateTransformJob Environment (or `batchform:*` tags), so a plain SageMaker
client can ask for them. SageMaker's behaviour stays the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ON_ERROR = "BATCHFORM_ON_ERROR"
MAX_ERRORS = "BATCHFORM_MAX_ERRORS"
SPLIT_OVER_MB = "BATCHFORM_SPLIT_OBJECTS_OVER_MB"
SPLIT_HOLD_MB = "BATCHFORM_SPLIT_HOLD_MB"
#: What a split object's later parts may hold in memory, job-wide, before they spill.
DEFAULT_SPLIT_HOLD_MB = 512
ON_ERROR_CHOICES = ("fail", "isolate")

Problem = tuple[str, str, object]


@dataclass(frozen=True)
class ErrorBudget:
    """How many bad records a job may have: a count, or a fraction of records seen."""

    count: int | None = 0
    fraction: float | None = None

    def exceeded(self, bad: int, total: int) -> bool:
        if self.fraction is not None:
            return bad > self.fraction * max(total, 1)
        return bad > (self.count or 0)

    def describe(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}% of records"
        return f"{self.count} record(s)"


@dataclass(frozen=True)
class Extensions:
    isolate: bool = False
    budget: ErrorBudget = ErrorBudget()
    #: Line-split objects larger than this are cut into byte ranges across instances.
    split_over_bytes: int | None = None
    #: Answers of parts whose turn has not come, held in memory before they spill.
    split_hold_bytes: int = DEFAULT_SPLIT_HOLD_MB * 1024 * 1024


def parse_budget(text: str) -> ErrorBudget:
    """'25' (records) or '1%' / '0.5%' (of records); ValueError names what is wrong."""
    value = text.strip()
    if value.endswith("%"):
        percent = float(value[:-1])
        if not 0 <= percent <= 100:
            raise ValueError("a percentage must be between 0% and 100%")
        return ErrorBudget(count=None, fraction=percent / 100)
    count = int(value)
    if count < 0:
        raise ValueError("a record count must not be negative")
    return ErrorBudget(count=count)


def extension_problems(environment: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    on_error = environment.get(ON_ERROR, "fail")
    if on_error not in ON_ERROR_CHOICES:
        problems.append(
            (f"environment.{ON_ERROR}", "Member must be one of [fail, isolate]", on_error)
        )
    if MAX_ERRORS in environment:
        try:
            parse_budget(environment[MAX_ERRORS])
        except ValueError as exc:
            rule = f"Member must be a record count or a percentage like 1% ({exc})"
            problems.append((f"environment.{MAX_ERRORS}", rule, environment[MAX_ERRORS]))
    split = environment.get(SPLIT_OVER_MB)
    if split is not None and not (split.isdigit() and int(split) > 0):
        problems.append(
            (
                f"environment.{SPLIT_OVER_MB}",
                "Member must be a whole number of MB greater than 0",
                split,
            )
        )
    hold = environment.get(SPLIT_HOLD_MB)
    if hold is not None and not hold.isdigit():
        problems.append(
            (f"environment.{SPLIT_HOLD_MB}", "Member must be a whole number of MB", hold)
        )
    return problems


def extensions(environment: Mapping[str, str]) -> Extensions:
    """The options of a validated request (see extension_problems)."""
    budget = parse_budget(environment[MAX_ERRORS]) if MAX_ERRORS in environment else ErrorBudget()
    split = environment.get(SPLIT_OVER_MB)
    hold = int(environment.get(SPLIT_HOLD_MB, DEFAULT_SPLIT_HOLD_MB))
    return Extensions(
        isolate=environment.get(ON_ERROR) == "isolate",
        budget=budget,
        split_over_bytes=int(split) * 1024 * 1024 if split else None,
        split_hold_bytes=hold * 1024 * 1024,
    )
