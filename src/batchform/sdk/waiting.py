"""Waiting for jobs and endpoints, and following job logs, as the sagemaker SDK does.

Polls start fast and back off to the `poll` interval asked for: a job of a few seconds
is seen finishing at once, a long one is not described more often than asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from batchform.sdk.backend import LogReader
from batchform.sdk.exceptions import UnexpectedStatusException

logger = logging.getLogger("batchform.sdk")

Description = dict[str, Any]
JOB_ENDED = frozenset({"Completed", "Failed", "Stopped"})
ENDPOINT_BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
_FIRST_POLL_SECONDS = 0.1


def backoff(poll: float) -> Iterator[float]:
    """Sleep lengths: from a tenth of a second, doubling up to `poll`."""
    delay = min(_FIRST_POLL_SECONDS, poll)
    while True:
        yield delay
        delay = min(delay * 2, poll)


def poll_until(
    describe: Callable[[], Description],
    done: Callable[[Description], bool],
    poll: float,
    timeout: float | None = None,
) -> Description:
    """Describe until `done`; TimeoutError after `timeout` seconds, if given."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for delay in backoff(poll):
        description = describe()
        if done(description):
            return description
        if deadline is not None and time.monotonic() + delay > deadline:
            raise TimeoutError(f"still not done after {timeout} seconds")
        time.sleep(delay)
    raise AssertionError("unreachable")  # backoff never ends


def job_ended(status_key: str) -> Callable[[Description], bool]:
    return lambda description: description[status_key] in JOB_ENDED


def check_job_status(job_name: str, description: Description, status_key: str) -> None:
    """Warn when the job stopped; UnexpectedStatusException when it did not complete."""
    status = description[status_key]
    if status == "Stopped":
        logger.warning(
            "Job ended with status 'Stopped' rather than 'Completed'. This could mean the "
            "job timed out or stopped early for some other reason: consider checking "
            "whether it completed as you expect."
        )
    elif status != "Completed":
        reason = description.get("FailureReason", "(No reason provided)")
        kind = status_key.replace("JobStatus", " job")
        raise UnexpectedStatusException(
            f"Error for {kind} {job_name}: {status}. Reason: {reason}",
            allowed_statuses=["Completed", "Stopped"],
            actual_status=status,
        )


def check_endpoint_status(endpoint_name: str, description: Description) -> None:
    status = description["EndpointStatus"]
    if status != "InService":
        reason = description.get("FailureReason")
        raise UnexpectedStatusException(
            f"Error hosting endpoint {endpoint_name}: {status}. Reason: {reason}.",
            allowed_statuses=["InService"],
            actual_status=status,
        )


def follow_logs(
    reader: LogReader,
    finished: Callable[[], bool],
    wait: bool,
    poll: float,
    echo: Callable[[str], None],
) -> None:
    """Echo every log line so far; with `wait`, new ones too until `finished()`.

    `finished` is asked before each read, so lines written just before the end are
    still read after it says so.
    """
    for delay in backoff(poll):
        done = not wait or finished()
        _drain(reader, echo)
        if done:
            return
        time.sleep(delay)


def _drain(reader: LogReader, echo: Callable[[str], None]) -> None:
    lines = reader.read()
    while lines:
        for line in lines:
            echo(line.message)
        lines = reader.read()
