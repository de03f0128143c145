"""CloudWatch Logs' read operations, answered from batchform's job log files.

The sagemaker SDK (`wait(logs=True)`, `logs_for_job`), `aws logs` and boto3 users read a
job's log through DescribeLogStreams, GetLogEvents and FilterLogEvents. Each job's file
(see `batchform.jobs.logs`) holds its streams `data-log` and `instance-N`, which CloudWatch
names `<job>/data-log` and `<job>/instance-N`. Every operation is a function of the decoded
request body and a `LogLocator`; errors are `LogsError`s carrying CloudWatch's codes.

Pagination tokens hold byte offsets into the file, so a token stays valid while the file
grows: polling GetLogEvents with the last `nextForwardToken` returns exactly the lines
appended since, which is how clients follow a running job. The files are read by
`batchform.jobs.logreader`; requests are checked and tokens made by
`batchform.server.logrequest`, and FilterLogEvents' stream choice and `filterPattern`
(plain-text syntax only) are in `batchform.server.logfilters`. `interleaved` is accepted
and ignored, as CloudWatch now does.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from batchform.jobs.logreader import (
    LogLine,
    complete_end,
    file_size,
    open_log,
    read_lines,
    stream_spans,
)
from batchform.jobs.logs import TRAINING_LOG_GROUP, TRANSFORM_LOG_GROUP, LogEvent
from batchform.server.logfilters import message_filter, stream_selection
from batchform.server.logrequest import (
    BACKWARD,
    BAD_TOKEN,
    FORWARD,
    Catalog,
    JobLister,
    LogLocator,
    LogsError,
    arn_group,
    bool_param,
    choice_param,
    group_name,
    int_param,
    invalid,
    json_token,
    paginate,
    position_token,
    read_json_token,
    read_position_token,
    str_param,
    time_window,
    with_token,
)

__all__ = [
    "LOG_OPERATIONS",
    "SAGEMAKER_LOG_GROUPS",
    "TRAINING_LOG_GROUP",
    "TRANSFORM_LOG_GROUP",
    "JobLister",
    "LogLocator",
    "LogOperation",
    "LogsError",
    "log_operations",
]

LogOperation = Callable[[dict[str, Any], LogLocator], dict[str, Any]]

SAGEMAKER_LOG_GROUPS = (TRAINING_LOG_GROUP, TRANSFORM_LOG_GROUP)

_MAX_EVENTS = 10_000
_MAX_PAGE_BYTES = 1_048_576
_EVENT_OVERHEAD = 26  # CloudWatch sizes an event as its UTF-8 message plus 26 bytes


# Pages of events ------------------------------------------------------------------------


def _resolve(file: BinaryIO, forward: bool, offset: int | None) -> int:
    """Where a read starts: the token's offset, else the head or the last complete line."""
    if offset is None:
        return 0 if forward else complete_end(file)
    if offset > file_size(file):
        raise invalid(BAD_TOKEN)  # made for another (since replaced) file
    return offset


def _take(
    lines: Iterable[LogLine],
    keep: Callable[[LogLine], bool],
    limit: int,
    cursor: dict[str, int],
    forward: bool,
) -> tuple[list[LogLine], bool]:
    """Up to `limit` kept lines within 1 MB, and whether more were found.

    `cursor` (job → offset) moves past each line consumed, kept or not, so a token made
    from it resumes exactly after this page.
    """
    taken: list[LogLine] = []
    size = 0
    for line in lines:
        if keep(line):
            size += len(line.event.message.encode()) + _EVENT_OVERHEAD
            if len(taken) == limit or (taken and size > _MAX_PAGE_BYTES):
                return taken, True
            taken.append(line)
        cursor[line.job] = line.end if forward else line.start
    return taken, False


# Operations -----------------------------------------------------------------------------


def _describe_log_groups(
    body: dict[str, Any], _locate: LogLocator, catalog: Catalog
) -> dict[str, Any]:
    prefix = str_param(body, "logGroupNamePrefix")
    pattern = str_param(body, "logGroupNamePattern", empty_ok=True)
    if prefix and pattern:
        raise invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive")
    wanted = {arn_group(str(name)) for name in body.get("logGroupIdentifiers") or ()}
    names = [
        group
        for group in catalog.groups
        if group.startswith(prefix) and pattern in group and (not wanted or group in wanted)
    ]
    page, token = paginate([g for g in names if catalog.has_group(g)], _name_key, body, False)
    # Sizes and metric filters do not apply; CloudWatch reports zero for both.
    groups = [
        {"logGroupName": g, "metricFilterCount": 0, "storedBytes": 0, "logGroupClass": "STANDARD"}
        for g in page
    ]
    return with_token({"logGroups": groups}, token)


def _name_key(name: str) -> list[Any]:
    return [name]


def _describe_log_streams(
    body: dict[str, Any], locate: LogLocator, catalog: Catalog
) -> dict[str, Any]:
    group, prefix = group_name(body), str_param(body, "logStreamNamePrefix")
    by_time = choice_param(body, "orderBy", ("LogStreamName", "LastEventTime")) == "LastEventTime"
    if by_time and prefix:
        raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
    streams = [
        _log_stream(f"{job}/{stream}", span)
        for job, path in catalog.jobs(group, prefix, locate)
        for stream, span in stream_spans(path).items()
        if f"{job}/{stream}".startswith(prefix)
    ]
    key = _time_key if by_time else _stream_key
    page, token = paginate(streams, key, body, bool_param(body, "descending", False))
    return with_token({"logStreams": page}, token)


def _log_stream(name: str, span: tuple[int, int]) -> dict[str, Any]:
    # A stream is created by its first event, and events arrive as they are written.
    # storedBytes is always zero in CloudWatch since 2019.
    first, last = span
    return {
        "logStreamName": name,
        "creationTime": first,
        "firstEventTimestamp": first,
        "lastEventTimestamp": last,
        "lastIngestionTime": last,
        "storedBytes": 0,
    }


def _stream_key(stream: dict[str, Any]) -> list[Any]:
    return [stream["logStreamName"]]


def _time_key(stream: dict[str, Any]) -> list[Any]:
    return [stream["lastEventTimestamp"], stream["logStreamName"]]


def _get_log_events(body: dict[str, Any], locate: LogLocator, catalog: Catalog) -> dict[str, Any]:
    group, name = group_name(body), str_param(body, "logStreamName")
    if not name:
        raise invalid(
            "1 validation error detected: Value null at 'logStreamName' failed to "
            "satisfy constraint: Member must not be null"
        )
    path, stream = catalog.stream_file(group, name, locate)
    limit, keep = int_param(body, "limit", _MAX_EVENTS, 1, _MAX_EVENTS), _in_stream(stream, body)
    forward, offset = bool_param(body, "startFromHead", False), None
    if "nextToken" in body:  # the token's direction wins over startFromHead
        forward, offset = read_position_token(body["nextToken"], f"{group}\n{name}")
    with open_log(path) as file:
        begin = _resolve(file, forward, offset)
        cursor = {"": begin}
        taken, _ = _take(read_lines(file, forward, begin), keep, limit, cursor, forward)
    return _events_page(taken, forward, begin, cursor[""], f"{group}\n{name}")


def _in_stream(stream: str, body: Mapping[str, Any]) -> Callable[[LogLine], bool]:
    inside = time_window(body, False)
    return lambda line: line.event.stream == stream and inside(line.event)


def _events_page(
    taken: list[LogLine], forward: bool, begin: int, end: int, scope: str
) -> dict[str, Any]:
    """A page read forward over [begin, end) or backward over [end, begin), oldest first.

    The forward token points past the page, the backward one before it; at either end of
    the stream the token passed in comes back unchanged, which ends clients' loops.
    """
    if forward:
        events, ahead, behind = taken, end, taken[0].start if taken else begin
    else:
        events, ahead, behind = taken[::-1], begin, end
    return {
        "events": [_output_event(line.event) for line in events],
        "nextForwardToken": position_token(True, ahead, scope),
        "nextBackwardToken": position_token(False, behind, scope),
    }


def _output_event(event: LogEvent) -> dict[str, Any]:
    # Lines reach the file as they are written: ingestion time is the event's own.
    return {
        "timestamp": event.timestamp_ms,
        "message": event.message,
        "ingestionTime": event.timestamp_ms,
    }


def _filter_log_events(
    body: dict[str, Any], locate: LogLocator, catalog: Catalog
) -> dict[str, Any]:
    group = group_name(body)
    sources = stream_selection(body, group, locate, catalog)
    limit = int_param(body, "limit", _MAX_EVENTS, 1, _MAX_EVENTS)
    inside = time_window(body, True)
    matches = message_filter(str_param(body, "filterPattern", empty_ok=True))
    forward, positions = bool_param(body, "startFromHead", True), dict[str, int]()
    if "nextToken" in body:  # the token's direction wins over startFromHead
        forward, positions = _read_filter_token(body["nextToken"])

    def keep(line: LogLine) -> bool:
        event = line.event
        return sources[line.job][1](event.stream) and inside(event) and matches(event.message)

    paths = {job: path for job, (path, _) in sources.items()}
    taken, cursor = _merged_page(paths, forward, positions, keep, limit)
    answer = {"events": [_filtered_event(line) for line in taken], "searchedLogStreams": []}
    token = json_token({"d": FORWARD if forward else BACKWARD, "p": cursor}) if cursor else None
    return with_token(answer, token)


def _merged_page(
    paths: Mapping[str, Path],
    forward: bool,
    positions: Mapping[str, int],
    keep: Callable[[LogLine], bool],
    limit: int,
) -> tuple[list[LogLine], dict[str, int] | None]:
    """Kept lines of all files in time order (newest first backward), and where each file's
    reading stopped when there is more to read (else None)."""
    with contextlib.ExitStack() as stack:
        cursor: dict[str, int] = {}
        streams = []
        for job, path in paths.items():
            file = stack.enter_context(open_log(path))
            cursor[job] = _resolve(file, forward, positions.get(job))
            streams.append(read_lines(file, forward, cursor[job], job))
        merged = heapq.merge(*streams, key=_timestamp, reverse=not forward)
        taken, more = _take(merged, keep, limit, cursor, forward)
    return taken, cursor if more else None


def _timestamp(line: LogLine) -> int:
    return line.event.timestamp_ms


def _read_filter_token(token: Any) -> tuple[bool, dict[str, int]]:
    value = read_json_token(token)
    direction = value.get("d") if isinstance(value, dict) else None
    positions = value.get("p") if isinstance(value, dict) else None
    if direction not in (FORWARD, BACKWARD) or not isinstance(positions, dict):
        raise invalid(BAD_TOKEN)
    if not all(isinstance(at, int) and at >= 0 for at in positions.values()):
        raise invalid(BAD_TOKEN)
    return direction == FORWARD, positions


def _filtered_event(line: LogLine) -> dict[str, Any]:
    # eventId must be stable across calls (`aws logs tail --follow` dedups by it): the
    # job's name (hashed) and the line's offset identify it.
    event_id = f"{zlib.crc32(line.job.encode()):010d}{line.start:020d}"
    return {
        "logStreamName": f"{line.job}/{line.event.stream}",
        **_output_event(line.event),
        "eventId": event_id,
    }


def log_operations(
    jobs_in_group: JobLister | None = None, groups: Sequence[str] = SAGEMAKER_LOG_GROUPS
) -> Mapping[str, LogOperation]:
    """The operations, by CloudWatch name; each takes the request body and a locator.

    `jobs_in_group` lets DescribeLogStreams and FilterLogEvents list a group's jobs (without
    it, a request must name a job by its stream prefix) and decides which groups exist;
    without it, `groups` does. DescribeLogGroups lists those of `groups` that exist.
    """
    catalog = Catalog(jobs_in_group, tuple(groups))
    operations = {
        "DescribeLogGroups": _describe_log_groups,
        "DescribeLogStreams": _describe_log_streams,
        "GetLogEvents": _get_log_events,
        "FilterLogEvents": _filter_log_events,
    }
    bound = {name: functools.partial(op, catalog=catalog) for name, op in operations.items()}
    return MappingProxyType(bound)


LOG_OPERATIONS: Mapping[str, LogOperation] = log_operations()
"""The operations with no job listing: the SageMaker groups, jobs named by stream prefix."""
