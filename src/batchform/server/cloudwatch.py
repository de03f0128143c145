"""CloudWatch Logs' read operations, answered from batchform's job log files.

The sagemaker SDK (`wait(logs=True)`, `logs_for_job`), `aws logs` and boto3 users read a
job's log through DescribeLogStreams, GetLogEvents and FilterLogEvents. Each job's file
(see `batchform.jobs.logs`) holds its streams `data-log` and `instance-N`, which CloudWatch
names `<job>/data-log` and `<job>/instance-N`. Every operation is a function of the decoded
request body and a `LogLocator`; errors are `LogsError`s carrying CloudWatch's codes.

Pagination tokens hold byte offsets into the file, so a token stays valid while the file
grows: polling GetLogEvents with the last `nextForwardToken` returns exactly the lines
appended since, which is how clients follow a running job. Files are read line by line
(backwards in blocks for the newest-first reads), never whole.

FilterLogEvents' `filterPattern` supports CloudWatch's plain-text syntax only: terms that
must all appear (`ERROR timeout`), `"quoted phrases"`, `?term` (at least one of them),
`-term` (must not appear) and `%regex%`; JSON (`{ $.x = 1 }`) and space-delimited (`[a, b]`)
patterns are refused. `interleaved` is accepted and ignored, as CloudWatch now does.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import heapq
import io
import json
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, TypeVar

from batchform.jobs.logs import LogEvent, parse_line

T = TypeVar("T")

LogLocator = Callable[[str, str], Path | None]
"""(log group, job name) → the job's log file, or None: unknown group or no such job."""
JobLister = Callable[[str], Sequence[str] | None]
"""Log group → the names of its jobs, or None when the group is unknown."""
LogOperation = Callable[[dict[str, Any], LogLocator], dict[str, Any]]

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
SAGEMAKER_LOG_GROUPS = (TRAINING_LOG_GROUP, TRANSFORM_LOG_GROUP)

_MAX_EVENTS = 10_000
_MAX_PAGE_BYTES = 1_048_576
_EVENT_OVERHEAD = 26  # CloudWatch sizes an event as its UTF-8 message plus 26 bytes
_MAX_DESCRIBED = 50
_BLOCK = 64 * 1024
_FORWARD, _BACKWARD = "f", "b"


class LogsError(Exception):
    """An error CloudWatch would answer: botocore raises it as `ClientError` with `code`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def _invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def _no_group() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log group does not exist.")


def _no_stream() -> LogsError:
    return LogsError("ResourceNotFoundException", "The specified log stream does not exist.")


_BAD_TOKEN = "The specified nextToken is invalid."


# Reading a job's file -------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    start: int  # byte offset of the line in its file
    end: int  # byte offset just past its newline
    event: LogEvent
    job: str = ""


def _open(path: Path) -> BinaryIO:
    """The file, or an empty one: a job that has not logged yet has no streams."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        return io.BytesIO()


def _line(raw: bytes, start: int, job: str) -> _Line:
    event = parse_line(raw.decode("utf-8", errors="replace"))
    return _Line(start, start + len(raw) + 1, event, job)


def _forward(file: BinaryIO, offset: int, job: str) -> Iterator[_Line]:
    """Complete lines from `offset` on; a line still being written is left for later."""
    file.seek(offset)
    for raw in file:
        if not raw.endswith(b"\n"):
            return
        yield _line(raw[:-1], offset, job)
        offset += len(raw)


def _backward(file: BinaryIO, offset: int, job: str) -> Iterator[_Line]:
    """Lines ending at or before `offset` (a line boundary), newest first."""
    base, buffer, stop = offset, b"", 0  # buffer holds bytes from base; [0, stop) unread
    while stop > 0 or base > 0:
        cut = buffer.rfind(b"\n", 0, stop - 1) if stop > 0 else -1
        if cut < 0 and base > 0:
            size = min(_BLOCK, base)
            base -= size
            file.seek(base)
            buffer, stop = file.read(size) + buffer[:stop], size + stop
            continue
        yield _line(buffer[cut + 1 : stop - 1], base + cut + 1, job)
        stop = cut + 1


def _size(file: BinaryIO) -> int:
    return file.seek(0, io.SEEK_END)


def _complete_end(file: BinaryIO) -> int:
    """Offset just past the last complete line."""
    end = _size(file)
    while end > 0:
        start = max(0, end - _BLOCK)
        file.seek(start)
        cut = file.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _resolve(file: BinaryIO, forward: bool, offset: int | None) -> int:
    """Where a read starts: the token's offset, else the head or the last complete line."""
    if offset is None:
        return 0 if forward else _complete_end(file)
    if offset > _size(file):
        raise _invalid(_BAD_TOKEN)  # made for another (since replaced) file
    return offset


def _lines(file: BinaryIO, forward: bool, offset: int, job: str = "") -> Iterator[_Line]:
    return _forward(file, offset, job) if forward else _backward(file, offset, job)


def _take(
    lines: Iterable[_Line],
    keep: Callable[[_Line], bool],
    limit: int,
    cursor: dict[str, int],
    forward: bool,
) -> tuple[list[_Line], bool]:
    """Up to `limit` kept lines within 1 MB, and whether more were found.

    `cursor` (job → offset) moves past each line consumed, kept or not, so a token made
    from it resumes exactly after this page.
    """
    taken: list[_Line] = []
    size = 0
    for line in lines:
        if keep(line):
            size += len(line.event.message.encode()) + _EVENT_OVERHEAD
            if len(taken) == limit or (taken and size > _MAX_PAGE_BYTES):
                return taken, True
            taken.append(line)
        cursor[line.job] = line.end if forward else line.start
    return taken, False


# What a file holds: its streams and their time spans, kept per file and extended as it grows


@dataclass(frozen=True)
class _Summary:
    identity: tuple[int, int]  # (device, inode): a replaced file is summarised afresh
    offset: int
    streams: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # first, last


_SUMMARIES: dict[Path, _Summary] = {}
_SUMMARIES_LOCK = threading.Lock()
_SUMMARIES_KEPT = 256


def _streams_in(path: Path) -> Mapping[str, tuple[int, int]]:
    """Stream → (first, last) event time; the SDK asks on every poll, so only new bytes
    are read."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    identity = (stat.st_dev, stat.st_ino)
    with _SUMMARIES_LOCK:
        known = _SUMMARIES.get(path)
    if known is None or known.identity != identity or known.offset > stat.st_size:
        known = _Summary(identity, 0)
    if known.offset < stat.st_size:
        known = _extend(known, path)
        _remember(path, known)
    return known.streams


def _extend(summary: _Summary, path: Path) -> _Summary:
    streams, offset = dict(summary.streams), summary.offset
    with _open(path) as file:
        for line in _forward(file, offset, ""):
            event = line.event
            streams[event.stream] = _span(streams.get(event.stream), event.timestamp_ms)
            offset = line.end
    return _Summary(summary.identity, offset, streams)


def _span(span: tuple[int, int] | None, stamp: int) -> tuple[int, int]:
    return (stamp, stamp) if span is None else (min(span[0], stamp), max(span[1], stamp))


def _remember(path: Path, summary: _Summary) -> None:
    with _SUMMARIES_LOCK:
        _SUMMARIES.pop(path, None)
        _SUMMARIES[path] = summary
        while len(_SUMMARIES) > _SUMMARIES_KEPT:
            del _SUMMARIES[next(iter(_SUMMARIES))]


# Tokens ---------------------------------------------------------------------------------


def _scope_tag(scope: str) -> str:
    return f"{zlib.crc32(scope.encode()):08x}"


def _position_token(forward: bool, offset: int, scope: str) -> str:
    """`f/<offset>/<stream tag>`, shaped like CloudWatch's; tied to one stream."""
    return f"{_FORWARD if forward else _BACKWARD}/{offset:020d}/{_scope_tag(scope)}"


_POSITION_TOKEN = re.compile(r"([fb])/(\d{1,20})/([0-9a-f]{8})")


def _read_position_token(token: Any, scope: str) -> tuple[bool, int]:
    match = _POSITION_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None or match[3] != _scope_tag(scope):
        raise _invalid(_BAD_TOKEN)
    return match[1] == _FORWARD, int(match[2])


def _json_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def _read_json_token(token: Any) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (AttributeError, ValueError) as exc:  # binascii and JSON errors are ValueErrors
        raise _invalid(_BAD_TOKEN) from exc


# Request parameters ---------------------------------------------------------------------


def _constraint(name: str, value: Any, rule: str) -> LogsError:
    # CloudWatch's own wording for a value its model rejects.
    return _invalid(
        f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
        f"constraint: Member must {rule}"
    )


def _str(body: Mapping[str, Any], name: str, empty_ok: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (name in body and not value and not empty_ok):
        raise _constraint(name, value, "have length greater than or equal to 1")
    return value


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _constraint(name, value, f"have value between {low} and {high}")
    return value


def _time(body: Mapping[str, Any], name: str) -> int | None:
    return _int(body, name, 0, 0, 2**63 - 1) if body.get(name) is not None else None


def _bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _constraint(name, value, "be a boolean")
    return value


def _choice(body: Mapping[str, Any], name: str, choices: Sequence[str]) -> str:
    value = body.get(name, choices[0])
    if value not in choices:
        raise _constraint(name, value, f"satisfy enum value set: [{', '.join(choices)}]")
    return str(value)


def _group_name(body: Mapping[str, Any]) -> str:
    """logGroupName, or logGroupIdentifier as a name or an ARN; exactly one of them."""
    if "logGroupName" in body and "logGroupIdentifier" in body:
        raise _invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if "logGroupName" not in body and "logGroupIdentifier" not in body:
        raise _invalid("Either logGroupName or logGroupIdentifier must be specified.")
    if "logGroupName" in body:
        return _str(body, "logGroupName")
    return _arn_group(_str(body, "logGroupIdentifier"))


def _arn_group(identifier: str) -> str:
    if not identifier.startswith("arn:"):
        return identifier
    parts = identifier.split(":", 6)  # arn:aws:logs:<region>:<account>:log-group:<name>[:*]
    if len(parts) < 7 or parts[5] != "log-group":
        raise _constraint("logGroupIdentifier", identifier, "be a log group name or ARN")
    return parts[6].removesuffix(":*")


def _window(body: Mapping[str, Any], end_included: bool) -> Callable[[LogEvent], bool]:
    """startTime is inclusive everywhere; endTime only in FilterLogEvents (as CloudWatch)."""
    start, end = _time(body, "startTime"), _time(body, "endTime")
    low = 0 if start is None else start
    high = 2**63 if end is None else end + int(end_included)
    return lambda event: low <= event.timestamp_ms < high


def _paginate(
    items: list[T], key: Callable[[T], list[Any]], body: Mapping[str, Any], descending: bool
) -> tuple[list[T], str | None]:
    """One page of `items` (sorted by `key`); the token names the last item, not an index,
    so streams appearing between calls neither repeat nor skip one."""
    limit = _int(body, "limit", _MAX_DESCRIBED, 1, _MAX_DESCRIBED)
    items = sorted(items, key=key, reverse=descending)
    if "nextToken" in body:
        after = _read_json_token(body["nextToken"])
        if not isinstance(after, list) or not _comparable(after, key(items[0]) if items else []):
            raise _invalid(_BAD_TOKEN)
        items = [item for item in items if (key(item) < after if descending else key(item) > after)]
    more = len(items) > limit
    return items[:limit], _json_token(key(items[limit - 1])) if more else None


def _comparable(token: list[Any], sample: list[Any]) -> bool:
    return not sample or [type(part) for part in token] == [type(part) for part in sample]


# Which jobs and streams a request names -------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
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
            raise _no_group()
        return located

    def stream_file(self, group: str, name: str, locate: LogLocator) -> tuple[Path, str]:
        """The file holding stream `<job>/<stream>`, and the stream's name in it."""
        job, _, stream = name.partition("/")
        path = locate(group, job) if job else None
        if path is None and not self.has_group(group):
            raise _no_group()
        if path is None or stream not in _streams_in(path):
            raise _no_stream()
        return path, stream


def _selection(
    body: Mapping[str, Any], group: str, locate: LogLocator, catalog: _Catalog
) -> dict[str, tuple[Path, Callable[[str], bool]]]:
    """FilterLogEvents' streams: job → (file, which of its streams)."""
    if "logStreamNames" in body and "logStreamNamePrefix" in body:
        raise _invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
    if "logStreamNames" not in body:
        prefix = _str(body, "logStreamNamePrefix")
        jobs = catalog.jobs(group, prefix, locate)
        return {job: (path, _prefixed(f"{job}/", prefix)) for job, path in jobs}
    chosen: dict[str, tuple[Path, set[str]]] = {}
    for name in _stream_names(body):
        path, stream = catalog.stream_file(group, name, locate)
        chosen.setdefault(name.partition("/")[0], (path, set()))[1].add(stream)
    return {job: (path, streams.__contains__) for job, (path, streams) in chosen.items()}


def _prefixed(job_prefix: str, prefix: str) -> Callable[[str], bool]:
    return lambda stream: (job_prefix + stream).startswith(prefix)


def _stream_names(body: Mapping[str, Any]) -> list[str]:
    names = body["logStreamNames"]
    if not isinstance(names, list) or not 1 <= len(names) <= 100:
        raise _constraint("logStreamNames", names, "have length between 1 and 100")
    if not all(isinstance(name, str) and name for name in names):
        raise _constraint("logStreamNames", names, "contain only non-empty names")
    return names


# Filter patterns ------------------------------------------------------------------------

_TERM = re.compile(r'([?-]?)(?:"([^"]*)"|%([^%]+)%|(\S+))')


def _pattern(text: str) -> Callable[[str], bool]:
    """CloudWatch's plain-text filter syntax (see the module's docstring); case-sensitive."""
    if text.strip()[:1] in ("{", "["):
        raise _invalid("batchform supports only plain-text filter patterns (terms, phrases)")
    tests: dict[str, list[Callable[[str], bool]]] = {"": [], "?": [], "-": []}
    for sign, phrase, regex, word in _TERM.findall(text):
        tests[sign].append(_regex(regex) if regex else _contains(phrase or word))
    required, optional, excluded = tests[""], tests["?"], tests["-"]
    return lambda message: (
        all(test(message) for test in required)
        and (not optional or any(test(message) for test in optional))
        and not any(test(message) for test in excluded)
    )


def _contains(term: str) -> Callable[[str], bool]:
    return lambda message: term in message


def _regex(source: str) -> Callable[[str], bool]:
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise _invalid(f"Invalid regular expression in filter pattern: {exc}") from exc
    return lambda message: compiled.search(message) is not None


# Operations -----------------------------------------------------------------------------


def _describe_log_groups(
    body: dict[str, Any], _locate: LogLocator, catalog: _Catalog
) -> dict[str, Any]:
    prefix = _str(body, "logGroupNamePrefix")
    pattern = _str(body, "logGroupNamePattern", empty_ok=True)
    if prefix and pattern:
        raise _invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive")
    wanted = {_arn_group(str(name)) for name in body.get("logGroupIdentifiers") or ()}
    names = [
        group
        for group in catalog.groups
        if group.startswith(prefix) and pattern in group and (not wanted or group in wanted)
    ]
    page, token = _paginate([g for g in names if catalog.has_group(g)], _name_key, body, False)
    # Sizes and metric filters do not apply; CloudWatch reports zero for both.
    groups = [
        {"logGroupName": g, "metricFilterCount": 0, "storedBytes": 0, "logGroupClass": "STANDARD"}
        for g in page
    ]
    return _with_token({"logGroups": groups}, token)


def _name_key(name: str) -> list[Any]:
    return [name]


def _describe_log_streams(
    body: dict[str, Any], locate: LogLocator, catalog: _Catalog
) -> dict[str, Any]:
    group, prefix = _group_name(body), _str(body, "logStreamNamePrefix")
    by_time = _choice(body, "orderBy", ("LogStreamName", "LastEventTime")) == "LastEventTime"
    if by_time and prefix:
        raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
    streams = [
        _log_stream(f"{job}/{stream}", span)
        for job, path in catalog.jobs(group, prefix, locate)
        for stream, span in _streams_in(path).items()
        if f"{job}/{stream}".startswith(prefix)
    ]
    key = _time_key if by_time else _stream_key
    page, token = _paginate(streams, key, body, _bool(body, "descending", False))
    return _with_token({"logStreams": page}, token)


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


def _with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    return answer if token is None else {**answer, "nextToken": token}


def _get_log_events(body: dict[str, Any], locate: LogLocator, catalog: _Catalog) -> dict[str, Any]:
    group, name = _group_name(body), _str(body, "logStreamName")
    if not name:
        raise _invalid(
            "1 validation error detected: Value null at 'logStreamName' failed to "
            "satisfy constraint: Member must not be null"
        )
    path, stream = catalog.stream_file(group, name, locate)
    limit, keep = _int(body, "limit", _MAX_EVENTS, 1, _MAX_EVENTS), _in_stream(stream, body)
    forward, offset = _bool(body, "startFromHead", False), None
    if "nextToken" in body:  # the token's direction wins over startFromHead
        forward, offset = _read_position_token(body["nextToken"], f"{group}\n{name}")
    with _open(path) as file:
        begin = _resolve(file, forward, offset)
        cursor = {"": begin}
        taken, _ = _take(_lines(file, forward, begin), keep, limit, cursor, forward)
    return _events_page(taken, forward, begin, cursor[""], f"{group}\n{name}")


def _in_stream(stream: str, body: Mapping[str, Any]) -> Callable[[_Line], bool]:
    inside = _window(body, False)
    return lambda line: line.event.stream == stream and inside(line.event)


def _events_page(
    taken: list[_Line], forward: bool, begin: int, end: int, scope: str
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
        "nextForwardToken": _position_token(True, ahead, scope),
        "nextBackwardToken": _position_token(False, behind, scope),
    }


def _output_event(event: LogEvent) -> dict[str, Any]:
    # Lines reach the file as they are written: ingestion time is the event's own.
    return {
        "timestamp": event.timestamp_ms,
        "message": event.message,
        "ingestionTime": event.timestamp_ms,
    }


def _filter_log_events(
    body: dict[str, Any], locate: LogLocator, catalog: _Catalog
) -> dict[str, Any]:
    group = _group_name(body)
    sources = _selection(body, group, locate, catalog)
    limit = _int(body, "limit", _MAX_EVENTS, 1, _MAX_EVENTS)
    inside, matches = _window(body, True), _pattern(_str(body, "filterPattern", empty_ok=True))
    forward, positions = _bool(body, "startFromHead", True), dict[str, int]()
    if "nextToken" in body:  # the token's direction wins over startFromHead
        forward, positions = _read_filter_token(body["nextToken"])

    def keep(line: _Line) -> bool:
        event = line.event
        return sources[line.job][1](event.stream) and inside(event) and matches(event.message)

    paths = {job: path for job, (path, _) in sources.items()}
    taken, cursor = _merged_page(paths, forward, positions, keep, limit)
    answer = {"events": [_filtered_event(line) for line in taken], "searchedLogStreams": []}
    token = _json_token({"d": _FORWARD if forward else _BACKWARD, "p": cursor}) if cursor else None
    return _with_token(answer, token)


def _merged_page(
    paths: Mapping[str, Path],
    forward: bool,
    positions: Mapping[str, int],
    keep: Callable[[_Line], bool],
    limit: int,
) -> tuple[list[_Line], dict[str, int] | None]:
    """Kept lines of all files in time order (newest first backward), and where each file's
    reading stopped when there is more to read (else None)."""
    with contextlib.ExitStack() as stack:
        cursor: dict[str, int] = {}
        streams = []
        for job, path in paths.items():
            file = stack.enter_context(_open(path))
            cursor[job] = _resolve(file, forward, positions.get(job))
            streams.append(_lines(file, forward, cursor[job], job))
        merged = heapq.merge(*streams, key=_timestamp, reverse=not forward)
        taken, more = _take(merged, keep, limit, cursor, forward)
    return taken, cursor if more else None


def _timestamp(line: _Line) -> int:
    return line.event.timestamp_ms


def _read_filter_token(token: Any) -> tuple[bool, dict[str, int]]:
    value = _read_json_token(token)
    direction = value.get("d") if isinstance(value, dict) else None
    positions = value.get("p") if isinstance(value, dict) else None
    if direction not in (_FORWARD, _BACKWARD) or not isinstance(positions, dict):
        raise _invalid(_BAD_TOKEN)
    if not all(isinstance(at, int) and at >= 0 for at in positions.values()):
        raise _invalid(_BAD_TOKEN)
    return direction == _FORWARD, positions


def _filtered_event(line: _Line) -> dict[str, Any]:
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
    catalog = _Catalog(jobs_in_group, tuple(groups))
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
