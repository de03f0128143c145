"""What every CloudWatch Logs read operation shares: reading its request and naming errors.

Parameters are checked as CloudWatch's model checks them, with its wording; pagination
tokens are shaped like CloudWatch's and refused where they were not made; `Catalog` finds
the groups, jobs and streams a request names. Every failure is a `LogsError` carrying the
code CloudWatch would answer with.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from batchform.jobs.logreader import stream_spans
from batchform.jobs.logs import LogEvent

T = TypeVar("T")

LogLocator = Callable[[str, str], Path | None]
"""(log group, job name) → the job's log file, or None: unknown group or no such job."""
JobLister = Callable[[str], Sequence[str] | None]
"""Log group → the names of its jobs, or None when the group is unknown."""

FORWARD, BACKWARD = "f", "b"  # a token's reading direction
BAD_TOKEN = "The specified nextToken is invalid."
_MAX_DESCRIBED = 50


class LogsError(Exception):
    """An error CloudWatch would answer: botocore raises it as `ClientError` with `code`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def no_group() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log group does not exist.")


def no_stream() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log stream does not exist.")


# Tokens ---------------------------------------------------------------------------------


def _scope_tag(scope: str) -> str:
    return f"{zlib.crc32(scope.encode()):08x}"


def position_token(forward: bool, offset: int, scope: str) -> str:
    """`f/<offset>/<stream tag>`, shaped like CloudWatch's; tied to one stream."""
    return f"{FORWARD if forward else BACKWARD}/{offset:020d}/{_scope_tag(scope)}"


_POSITION_TOKEN = re.compile(r"([fb])/(\d{1,20})/([0-9a-f]{8})")


def read_position_token(token: Any, scope: str) -> tuple[bool, int]:
    match = _POSITION_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None or match[3] != _scope_tag(scope):
        raise invalid(BAD_TOKEN)
    return match[1] == FORWARD, int(match[2])


def json_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def read_json_token(token: Any) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (AttributeError, ValueError) as exc:  # binascii and JSON errors are ValueErrors
        raise invalid(BAD_TOKEN) from exc


def with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    return answer if token is None else {**answer, "nextToken": token}


# Request parameters ---------------------------------------------------------------------


def constraint(name: str, value: Any, rule: str) -> LogsError:
    # CloudWatch's own wording for a value its model rejects.
    return invalid(
        f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
        f"constraint: Member must {rule}"
    )


def str_param(body: Mapping[str, Any], name: str, empty_ok: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (name in body and not value and not empty_ok):
        raise constraint(name, value, "have length greater than or equal to 1")
    return value


def int_param(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise constraint(name, value, f"have value between {low} and {high}")
    return value


def _time_param(body: Mapping[str, Any], name: str) -> int | None:
    return int_param(body, name, 0, 0, 2**63 - 1) if body.get(name) is not None else None


def bool_param(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise constraint(name, value, "be a boolean")
    return value


def choice_param(body: Mapping[str, Any], name: str, choices: Sequence[str]) -> str:
    value = body.get(name, choices[0])
    if value not in choices:
        raise constraint(name, value, f"satisfy enum value set: [{', '.join(choices)}]")
    return str(value)


def group_name(body: Mapping[str, Any]) -> str:
    """logGroupName, or logGroupIdentifier as a name or an ARN; exactly one of them."""
    if "logGroupName" in body and "logGroupIdentifier" in body:
        raise invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if "logGroupName" not in body and "logGroupIdentifier" not in body:
        raise invalid("Either logGroupName or logGroupIdentifier must be specified.")
    if "logGroupName" in body:
        return str_param(body, "logGroupName")
    return arn_group(str_param(body, "logGroupIdentifier"))


def arn_group(identifier: str) -> str:
    if not identifier.startswith("arn:"):
        return identifier
    parts = identifier.split(":", 6)  # arn:aws:logs:<region>:<account>:log-group:<name>[:*]
    if len(parts) < 7 or parts[5] != "log-group":
        raise constraint("logGroupIdentifier", identifier, "be a log group name or ARN")
    return parts[6].removesuffix(":*")


def time_window(body: Mapping[str, Any], end_included: bool) -> Callable[[LogEvent], bool]:
    """startTime is inclusive everywhere; endTime only in FilterLogEvents (as CloudWatch)."""
    start, end = _time_param(body, "startTime"), _time_param(body, "endTime")
    low = 0 if start is None else start
    high = 2**63 if end is None else end + int(end_included)
    return lambda event: low <= event.timestamp_ms < high


def paginate(
    items: list[T], key: Callable[[T], list[Any]], body: Mapping[str, Any], descending: bool
) -> tuple[list[T], str | None]:
    """One page of `items` (sorted by `key`); the token names the last item, not an index,
    so streams appearing between calls neither repeat nor skip one."""
    limit = int_param(body, "limit", _MAX_DESCRIBED, 1, _MAX_DESCRIBED)
    items = sorted(items, key=key, reverse=descending)
    if "nextToken" in body:
        after = read_json_token(body["nextToken"])
        if not isinstance(after, list) or not _comparable(after, key(items[0]) if items else []):
            raise invalid(BAD_TOKEN)
        items = [item for item in items if (key(item) < after if descending else key(item) > after)]
    more = len(items) > limit
    return items[:limit], json_token(key(items[limit - 1])) if more else None


def _comparable(token: list[Any], sample: list[Any]) -> bool:
    return not sample or [type(part) for part in token] == [type(part) for part in sample]


# Which jobs and streams a request names -------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """What the locator cannot say: which groups exist and which jobs a group holds."""

    jobs_in_group: JobLister | None
    groups: Sequence[str]

    def has_group(self, group: str) -> bool:
        if self.jobs_in_group is not None:
            return self.jobs_in_group(group) is not None
        return group in self.groups

    def jobs(self, group: str, prefix: str, locate: LogLocator) -> list[tuple[str, Path]]:
        """Jobs whose streams may start with `prefix`, with their files, by name.

        A prefix holding '/' names one job; a shorter one matches job names when the
        group's jobs can be listed, else it is taken as a whole job name (the SDK's
        LogStreamer passes the bare job name). No prefix and no lister: no jobs.
        """
        if "/" in prefix or self.jobs_in_group is None:
            names = [prefix.partition("/")[0]] if prefix else []
        else:
            names = [job for job in self.jobs_in_group(group) or () if job.startswith(prefix)]
        found = [(job, locate(group, job)) for job in sorted(set(names))]
        located = [(job, path) for job, path in found if path is not None]
        if not located and not self.has_group(group):
            raise no_group()
        return located

    def stream_file(self, group: str, name: str, locate: LogLocator) -> tuple[Path, str]:
        """The file holding stream `<job>/<stream>`, and the stream's name in it."""
        job, _, stream = name.partition("/")
        path = locate(group, job) if job else None
        if path is None and not self.has_group(group):
            raise no_group()
        if path is None or stream not in stream_spans(path):
            raise no_stream()
        return path, stream
