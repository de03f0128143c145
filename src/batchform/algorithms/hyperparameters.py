"""Hyperparameters of the built-in algorithms, read and checked the way SageMaker does.

SageMaker passes every value as a string (`hyperparameters.json` maps names to strings),
so each parameter has a parser from text to value and a rule worded as in SageMaker's
documentation ("positive integer", "one of: regular, randomized"). Every problem is
collected before failing, so one failed job names all the fields to fix.

Names that start with an underscore are SageMaker's internal settings (`_kvstore`,
`_num_gpus`, `_tuning_objective_metric` from automatic model tuning ...): accepted and
ignored, as the built-in containers accept them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from batchform.errors import ConfigurationError

Parser = Callable[[str], object]


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its SageMaker name, how its text is read, and its rule."""

    name: str
    parse: Parser  # raises ValueError when the text breaks the rule
    rule: str
    default: str | None = None  # None: required

    @property
    def required(self) -> bool:
        return self.default is None


class HyperparameterError(ConfigurationError):
    """Some hyperparameters are missing, unknown or out of range; names every one."""

    def __init__(self, algorithm: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"Invalid hyperparameters for {algorithm}: " + "; ".join(problems))


class Hyperparameters:
    """Checked values by name, with typed getters (the parsers fixed each value's type)."""

    def __init__(self, values: Mapping[str, object], given: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.given = dict(given)  # as the job passed them, for the model's record

    def integer(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int), name
        return value

    def optional_integer(self, name: str) -> int | None:
        """An integer, or None where the job said 'auto'."""
        value = self._values[name]
        assert value is None or isinstance(value, int), name
        return value

    def number(self, name: str) -> float:
        value = self._values[name]
        assert isinstance(value, float), name
        return value

    def flag(self, name: str) -> bool:
        value = self._values[name]
        assert isinstance(value, bool), name
        return value

    def text(self, name: str) -> str:
        value = self._values[name]
        assert isinstance(value, str), name
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self._values[name]
        assert isinstance(value, tuple), name
        return value


def parse_hyperparameters(
    algorithm: str, raw: Mapping[str, object], params: Sequence[Param]
) -> Hyperparameters:
    """Check `raw` (hyperparameters.json) against `params`; raise naming every problem."""
    known = {param.name: param for param in params}
    given = {name: _as_text(value) for name, value in raw.items() if not name.startswith("_")}
    problems = [_unknown(name, known) for name in given if name not in known]
    values: dict[str, object] = {}
    for param in params:
        text = given.get(param.name, param.default)
        if text is None:
            problems.append(f"{param.name} is required ({param.rule})")
            continue
        try:
            values[param.name] = param.parse(text.strip())
        except ValueError:
            problems.append(f"{param.name}={text!r} is not valid: expected {param.rule}")
    if problems:
        raise HyperparameterError(algorithm, problems)
    return Hyperparameters(values, given)


def _as_text(value: object) -> str:
    # The runner writes strings; a hand-written file may hold JSON numbers or booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _unknown(name: str, known: Mapping[str, Param]) -> str:
    return f"{name} is not a hyperparameter of this algorithm (supported: {', '.join(known)})"


# --- parsers ----------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def non_negative_int_or_minus_one(text: str) -> int:
    value = int(text)
    if value < -1:
        raise ValueError(text)
    return value


def positive_int_or_auto(text: str) -> int | None:
    return None if text.lower() == "auto" else positive_int(text)


def boolean(text: str) -> bool:
    # The SageMaker SDK writes str(True) == 'True'; boto3 users write 'true'.
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ValueError(text)
    return value


def one_of(*choices: str) -> Parser:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    return parse


def metric_list(*choices: str) -> Parser:
    """A JSON list of metric names (current docs), or one bare name (older docs)."""

    def parse(text: str) -> tuple[str, ...]:
        names = _json_list(text) if text.startswith("[") else [text]
        if not names or any(name not in choices for name in names):
            raise ValueError(text)
        return tuple(dict.fromkeys(names))

    return parse


def _json_list(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(text) from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(text)
    return value
