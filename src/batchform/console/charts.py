"""Small line charts drawn as SVG by the templates: the geometry is computed here.

A chart is a few polylines (a gap where a value is missing, e.g. no invocation in an
interval) scaled into a fixed view box, with its latest value and scale as text, so
it reads without the picture too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchform.console.format import MISSING

WIDTH = 320
HEIGHT = 96
PAD = 4


@dataclass(frozen=True)
class Chart:
    ident: str
    title: str
    segments: tuple[str, ...]  # SVG polyline `points` attributes
    latest: str  # the last value, formatted
    top: str  # the value at the top of the chart, formatted
    span: str  # the time the chart covers, e.g. "2m 10s"

    @property
    def empty(self) -> bool:
        return not self.segments

    @property
    def description(self) -> str:
        if self.empty:
            return f"{self.title}: no samples yet"
        return f"{self.title} over the last {self.span}: now {self.latest}, peak {self.top}"


def line_chart(
    ident: str,
    title: str,
    samples: Sequence[tuple[float, float | None]],
    show: Callable[[float], str],
    span: Callable[[float], str],
) -> Chart:
    """`samples` are (time, value) in time order; value None breaks the line."""
    known = [value for _, value in samples if value is not None]
    if len(samples) < 1 or not known:
        return Chart(ident, title, (), MISSING, MISSING, MISSING)
    start, end = samples[0][0], samples[-1][0]
    top = max(known) or 1.0
    width = end - start or 1.0
    segments: list[str] = []
    current: list[str] = []
    for at, value in samples:
        if value is None:
            _flush(segments, current)
            continue
        x = PAD + (at - start) / width * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - value / top * (HEIGHT - 2 * PAD)
        current.append(f"{x:.1f},{y:.1f}")
    _flush(segments, current)
    latest = next((value for _, value in reversed(samples) if value is not None), 0.0)
    return Chart(ident, title, tuple(segments), show(latest), show(max(known)), span(end - start))


def _flush(segments: list[str], current: list[str]) -> None:
    if len(current) == 1:  # a lone point still shows: a short flat tick
        x, y = current[0].split(",")
        current.append(f"{float(x) + 2:.1f},{y}")
    if current:
        segments.append(" ".join(current))
    current.clear()
