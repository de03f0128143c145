"""`batchform check-model`: does a model honour the serving contract, on a user's sample?

The checks are what a Batch Transform job would do to the model, one step at a time,
so a problem shows up here in seconds rather than as a failed job an hour in: start it,
GET /ping, GET /execution-parameters, then invoke the sample as SingleRecord and as
MultiRecord and count the records that come back (a line-based output with a record
too few or too many misaligns every record after it, and SageMaker does not notice).

Everything here returns a `CheckReport`; printing it is the CLI's business.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from batchform.errors import BatchformError
from batchform.records.batch import Batch
from batchform.records.batching import make_batcher
from batchform.runtimes import codecs
from batchform.runtimes.base import (
    ExecutionParameters,
    InvocationRequest,
    Runtime,
    RuntimeContext,
)
from batchform.runtimes.http import HttpRuntime
from batchform.runtimes.registry import (
    ModelReference,
    RuntimeFactory,
    RuntimeOptions,
    runtime_factory,
    runtime_kind,
)
from batchform.spec.enums import BatchStrategy, SplitType

#: Content types whose records are lines, so records in and out can be counted.
LINE_BASED_TYPES = frozenset(
    {codecs.CSV, codecs.JSONLINES, "application/jsonl", "application/x-jsonlines"}
)
DEFAULT_MAX_PAYLOAD_IN_MB = 6
_MB = 1024 * 1024


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    INFO = "info"  # nothing to judge: what the model said, or a step that does not apply


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str
    seconds: float | None = None


@dataclass
class CheckReport:
    model: str
    kind: str
    results: list[CheckResult] = field(default_factory=list)
    model_log: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(result.outcome is not Outcome.FAIL for result in self.results)


@dataclass(frozen=True)
class CheckOptions:
    content_type: str
    accept: str | None = None
    single_records: int = 5
    timeout_seconds: float = 60.0
    startup_timeout: float = 600.0
    environment: dict[str, str] = field(default_factory=dict)


def is_line_based(content_type: str) -> bool:
    return codecs.media_type(content_type) in LINE_BASED_TYPES


def count_records(body: bytes) -> int:
    """Lines in a response, as the engine counts them: a last line may lack its newline."""
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def read_sample(path: str | Path, limit_bytes: int = DEFAULT_MAX_PAYLOAD_IN_MB * _MB) -> bytes:
    """The head of a sample file: whole lines up to `limit_bytes` (no cut record).

    A first line longer than the limit is kept whole, so the MultiRecord check can say
    that the record does not fit rather than send half of it.
    """
    with open(path, "rb") as sample:
        head = sample.read(limit_bytes + 1)
        if len(head) <= limit_bytes:
            return head
        cut = head.rfind(b"\n", 0, limit_bytes) + 1
        if cut:
            return head[:cut]
        return head + sample.readline()


def check_model(model: ModelReference, sample: bytes, options: CheckOptions) -> CheckReport:
    """Start the model as a one-instance job would, run every check, stop it."""
    label = model.url or model.image or model.model_data_url or "?"
    report = CheckReport(model=label, kind="?")
    try:
        report.kind = runtime_kind(model)
        factory = runtime_factory(model, _runtime_options(options))
    except BatchformError as exc:
        report.results.append(CheckResult("model", Outcome.FAIL, str(exc)))
        return report
    with tempfile.TemporaryDirectory(prefix="batchform-check-") as workspace:
        run_checks(factory, sample, options, report, workspace)
    return report


def _runtime_options(options: CheckOptions) -> RuntimeOptions:
    return RuntimeOptions(
        concurrency=1,
        max_payload_in_mb=DEFAULT_MAX_PAYLOAD_IN_MB,
        batch_strategy="MultiRecord",
        startup_timeout=options.startup_timeout,
    )


def run_checks(
    factory: RuntimeFactory,
    sample: bytes,
    options: CheckOptions,
    report: CheckReport,
    workspace: str,
) -> None:
    """Every check against one started runtime; results are appended to `report`."""
    context = RuntimeContext(
        instance_name="check",
        workspace=workspace,
        environment=options.environment,
        workers=1,
        log=report.model_log.append,
    )
    try:
        runtime = factory(context)  # the handler runtime finds its code here
    except BatchformError as exc:
        report.results.append(CheckResult("start", Outcome.FAIL, str(exc)))
        return
    started = _timed("start", lambda: _start(runtime))
    report.results.append(started)
    try:
        if started.outcome is not Outcome.FAIL:
            report.results.extend(_checks_of_started(runtime, sample, options))
    finally:
        # Also after a failed start: whatever the model left running must go.
        stopped = _timed("stop", lambda: _stop(runtime))
        if started.outcome is not Outcome.FAIL:
            report.results.append(stopped)


def _checks_of_started(
    runtime: Runtime, sample: bytes, options: CheckOptions
) -> Iterator[CheckResult]:
    yield _check_ping(runtime)
    parameters, result = _check_execution_parameters(runtime)
    yield result
    payload_mb = parameters.max_payload_in_mb
    if payload_mb is None:
        payload_mb = DEFAULT_MAX_PAYLOAD_IN_MB
    if not sample:
        yield CheckResult("sample", Outcome.FAIL, "the sample is empty: nothing to invoke")
    elif is_line_based(options.content_type):
        yield check_single_record(runtime, sample, options, payload_mb)
        yield check_multi_record(runtime, sample, options, payload_mb)
    else:
        yield check_whole_sample(runtime, sample, options)


def _start(runtime: Runtime) -> str:
    runtime.start()
    return "the model started"


def _stop(runtime: Runtime) -> str:
    runtime.stop()
    return "the model stopped"


def _timed(name: str, step: Callable[[], str]) -> CheckResult:
    """Run a step that returns its detail; a BatchformError it raises is its failure."""
    began = time.perf_counter()
    try:
        detail = step()
    except BatchformError as exc:
        return CheckResult(name, Outcome.FAIL, str(exc), time.perf_counter() - began)
    return CheckResult(name, Outcome.PASS, detail, time.perf_counter() - began)


def _check_ping(runtime: Runtime) -> CheckResult:
    url = getattr(runtime, "url", None)
    if not isinstance(url, str):
        return CheckResult("GET /ping", Outcome.INFO, "not used: the handler is called in-process")
    probe = HttpRuntime(url)
    began = time.perf_counter()
    try:
        answered = probe.ping()
    finally:
        probe.stop()
    seconds = time.perf_counter() - began
    if answered:
        return CheckResult("GET /ping", Outcome.PASS, "200", seconds)
    return CheckResult("GET /ping", Outcome.FAIL, "did not answer 200", seconds)


def _check_execution_parameters(runtime: Runtime) -> tuple[ExecutionParameters, CheckResult]:
    began = time.perf_counter()
    parameters = runtime.execution_parameters()
    seconds = time.perf_counter() - began
    said = describe_parameters(parameters)
    detail = f"the model says {said}" if said else "not offered (the request's values apply)"
    return parameters, CheckResult("GET /execution-parameters", Outcome.INFO, detail, seconds)


def describe_parameters(parameters: ExecutionParameters) -> str:
    values = (
        ("MaxConcurrentTransforms", parameters.max_concurrent_transforms),
        ("BatchStrategy", parameters.batch_strategy),
        ("MaxPayloadInMB", parameters.max_payload_in_mb),
    )
    return ", ".join(f"{name}={value}" for name, value in values if value is not None)


def sample_batches(sample: bytes, strategy: BatchStrategy, payload_mb: int) -> Iterator[Batch]:
    """The payloads the engine would cut from the sample under SplitType=Line."""
    batcher = make_batcher(SplitType.LINE, strategy, payload_mb)
    batcher.add(sample)
    batcher.done_adding()
    while batcher.has_batch():
        yield batcher.next_batch()


def check_single_record(
    runtime: Runtime, sample: bytes, options: CheckOptions, payload_mb: int
) -> CheckResult:
    """The first records, one request each; each must come back as exactly one record."""
    name = f"SingleRecord x{options.single_records}"
    began = time.perf_counter()
    batches = sample_batches(sample, BatchStrategy.SINGLE_RECORD, payload_mb)
    checked = 0
    try:
        for batch in itertools.islice(batches, options.single_records):
            problem = _invoke_and_count(runtime, batch, options)
            if problem:
                return CheckResult(name, Outcome.FAIL, problem, time.perf_counter() - began)
            checked += 1
    except BatchformError as exc:
        return CheckResult(name, Outcome.FAIL, str(exc), time.perf_counter() - began)
    seconds = time.perf_counter() - began
    detail = f"{checked} request(s), 1 record in and out each, {_per_request(seconds, checked)}"
    return CheckResult(name, Outcome.PASS, detail, seconds)


def check_multi_record(
    runtime: Runtime, sample: bytes, options: CheckOptions, payload_mb: int
) -> CheckResult:
    """The sample's head as one payload, as big as MaxPayloadInMB allows."""
    name = "MultiRecord"
    began = time.perf_counter()
    try:
        batch = next(sample_batches(sample, BatchStrategy.MULTI_RECORD, payload_mb))
        problem = _invoke_and_count(runtime, batch, options)
    except BatchformError as exc:
        return CheckResult(name, Outcome.FAIL, str(exc), time.perf_counter() - began)
    seconds = time.perf_counter() - began
    if problem:
        return CheckResult(name, Outcome.FAIL, problem, seconds)
    size = len(batch.payload)
    detail = (
        f"1 payload of {size:,} bytes, {batch.record_count:,} records in and out "
        f"({size / max(seconds, 1e-9) / 1e6:.1f} MB/s)"
    )
    return CheckResult(name, Outcome.PASS, detail, seconds)


def check_whole_sample(runtime: Runtime, sample: bytes, options: CheckOptions) -> CheckResult:
    """Not line-based: the sample is one record (SplitType=None); only the answer counts."""
    name = "invoke (SplitType None)"
    began = time.perf_counter()
    try:
        response = runtime.invoke(_request(sample, options))
    except BatchformError as exc:
        return CheckResult(name, Outcome.FAIL, str(exc), time.perf_counter() - began)
    detail = (
        f"{len(sample):,} bytes in, {len(response.body):,} bytes out as "
        f"{response.content_type or 'no content type'}; records are not counted for "
        f"{options.content_type}"
    )
    return CheckResult(name, Outcome.PASS, detail, time.perf_counter() - began)


def _invoke_and_count(runtime: Runtime, batch: Batch, options: CheckOptions) -> str | None:
    """Why the answer to this batch is wrong, or None when its record count matches."""
    response = runtime.invoke(_request(batch.payload, options))
    records = count_records(response.body)
    if records == batch.record_count:
        return None
    first = batch.first_record
    where = f"record {first}" if batch.record_count == 1 else f"records {first}-"
    if batch.record_count > 1:
        where += str(first + batch.record_count - 1)
    return (
        f"{where}: {batch.record_count} record(s) in, {records} out; an output line must "
        "answer each input line, or every later record is misaligned"
    )


def _request(payload: bytes, options: CheckOptions) -> InvocationRequest:
    return InvocationRequest(
        payload=payload,
        content_type=options.content_type,
        accept=options.accept,
        timeout_seconds=options.timeout_seconds,
    )


def _per_request(seconds: float, requests: int) -> str:
    return f"{seconds / max(requests, 1) * 1000:.1f} ms a request"
