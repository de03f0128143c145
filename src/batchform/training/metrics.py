"""Metrics a training algorithm prints, found as SageMaker finds them.

`AlgorithmSpecification.MetricDefinitions` pairs a metric name with a regular expression
whose first group is the value; SageMaker scans the algorithm's log for them, and
DescribeTrainingJob's FinalMetricDataList holds each metric's last value.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from batchform.errors import ConfigurationError
from batchform.spec.training import MetricDefinition


class MetricScanner:
    """Feed it the algorithm's output lines; `final()` is FinalMetricDataList."""

    def __init__(self, definitions: list[tuple[str, re.Pattern[str]]]) -> None:
        self._definitions = definitions
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, float]] = {}

    def __call__(self, line: str) -> None:
        for name, pattern in self._definitions:
            match = pattern.search(line)
            value = _number(match.group(1) if match and pattern.groups else None)
            if value is not None:
                with self._lock:
                    self._latest[name] = (value, time.time())

    def final(self) -> list[dict[str, Any]] | None:
        if not self._definitions:
            return None
        with self._lock:
            latest = dict(self._latest)
        return [
            {"MetricName": name, "Value": value, "Timestamp": stamp}
            for name, (value, stamp) in latest.items()
        ]


def metric_scanner(definitions: list[MetricDefinition] | None) -> MetricScanner:
    """The scanner for a job's MetricDefinitions (none: it finds nothing)."""
    compiled = []
    for definition in definitions or []:
        try:
            compiled.append((definition.name, re.compile(definition.regex)))
        except re.error as exc:
            raise ConfigurationError(
                f"MetricDefinitions {definition.name!r}: invalid Regex {definition.regex!r}: {exc}"
            ) from exc
    return MetricScanner(compiled)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
