"""Container throughput: a model behind the serving contract, called three ways in one run.

    python benchmarks/container_throughput.py              # 75 MB; 20,000 records one by one
    python benchmarks/container_throughput.py --scale 0.2  # a quick look
    python benchmarks/container_throughput.py --repeat 3   # best of 3: for a shared machine

Two models, each served by `batchform serve-handler` with 2 worker processes: the echo
handler (the model costs nothing, so what is left is the transport) and the numpy handler
(parse CSV, project each row, write CSV). Against each:

(a) a naive sequential loop, what SageMaker's local mode does: post one payload, wait
    for the answer, write it, post the next (urllib3, one keep-alive connection). Its
    payloads are cut by batchform's own batcher, so the loop pays nothing for cutting
    and the comparison isolates what keeping requests in flight is worth;
(b) `batchform transform --model-url` with MaxConcurrentTransforms 1, 2, 4, 8;
(c) `batchform transform --model <handler folder>`: the same handler with 2 workers,
    called in-process over pipes instead of HTTP.

Times are the job's own (the `wall time` the CLI reports, which leaves out the ~1 s the
interpreter takes to import the CLI), and for (a) the loop's. Every output is compared
with (a)'s, byte for byte. Results go to benchmarks/results/container_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import urllib3

from batchform.records.batching import make_batcher, read_size
from batchform.spec.enums import BatchStrategy, SplitType
from common import ROOT, ensure, print_table, save_json, write_narrow_csv

MODELS = {"echo": ROOT / "examples" / "echo_handler", "numpy": ROOT / "examples" / "numpy_handler"}
DATA = ROOT / "benchmarks" / "data"
WORKERS = 2
CONCURRENCY = (1, 2, 4, 8)
PAYLOAD_MB = 6
ECHO_COPIES = 4
STRATEGIES = {
    "MultiRecord": BatchStrategy.MULTI_RECORD,
    "SingleRecord": BatchStrategy.SINGLE_RECORD,
}
_JOB_SECONDS = re.compile(r"wall time\s*│\s*([\d.]+) s")


@dataclass
class Run:
    model: str
    approach: str
    strategy: str
    concurrency: int
    seconds: float  # the whole job
    fixed_seconds: float  # the same job on one record: model start and stop
    steady_seconds: float  # seconds - fixed_seconds: what the records took
    bytes: int
    records: int
    output_sha256: str


# --- the model servers ------------------------------------------------------------------


@contextlib.contextmanager
def model_server(handler: Path) -> Iterator[str]:
    """`batchform serve-handler` on a free port; its URL while it runs."""
    from batchform.runtimes.workspace import free_port

    port = free_port()
    command = [sys.executable, "-m", "batchform.cli", "serve-handler", str(handler)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(WORKERS)], stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def _wait_for_ping(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(urllib3.exceptions.HTTPError):
            if urllib3.request("GET", url + "/ping", timeout=1.0, retries=False).status == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"serve-handler at {url} did not start")


# --- (a) the naive loop -----------------------------------------------------------------


def naive_loop(url: str, data: Dataset, strategy: str, output: Path) -> float:
    """Post every payload in turn and wait for each answer; seconds taken."""
    pool = urllib3.connection_from_url(url, maxsize=1, retries=False)
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    output.mkdir()
    started = time.perf_counter()
    for source in data.files:
        with (output / f"{source.name}.out").open("wb") as sink:
            for payload in payloads(source, STRATEGIES[strategy]):
                response = pool.request("POST", "/invocations", body=payload, headers=headers)
                if response.status != 200:
                    raise SystemExit(f"{url}: HTTP {response.status}: {response.data[:200]!r}")
                sink.write(response.data)
    seconds = time.perf_counter() - started
    pool.close()
    return seconds


def payloads(data: Path, strategy: BatchStrategy) -> Iterator[bytes]:
    if strategy is BatchStrategy.SINGLE_RECORD:
        with data.open("rb") as lines:
            yield from lines  # one line a request, as local mode sends them
        return
    batcher = make_batcher(SplitType.LINE, strategy, PAYLOAD_MB)
    with data.open("rb") as source:
        while chunk := source.read(read_size(PAYLOAD_MB)):
            batcher.add(chunk)
            while batcher.has_batch():
                yield batcher.next_batch().payload
    batcher.done_adding()
    while batcher.has_batch():
        yield batcher.next_batch().payload


# --- (b) and (c): batchform transform ---------------------------------------------------


def transform(model: list[str], data: Path, strategy: str, concurrency: int, work: Path) -> float:
    """Run `batchform transform`; the job's own seconds, from its summary."""
    output = work / "out"
    command = [sys.executable, "-m", "batchform.cli", "transform", *model]
    command += ["--input", str(data), "--output", str(output), "--content-type", "text/csv"]
    command += ["--split-type", "Line", "--strategy", strategy, "--assemble-with", "Line"]
    command += ["--concurrency", str(concurrency), "--max-payload", str(PAYLOAD_MB)]
    environment = {
        **os.environ,
        "BATCHFORM_HOME": str(work / "home"),
        "COLUMNS": "200",  # one summary row a line, to be read back
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(WORKERS),
    }
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: never blocks the child
        code = subprocess.run(command, env=environment, stderr=errors, check=False).returncode
        errors.seek(0)
        report = errors.read().decode(errors="replace")
    found = _JOB_SECONDS.search(report)
    if code != 0 or found is None:
        raise SystemExit(f"batchform transform failed ({code}):\n{report[-3000:]}")
    return float(found.group(1))


def output_digest(output: Path) -> str:
    """One digest over every `.out` file, in name order."""
    digest = hashlib.sha256()
    for path in sorted(output.rglob("*.out")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- one model, every approach ----------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A folder of CSV objects (hard links to one generated file, to make it longer)."""

    folder: Path
    records: int

    @property
    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.csv"))

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files)


@dataclass(frozen=True)
class Approach:
    label: str
    concurrency: int
    model: tuple[str, ...] = ()  # batchform transform's model flags
    naive_url: str | None = None  # or the naive loop, against this server

    def execute(self, data: Dataset, strategy: str, work: Path) -> tuple[float, str]:
        """Seconds taken and the digest of the output."""
        if self.naive_url is not None:
            seconds = naive_loop(self.naive_url, data, strategy, work / "out")
        else:
            seconds = transform(list(self.model), data.folder, strategy, self.concurrency, work)
        return seconds, output_digest(work / "out")


def approaches(url: str, handler: Path) -> list[Approach]:
    http = ("--model-url", url)
    return [
        Approach("(a) naive loop", 1, naive_url=url),
        *(Approach("(b) --model-url", concurrency, http) for concurrency in CONCURRENCY),
        Approach("(c) in-process", 4, ("--model", str(handler))),
    ]


def bench_model(
    name: str, datasets: dict[str, Dataset], one_record: Dataset, repeat: int
) -> list[Run]:
    """Every approach on every dataset, the best of `repeat` rounds for each."""
    with model_server(MODELS[name]) as url:
        ways = approaches(url, MODELS[name])
        # What a job costs beyond its records (starting and stopping the model), so the
        # table compares throughput, not start-up: (c) starts its workers inside the job,
        # (b) calls a server that was started before.
        fixed = {
            way.label: min(fixed_seconds(way, one_record) for _ in range(repeat)) for way in ways
        }
        cells = [(strategy, data, way) for strategy, data in datasets.items() for way in ways]
        best: list[Run | None] = [None] * len(cells)
        # Whole rounds, not one cell N times: a busy moment on a shared machine then
        # spoils one sample of several cells rather than every sample of one.
        for _ in range(repeat):
            for index, (strategy, data, way) in enumerate(cells):
                run = bench(name, way, strategy, data, fixed[way.label])
                previous = best[index]
                if previous is None or run.seconds < previous.seconds:
                    best[index] = run
        return [run for run in best if run is not None]


def fixed_seconds(way: Approach, one_record: Dataset) -> float:
    if way.naive_url is not None:
        return 0.0  # timed from its first request, nothing to start
    with tempfile.TemporaryDirectory(prefix="bf-container-") as tmp:
        return way.execute(one_record, "MultiRecord", Path(tmp))[0]


def bench(model: str, way: Approach, strategy: str, data: Dataset, fixed: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bf-container-") as tmp:
        seconds, digest = way.execute(data, strategy, Path(tmp))
    print(f"  {model} {strategy} {way.label} x{way.concurrency}: {seconds:.2f} s", flush=True)
    steady = max(seconds - fixed, 1e-3)
    timing = {"seconds": seconds, "fixed_seconds": fixed, "steady_seconds": steady}
    return Run(
        model,
        way.label,
        strategy,
        way.concurrency,
        **timing,
        bytes=data.size,
        records=data.records,
        output_sha256=digest,
    )


def datasets(scale: float, copies: int) -> tuple[dict[str, Dataset], Dataset]:
    """MultiRecord: `copies` objects of the generated file; SingleRecord: its head; and
    its first record alone, to measure what a job costs besides its records."""
    multi_bytes = int(75e6 * scale)
    generated = DATA / f"narrow-{multi_bytes}.csv"
    rows = ensure(generated, write_narrow_csv, multi_bytes)
    single_rows = max(100, int(20000 * scale))
    chosen = {
        "MultiRecord": Dataset(_linked(generated, copies), rows * copies),
        "SingleRecord": Dataset(_linked(_head(generated, single_rows), 1), single_rows),
    }
    return chosen, Dataset(_linked(_head(generated, 1), 1), 1)


def _head(source: Path, rows: int) -> Path:
    path = DATA / f"{source.stem}-head-{rows}.csv"
    if not path.exists():
        with source.open("rb") as lines:
            path.write_bytes(b"".join(lines.readline() for _ in range(rows)))
    return path


def _linked(source: Path, copies: int) -> Path:
    folder = DATA / f"{source.stem}-x{copies}"
    folder.mkdir(exist_ok=True)
    for index in range(copies):
        link = folder / f"part-{index}.csv"
        if not link.exists():
            os.link(source, link)
    return folder


# --- the report -------------------------------------------------------------------------


def cores_available(seconds: float = 1.0) -> float:
    """How many cores this run really has: one spinning process per core, CPU over wall.

    On a shared machine another job can take a core for a while, and the concurrency
    ratios mean little without knowing it.
    """
    count = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        pool.map(_spin, [0.0] * count)  # the workers' start-up is not what is measured
        started = time.monotonic()
        cpu = sum(pool.map(_spin, [seconds] * count))
        return cpu / (time.monotonic() - started)


def _spin(seconds: float) -> float:
    began = time.process_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return time.process_time() - began


def table(runs: list[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        naive = _find(runs, run.model, run.strategy, "(a)")
        same = run.output_sha256 == naive.output_sha256
        rows.append(
            [
                run.model,
                run.strategy,
                run.approach,
                str(run.concurrency),
                f"{run.seconds:.2f}",
                f"{run.fixed_seconds:.2f}",
                f"{run.bytes / 1e6 / run.steady_seconds:.1f}",
                f"{run.records / run.steady_seconds:,.0f}",
                f"{naive.steady_seconds / run.steady_seconds:.2f}x",
                "yes" if same else "NO",
            ]
        )
    return rows


def _find(runs: list[Run], model: str, strategy: str, approach: str, conc: int = 0) -> Run:
    for run in runs:
        matches = run.model == model and run.strategy == strategy
        if matches and run.approach.startswith(approach) and conc in (0, run.concurrency):
            return run
    raise LookupError(f"{model} {strategy} {approach} x{conc}")


def ratios(runs: list[Run]) -> list[str]:
    """The issue's targets: (b) at 4 over (a) for numpy, HTTP over in-process for MultiRecord."""
    lines = []
    for model in dict.fromkeys(run.model for run in runs):
        for strategy in STRATEGIES:
            naive = _find(runs, model, strategy, "(a)").steady_seconds
            http = _find(runs, model, strategy, "(b)", 4).steady_seconds
            local = _find(runs, model, strategy, "(c)").steady_seconds
            concurrent = f"(b) x4 / (a) = {naive / http:.2f}x"
            if model == "numpy":
                concurrent += " (target >= 1.8)"
            versus = f"HTTP (b) x4 / in-process (c) x4 = {local / http:.2f}x"
            if strategy == "MultiRecord":
                versus += " (target >= 0.8)"
            lines.append(f"{model} {strategy}: {concurrent}; {versus}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 75 MB and 20,000 records")
    parser.add_argument("--models", default="echo,numpy", help="comma-separated: echo, numpy")
    parser.add_argument("--repeat", type=int, default=1, help="best of N rounds per cell")
    args = parser.parse_args()
    cores_before = cores_available()
    runs = []
    for name in args.models.split(","):
        # The echo model costs nothing, so its MultiRecord run needs more data to last.
        data, one_record = datasets(args.scale, copies=ECHO_COPIES if name == "echo" else 1)
        runs += bench_model(name, data, one_record, args.repeat)
    header = ["model", "strategy", "approach", "conc", "job s", "start s"]
    header += ["MB/s", "records/s", "vs (a)", "same out"]
    print_table(
        f"Container throughput: serve-handler with {WORKERS} workers on {os.cpu_count()} cores",
        header,
        table(runs),
    )
    cores = f"cores available: {cores_before:.2f} before the run, {cores_available():.2f} after"
    summary = [*ratios(runs), cores]
    print("\n".join(summary))
    payload = {
        "runs": [asdict(run) for run in runs],
        "ratios": summary,
        "scale": args.scale,
        "repeat": args.repeat,
    }
    print(f"\nwritten {save_json('container_throughput', payload)}")


if __name__ == "__main__":
    main()
