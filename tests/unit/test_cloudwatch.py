"""CloudWatch Logs reads over job log files, as boto3, the aws CLI and the sagemaker SDK see them.

Most requests go through a real boto3 `logs` client whose transport is replaced by the
operations themselves (a `before-send` hook), so botocore serialises every request and
parses every answer and error. Each answer is also checked member by member against
botocore's service model, because botocore's parser silently drops fields it does not know.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import Shape

from batchform.jobs import logs as joblogs
from batchform.jobs.logs import JobLog
from batchform.server.cloudwatch import (
    LOG_OPERATIONS,
    TRAINING_LOG_GROUP,
    TRANSFORM_LOG_GROUP,
    LogLocator,
    LogOperation,
    LogsError,
    log_operations,
)

GROUP = TRANSFORM_LOG_GROUP
START_MS = 1_700_000_000_000


@dataclass
class Clock:
    """Stands in for JobLog's wall clock so every line gets a known millisecond."""

    now_ms: int = START_MS

    def time(self) -> float:
        return self.now_ms / 1000

    def tick(self, ms: int = 1) -> int:
        self.now_ms += ms
        return self.now_ms


@dataclass
class Jobs:
    """Job log files in a directory, written with JobLog, and the resolver over them."""

    root: Path
    clock: Clock
    logs: dict[str, JobLog] = field(default_factory=dict)

    def path(self, job: str) -> Path:
        return self.root / f"{job}.log"

    def write(self, job: str, stream: str, message: str, step_ms: int = 1) -> int:
        """Append one line one step after the previous one; returns its timestamp."""
        stamp = self.clock.tick(step_ms)
        log = self.logs.setdefault(job, JobLog(self.path(job)))
        log.write(stream, message)
        return stamp

    def locate(self, group: str, job: str) -> Path | None:
        return self.path(job) if group == GROUP and job in self.logs else None

    def names(self, group: str) -> list[str] | None:
        return sorted(self.logs) if group == GROUP else None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(joblogs, "time", SimpleNamespace(time=fake.time))
    return fake


@pytest.fixture
def jobs(tmp_path: Path, clock: Clock) -> Iterator[Jobs]:
    found = Jobs(tmp_path, clock)
    yield found
    for log in found.logs.values():
        log.close()


@pytest.fixture
def transform(jobs: Jobs) -> dict[str, list[tuple[str, str]]]:
    """Job `transform-a` with three interleaved streams and `transform-b`, a second job."""
    lines = {
        "transform-a": [
            ("data-log", "Starting job transform-a"),
            ("instance-1", "model loaded"),
            ("instance-2", "model loaded"),
            ("instance-1", "ERROR bad record 7"),
            ("data-log", "retrying part 3"),
            ("instance-2", "served 10 records"),
            ("instance-1", "served 12 records"),
            ("data-log", "ERROR part 9 failed: invalid json"),
        ],
        "transform-b": [("data-log", "Starting job transform-b"), ("instance-1", "ERROR boom")],
    }
    for job, written in lines.items():
        for stream, message in written:
            jobs.write(job, stream, message)
    return lines


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _client(operations: Mapping[str, LogOperation], locate: LogLocator) -> Any:
    """A boto3 logs client answered in-process by `operations`."""
    client = boto3.client(
        "logs",
        region_name="us-east-1",
        endpoint_url="http://logs.batchform.invalid",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    model = client.meta.service_model

    def answer(request: Any, **_: Any) -> AWSResponse:
        target = request.headers["X-Amz-Target"]
        name = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        try:
            status, payload = 200, operations[name](json.loads(request.body or b"{}"), locate)
            _assert_shaped(model.operation_model(name).output_shape, payload, name)
        except LogsError as exc:
            status, payload = exc.status, {"__type": exc.code, "message": exc.message}
        headers = {"content-type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))

    client.meta.events.register("before-send.logs", answer)
    return client


def _assert_shaped(shape: Shape, value: Any, where: str) -> None:
    """`value` uses only members, types and enum values the service model defines."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), where
        assert set(value) <= set(shape.members), f"{where}: {set(value) - set(shape.members)}"
        for name, member in value.items():
            _assert_shaped(shape.members[name], member, f"{where}.{name}")
    elif kind == "list":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            _assert_shaped(shape.member, item, f"{where}[{index}]")
    elif kind in ("long", "integer"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    else:
        assert kind == "string" and isinstance(value, str), where
        assert not shape.enum or value in shape.enum, where


@pytest.fixture
def logs(jobs: Jobs) -> Any:
    """A client over LOG_OPERATIONS: jobs are found only through a stream prefix."""
    return _client(LOG_OPERATIONS, jobs.locate)


@pytest.fixture
def listing_logs(jobs: Jobs) -> Any:
    """A client whose operations can list the group's jobs."""
    return _client(log_operations(jobs.names), jobs.locate)


def _messages(events: list[dict[str, Any]]) -> list[str]:
    return [event["message"] for event in events]


def _stream_messages(lines: list[tuple[str, str]], stream: str) -> list[str]:
    return [message for name, message in lines if name == stream]


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def _read_forward(logs: Any, token: str | None = None, **request: Any) -> tuple[list[str], str]:
    """Follow nextForwardToken until it repeats, as the aws CLI and SDKs do."""
    messages: list[str] = []
    while True:
        extra = {"nextToken": token} if token else {"startFromHead": True}
        answer = logs.get_log_events(logGroupName=GROUP, **request, **extra)
        messages += _messages(answer["events"])
        if answer["nextForwardToken"] == token:
            return messages, answer["nextForwardToken"]
        token = answer["nextForwardToken"]


# DescribeLogStreams ---------------------------------------------------------------------


def test_streams_of_a_job_are_listed_by_name_with_their_time_span(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix="transform-a/", orderBy="LogStreamName"
    )
    streams = answer["logStreams"]
    assert [s["logStreamName"] for s in streams] == [
        "transform-a/data-log",
        "transform-a/instance-1",
        "transform-a/instance-2",
    ]
    data_log = streams[0]
    assert data_log["creationTime"] == data_log["firstEventTimestamp"] == START_MS + 1
    assert data_log["lastEventTimestamp"] == data_log["lastIngestionTime"] == START_MS + 8
    assert streams[2]["firstEventTimestamp"] == START_MS + 3
    assert "nextToken" not in answer


def test_a_bare_job_name_prefix_names_that_job_without_a_lister(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    # The SDK's LogStreamer passes the job name without the trailing '/'.
    answer = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="transform-b")
    names = [s["logStreamName"] for s in answer["logStreams"]]
    assert names == ["transform-b/data-log", "transform-b/instance-1"]


def test_a_stream_prefix_narrows_within_the_job(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="transform-a/inst")
    names = [s["logStreamName"] for s in answer["logStreams"]]
    assert names == ["transform-a/instance-1", "transform-a/instance-2"]


def test_with_a_lister_a_partial_prefix_or_none_spans_jobs(
    listing_logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    prefixed = listing_logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="transf")
    everything = listing_logs.describe_log_streams(logGroupName=GROUP)
    expected = [
        "transform-a/data-log",
        "transform-a/instance-1",
        "transform-a/instance-2",
        "transform-b/data-log",
        "transform-b/instance-1",
    ]
    assert [s["logStreamName"] for s in prefixed["logStreams"]] == expected
    assert [s["logStreamName"] for s in everything["logStreams"]] == expected


def test_without_a_lister_no_prefix_lists_nothing(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    assert logs.describe_log_streams(logGroupName=GROUP)["logStreams"] == []


def test_streams_order_by_last_event_time_descending(
    listing_logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = listing_logs.describe_log_streams(
        logGroupName=GROUP, orderBy="LastEventTime", descending=True
    )
    names = [s["logStreamName"] for s in answer["logStreams"]]
    assert names == [
        "transform-b/instance-1",
        "transform-b/data-log",
        "transform-a/data-log",
        "transform-a/instance-1",
        "transform-a/instance-2",
    ]


def test_stream_pages_return_each_stream_once_even_when_one_appears_between_pages(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    request = {"logGroupName": GROUP, "logStreamNamePrefix": "transform-a/", "limit": 1}
    seen: list[str] = []
    token = None
    while token or not seen:
        page = logs.describe_log_streams(**request, **({"nextToken": token} if token else {}))
        seen += [s["logStreamName"] for s in page["logStreams"]]
        token = page.get("nextToken")
        if len(seen) == 2:  # behind the reader: an index-based token would repeat instance-1
            jobs.write("transform-a", "instance-0", "a stream sorting before the next page")
    assert seen == ["transform-a/data-log", "transform-a/instance-1", "transform-a/instance-2"]
    paginator = logs.get_paginator("describe_log_streams")
    pages = list(paginator.paginate(**request))
    assert len(pages) == 4
    assert sum(len(page["logStreams"]) for page in pages) == 4


def test_a_stream_appears_once_its_first_line_is_written(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    request = {"logGroupName": GROUP, "logStreamNamePrefix": "transform-b/"}
    assert len(logs.describe_log_streams(**request)["logStreams"]) == 2
    stamp = jobs.write("transform-b", "instance-2", "late starter")
    streams = logs.describe_log_streams(**request)["logStreams"]
    assert streams[-1]["logStreamName"] == "transform-b/instance-2"
    assert streams[-1]["lastEventTimestamp"] == stamp


def test_a_replaced_file_is_described_afresh(jobs: Jobs, logs: Any) -> None:
    jobs.write("redo", "instance-1", "first run")
    request = {"logGroupName": GROUP, "logStreamNamePrefix": "redo/"}
    assert len(logs.describe_log_streams(**request)["logStreams"]) == 1
    jobs.logs.pop("redo").close()
    replacement = jobs.path("redo").with_suffix(".new")
    replacement.write_text("2024-01-01T00:00:00.000Z [data-log] second run\n")
    replacement.replace(jobs.path("redo"))
    jobs.logs["redo"] = JobLog(jobs.path("redo"))
    streams = logs.describe_log_streams(**request)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["redo/data-log"]


def test_a_job_that_has_not_logged_yet_has_no_streams(jobs: Jobs) -> None:
    ops = log_operations(groups=[GROUP])
    answer = ops["DescribeLogStreams"](
        {"logGroupName": GROUP, "logStreamNamePrefix": "pending/"},
        lambda group, job: jobs.root / "pending.log",
    )
    assert answer == {"logStreams": []}


# GetLogEvents ---------------------------------------------------------------------------


def test_events_from_head_are_one_stream_in_order(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.get_log_events(
        logGroupName=GROUP, logStreamName="transform-a/instance-1", startFromHead=True
    )
    assert _messages(answer["events"]) == _stream_messages(transform["transform-a"], "instance-1")
    first = answer["events"][0]
    assert first == {
        "timestamp": START_MS + 2,
        "message": "model loaded",
        "ingestionTime": first["timestamp"],
    }


def test_events_from_tail_are_the_latest_oldest_first(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.get_log_events(logGroupName=GROUP, logStreamName="transform-a/data-log", limit=2)
    assert _messages(answer["events"]) == ["retrying part 3", "ERROR part 9 failed: invalid json"]


def test_backward_pages_reach_the_head_and_then_repeat_the_token(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    request = {"logGroupName": GROUP, "logStreamName": "transform-a/instance-1", "limit": 1}
    pages: list[list[str]] = []
    token = None
    while True:
        answer = logs.get_log_events(**request, **({"nextToken": token} if token else {}))
        pages.append(_messages(answer["events"]))
        if answer["nextBackwardToken"] == token:
            break
        token = answer["nextBackwardToken"]
    expected = _stream_messages(transform["transform-a"], "instance-1")
    assert [m for page in reversed(pages) for m in page] == expected
    assert pages[-1] == []


def test_forward_pages_return_each_event_exactly_once(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    messages, _ = _read_forward(logs, logStreamName="transform-a/data-log", limit=1)
    assert messages == _stream_messages(transform["transform-a"], "data-log")


def test_polling_the_last_forward_token_returns_only_new_lines(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    stream = {"logStreamName": "transform-a/instance-2"}
    before, token = _read_forward(logs, **stream)
    assert before == ["model loaded", "served 10 records"]
    jobs.write("transform-a", "instance-1", "another stream's line")
    jobs.write("transform-a", "instance-2", "served 20 records")
    jobs.write("transform-a", "instance-2", "served 30 records")
    after, token = _read_forward(logs, token, **stream)
    assert after == ["served 20 records", "served 30 records"]
    assert _read_forward(logs, token, **stream)[0] == []


def test_a_line_still_being_written_waits_until_it_is_complete(jobs: Jobs, logs: Any) -> None:
    jobs.write("slow", "instance-1", "whole line")
    with jobs.path("slow").open("a") as file:
        file.write("2024-01-01T00:00:00.000Z [instance-1] half a li")
    stream = {"logStreamName": "slow/instance-1"}
    seen, token = _read_forward(logs, **stream)
    assert seen == ["whole line"]
    tail = logs.get_log_events(logGroupName=GROUP, **stream)
    assert _messages(tail["events"]) == ["whole line"]
    with jobs.path("slow").open("a") as file:
        file.write("ne\n")
    assert _read_forward(logs, token, **stream)[0] == ["half a line"]


def test_the_forward_token_of_a_tail_read_follows_the_stream(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    stream = {"logGroupName": GROUP, "logStreamName": "transform-a/data-log"}
    tail = logs.get_log_events(**stream, limit=1)
    jobs.write("transform-a", "data-log", "Completed")
    follow = logs.get_log_events(**stream, nextToken=tail["nextForwardToken"])
    assert _messages(follow["events"]) == ["Completed"]


def test_start_time_is_inclusive_and_end_time_exclusive(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    # instance-1 of transform-a holds lines at START+2, +4, +7.
    answer = logs.get_log_events(
        logGroupName=GROUP,
        logStreamName="transform-a/instance-1",
        startFromHead=True,
        startTime=START_MS + 4,
        endTime=START_MS + 7,
    )
    assert _messages(answer["events"]) == ["ERROR bad record 7"]


def test_a_page_holds_at_most_one_megabyte(jobs: Jobs, logs: Any) -> None:
    big = [f"{index}:" + "x" * 300_000 for index in range(5)]
    for message in big:
        jobs.write("big", "instance-1", message)
    stream = {"logGroupName": GROUP, "logStreamName": "big/instance-1"}
    first = logs.get_log_events(**stream, startFromHead=True)
    assert _messages(first["events"]) == big[:3]
    rest = logs.get_log_events(**stream, nextToken=first["nextForwardToken"])
    assert _messages(rest["events"]) == big[3:]


def test_reading_backwards_crosses_block_boundaries(jobs: Jobs, logs: Any) -> None:
    messages = [f"line {index} " + "y" * (index * 997 % 90_000) for index in range(60)]
    for index, message in enumerate(messages):
        jobs.write("long", "instance-1" if index % 3 else "data-log", message)
    stream = {"logGroupName": GROUP, "logStreamName": "long/instance-1"}
    pages, token = [], None
    while True:
        answer = logs.get_log_events(**stream, limit=7, **({"nextToken": token} if token else {}))
        pages.append(_messages(answer["events"]))
        if answer["nextBackwardToken"] == token:
            break
        token = answer["nextBackwardToken"]
    expected = [m for index, m in enumerate(messages) if index % 3]
    assert [m for page in reversed(pages) for m in page] == expected


def test_sdk_style_polling_prints_every_line_once(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    """The sagemaker SDK's logs_for_job loop: it lists `<job>/` streams by name, then
    re-reads each from the last timestamp seen (startTime, inclusive), skipping the
    events already printed at that millisecond, following nextForwardToken until a page
    comes back empty."""
    positions: dict[str, tuple[int, int]] = {}

    def flush() -> list[str]:
        listing = logs.describe_log_streams(
            logGroupName=GROUP, logStreamNamePrefix="transform-a/", orderBy="LogStreamName"
        )
        printed = []
        for name in [s["logStreamName"] for s in listing["logStreams"]]:
            for event in _sdk_log_stream(logs, name, *positions.get(name, (0, 0))):
                printed.append(event["message"])
                stamp, count = positions.get(name, (0, 0))
                same = event["timestamp"] == stamp
                positions[name] = (stamp, count + 1) if same else (event["timestamp"], 1)
        return printed

    assert sorted(flush()) == sorted(m for _, m in transform["transform-a"])
    assert flush() == []
    jobs.write("transform-a", "instance-2", "served 20 records")
    assert flush() == ["served 20 records"]
    jobs.write("transform-a", "instance-2", "in the same millisecond", step_ms=0)
    jobs.write("transform-a", "instance-3", "a new instance")
    assert flush() == ["in the same millisecond", "a new instance"]


def _sdk_log_stream(logs: Any, stream: str, start: int, skip: int) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        extra = {"nextToken": token} if token else {}
        answer = logs.get_log_events(
            logGroupName=GROUP, logStreamName=stream, startTime=start, startFromHead=True, **extra
        )
        token, events = answer["nextForwardToken"], answer["events"]
        if not events:
            return
        yield from events[skip:]
        skip = max(0, skip - len(events))


# FilterLogEvents ------------------------------------------------------------------------


def test_filter_finds_matches_across_streams_in_time_order(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.filter_log_events(
        logGroupName=GROUP, logStreamNamePrefix="transform-a/", filterPattern="ERROR"
    )
    found = [(e["logStreamName"], e["message"]) for e in answer["events"]]
    assert found == [
        ("transform-a/instance-1", "ERROR bad record 7"),
        ("transform-a/data-log", "ERROR part 9 failed: invalid json"),
    ]
    assert [e["timestamp"] for e in answer["events"]] == [START_MS + 4, START_MS + 8]
    assert "nextToken" not in answer


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", 8),
        ("served records", ["served 10 records", "served 12 records"]),
        ('"bad record"', ["ERROR bad record 7"]),
        ('"record 7" ERROR', ["ERROR bad record 7"]),
        ("?retrying ?invalid", ["retrying part 3", "ERROR part 9 failed: invalid json"]),
        ("ERROR -json", ["ERROR bad record 7"]),
        ("%served 1[0-1]%", ["served 10 records"]),
        ("error", []),
    ],
)
def test_filter_patterns(
    logs: Any, transform: dict[str, list[tuple[str, str]]], pattern: str, expected: Any
) -> None:
    answer = logs.filter_log_events(
        logGroupName=GROUP, logStreamNamePrefix="transform-a", filterPattern=pattern
    )
    found = _messages(answer["events"])
    assert (len(found) if isinstance(expected, int) else found) == expected


def test_filter_on_named_streams_and_a_time_range_with_inclusive_end(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.filter_log_events(
        logGroupName=GROUP,
        logStreamNames=["transform-a/instance-2", "transform-b/instance-1"],
        startTime=START_MS + 3,
        endTime=START_MS + 10,
        interleaved=True,
    )
    found = [(e["logStreamName"], e["message"]) for e in answer["events"]]
    assert found == [
        ("transform-a/instance-2", "model loaded"),
        ("transform-a/instance-2", "served 10 records"),
        ("transform-b/instance-1", "ERROR boom"),
    ]


def test_filter_pages_return_each_event_once_with_stable_ids(
    listing_logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    paginator = listing_logs.get_paginator("filter_log_events")
    pages = list(paginator.paginate(logGroupName=GROUP, limit=3))
    events = [event for page in pages for event in page["events"]]
    assert len(pages) == 4
    every = [m for lines in transform.values() for _, m in lines]
    assert sorted(_messages(events)) == sorted(every)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    ids = [e["eventId"] for e in events]
    assert len(set(ids)) == len(ids)
    again = listing_logs.filter_log_events(logGroupName=GROUP)["events"]
    assert [e["eventId"] for e in again] == ids


def test_filter_from_the_newest_pages_backwards(
    listing_logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    request = {"logGroupName": GROUP, "filterPattern": "ERROR", "startFromHead": False}
    first = listing_logs.filter_log_events(**request, limit=2)
    assert _messages(first["events"]) == ["ERROR boom", "ERROR part 9 failed: invalid json"]
    rest = listing_logs.filter_log_events(**request, nextToken=first["nextToken"])
    assert _messages(rest["events"]) == ["ERROR bad record 7"]
    assert "nextToken" not in rest


def test_filter_with_a_large_limit_in_one_page_has_no_token(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix="transform-b/", limit=2)
    assert _messages(answer["events"]) == ["Starting job transform-b", "ERROR boom"]
    assert "nextToken" not in answer
    assert answer["searchedLogStreams"] == []


# DescribeLogGroups ----------------------------------------------------------------------


def test_log_groups_are_the_known_ones(logs: Any, listing_logs: Any) -> None:
    names = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert names == [TRAINING_LOG_GROUP, TRANSFORM_LOG_GROUP]
    narrowed = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/Tr", limit=1)
    assert [g["logGroupName"] for g in narrowed["logGroups"]] == [TRAINING_LOG_GROUP]
    rest = logs.describe_log_groups(
        logGroupNamePrefix="/aws/sagemaker/Tr", nextToken=narrowed["nextToken"]
    )
    assert [g["logGroupName"] for g in rest["logGroups"]] == [TRANSFORM_LOG_GROUP]
    # A lister decides which groups exist.
    listed = listing_logs.describe_log_groups(logGroupNamePattern="Jobs")["logGroups"]
    assert [g["logGroupName"] for g in listed] == [TRANSFORM_LOG_GROUP]


# Errors ---------------------------------------------------------------------------------

_NO_GROUP = ("ResourceNotFoundException", "The specified log group does not exist.")
_NO_STREAM = ("ResourceNotFoundException", "The specified log stream does not exist.")


def test_an_unknown_group_is_not_found_by_every_operation(
    logs: Any, listing_logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    group = {"logGroupName": "/aws/lambda/nothing"}
    assert _error(lambda: logs.describe_log_streams(**group, logStreamNamePrefix="x/")) == _NO_GROUP
    assert _error(lambda: listing_logs.describe_log_streams(**group)) == _NO_GROUP
    assert _error(lambda: logs.get_log_events(**group, logStreamName="x/data-log")) == _NO_GROUP
    assert _error(lambda: logs.filter_log_events(**group, logStreamNamePrefix="x")) == _NO_GROUP


def test_an_unknown_stream_is_not_found(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    for name in ["nojob/data-log", "transform-a/instance-9", "transform-a", "/data-log"]:
        request = {"logGroupName": GROUP, "logStreamName": name}
        assert _error(functools.partial(logs.get_log_events, **request)) == _NO_STREAM
    assert (
        _error(
            lambda: logs.filter_log_events(logGroupName=GROUP, logStreamNames=["transform-a/nope"])
        )
        == _NO_STREAM
    )


def test_a_prefix_matching_no_job_lists_nothing(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    answer = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="nojob/")
    assert answer["logStreams"] == []


def test_log_group_arn_is_accepted_as_identifier(
    logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
    answer = logs.get_log_events(logGroupIdentifier=arn, logStreamName="transform-b/instance-1")
    assert _messages(answer["events"]) == ["ERROR boom"]


@pytest.mark.parametrize(
    ("operation", "request_body"),
    [
        ("DescribeLogStreams", {"logGroupName": GROUP, "limit": 51}),
        ("DescribeLogStreams", {"logGroupName": GROUP, "limit": 0}),
        ("DescribeLogStreams", {"logGroupName": GROUP, "orderBy": "Size"}),
        ("DescribeLogStreams", {"logGroupName": GROUP, "descending": "yes"}),
        (
            "DescribeLogStreams",
            {
                "logGroupName": GROUP,
                "orderBy": "LastEventTime",
                "logStreamNamePrefix": "transform-a/",
            },
        ),
        ("DescribeLogStreams", {"logGroupName": GROUP, "logGroupIdentifier": GROUP}),
        ("DescribeLogStreams", {}),
        (
            "DescribeLogStreams",
            {
                "logGroupName": GROUP,
                "logStreamNamePrefix": "transform-a/",
                "nextToken": "bm90IGpzb24",
            },
        ),
        (
            "DescribeLogStreams",
            {"logGroupName": GROUP, "logStreamNamePrefix": "transform-a/", "nextToken": "WzFd"},
        ),
        (
            "GetLogEvents",
            {"logGroupName": GROUP, "logStreamName": "transform-a/data-log", "limit": 10_001},
        ),
        (
            "GetLogEvents",
            {"logGroupName": GROUP, "logStreamName": "transform-a/data-log", "startTime": -1},
        ),
        (
            "GetLogEvents",
            {
                "logGroupName": GROUP,
                "logStreamName": "transform-a/data-log",
                "nextToken": "garbage",
            },
        ),
        ("GetLogEvents", {"logGroupName": GROUP}),
        (
            "FilterLogEvents",
            {
                "logGroupName": GROUP,
                "logStreamNames": ["transform-a/data-log"],
                "logStreamNamePrefix": "transform-a",
            },
        ),
        ("FilterLogEvents", {"logGroupName": GROUP, "logStreamNames": []}),
        (
            "FilterLogEvents",
            {
                "logGroupName": GROUP,
                "logStreamNamePrefix": "transform-a",
                "filterPattern": '{ $.level = "ERROR" }',
            },
        ),
        (
            "FilterLogEvents",
            {"logGroupName": GROUP, "logStreamNamePrefix": "transform-a", "filterPattern": "%[%"},
        ),
        (
            "FilterLogEvents",
            {"logGroupName": GROUP, "logStreamNamePrefix": "transform-a", "nextToken": "e30"},
        ),
        (
            "FilterLogEvents",
            {"logGroupName": GROUP, "logStreamNamePrefix": "transform-a", "limit": 0},
        ),
        ("DescribeLogGroups", {"logGroupNamePrefix": "/aws", "logGroupNamePattern": "Jobs"}),
    ],
)
def test_bad_parameters_are_invalid(
    jobs: Jobs,
    transform: dict[str, list[tuple[str, str]]],
    operation: str,
    request_body: dict[str, Any],
) -> None:
    with pytest.raises(LogsError) as caught:
        LOG_OPERATIONS[operation](request_body, jobs.locate)
    assert (caught.value.code, caught.value.status) == ("InvalidParameterException", 400)


def test_tokens_only_work_where_they_were_made(
    jobs: Jobs, logs: Any, transform: dict[str, list[tuple[str, str]]]
) -> None:
    other = logs.get_log_events(logGroupName=GROUP, logStreamName="transform-a/instance-1")
    code, message = _error(
        lambda: logs.get_log_events(
            logGroupName=GROUP,
            logStreamName="transform-a/instance-2",
            nextToken=other["nextForwardToken"],
        )
    )
    assert (code, message) == ("InvalidParameterException", "The specified nextToken is invalid.")
    # A token pointing past the end of a (since replaced, shorter) file is refused too.
    scope_tag = other["nextForwardToken"].rsplit("/", 1)[1]
    beyond = f"f/{10**12:020d}/{scope_tag}"
    code, _ = _error(
        lambda: logs.get_log_events(
            logGroupName=GROUP, logStreamName="transform-a/instance-1", nextToken=beyond
        )
    )
    assert code == "InvalidParameterException"
    forged = base64.urlsafe_b64encode(b'{"d":"f","p":{"transform-a":-5}}').decode()
    code, _ = _error(
        lambda: logs.filter_log_events(
            logGroupName=GROUP, logStreamNamePrefix="transform-a", nextToken=forged
        )
    )
    assert code == "InvalidParameterException"
