"""How the console writes numbers, sizes, durations and times (Jinja filters)."""

from __future__ import annotations

import time
from typing import Any

#: What a missing value shows as (an en dash).
MISSING = "\u2013"

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: Any) -> str:
    if value is None:
        return MISSING
    amount = float(value)
    for unit in _UNITS:
        if abs(amount) < 1024 or unit == _UNITS[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def count(value: Any) -> str:
    return MISSING if value is None else f"{int(value):,}"


def number(value: Any, digits: int = 1) -> str:
    return MISSING if value is None else f"{float(value):,.{digits}f}"


def duration(seconds: Any) -> str:
    if seconds is None:
        return MISSING
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def timestamp(epoch: Any) -> str:
    """UTC, to the second: what the API's times are, readable."""
    if epoch is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))


def iso(epoch: Any) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(epoch)))


def percent(fraction: Any) -> str:
    return MISSING if fraction is None else f"{float(fraction) * 100:.0f}%"


FILTERS = {
    "size": size,
    "count": count,
    "number": number,
    "duration": duration,
    "timestamp": timestamp,
    "iso": iso,
    "percent": percent,
}
