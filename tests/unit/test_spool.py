"""Spooled answers: memfd bodies written into outputs in order, checksums, nothing leaked."""

from __future__ import annotations

import io
import os
import random
import socket
import threading
import time
from pathlib import Path

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchform.engine.checksum import crc32c_combine
from batchform.engine.job import TransformJob
from batchform.errors import ModelError
from batchform.jobs.lifecycle import JobStatus
from batchform.runtimes.base import Runtime, RuntimeContext
from batchform.runtimes.mock import MockRuntime
from batchform.runtimes.spool import SpooledBody, receive_fd, send_fd
from tests.unit.test_engine import outputs, request, write


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@given(st.binary(max_size=300), st.binary(max_size=3000))
def test_combined_checksum_is_the_checksum_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)


def test_combined_checksum_over_a_large_piece() -> None:
    a, b = os.urandom(1000), os.urandom(3 * 1024 * 1024 + 7)
    assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)


def test_a_spooled_body_lands_after_buffered_bytes_of_a_local_file(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    body = SpooledBody.of(data)
    assert body.header() == (len(data), crc32c.crc32c(data), data.endswith(b"\n"))
    path = tmp_path / "out"
    with path.open("wb") as file:
        file.write(b"head,")  # still in the file's buffer: must come first
        body.write_to(file)
        file.write(b",tail")
    assert path.read_bytes() == b"head," + data + b",tail"
    assert body.read() == data
    body.close()
    body.close()  # closing twice is fine


def test_a_spooled_body_is_copied_into_files_without_a_descriptor() -> None:
    data = b"1,2\n" * 300_000
    body = SpooledBody.of(data)
    sink = io.BytesIO()
    sink.write(b">")
    body.write_to(sink)
    assert sink.getvalue() == b">" + data
    assert body.ends_with_newline
    body.close()


def test_descriptors_pass_over_a_socket_pair() -> None:
    left, right = socket.socketpair()
    with left, right:
        body = SpooledBody.of(b"answer")
        send_fd(left, body.fd)
        received = SpooledBody(receive_fd(right), *body.header())
        body.close()  # the receiver's copy stays valid on its own
        assert received.read() == b"answer"
        received.close()
        left.close()
        with pytest.raises(EOFError):
            receive_fd(right)


def spooling_job(tmp_path: Path, answer: object, **overrides: object) -> TransformJob:
    def factory(context: RuntimeContext) -> Runtime:
        return MockRuntime(answer, spool=True)  # type: ignore[arg-type]

    return TransformJob(
        request(tmp_path, **overrides), factory, str(tmp_path / "ws"), log=lambda line: None
    )


def test_spooled_answers_are_written_in_order_with_the_right_checksum(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i * 7) for i in range(200_000))
    write(tmp_path, "a.csv", rows)
    write(tmp_path, "b.csv", b"x\ny")

    def shuffled(payload: bytes) -> bytes:
        time.sleep(random.random() / 100)  # answers complete out of order
        return payload.rstrip(b"\n")  # AssembleWith=Line must add the newline back

    committed: dict[str, int] = {}
    job = spooling_job(tmp_path, shuffled, MaxConcurrentTransforms=4, MaxPayloadInMB=1)
    job.on_commit = lambda result, checksum: committed.__setitem__(result.key, checksum)
    before = open_fds()
    outcome = job.run()
    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    written = outputs(tmp_path)
    assert written["a.csv.out"] == rows
    assert written["b.csv.out"] == b"x\ny\n"
    assert committed == {key: crc32c.crc32c(written[f"{key}.out"]) for key in ("a.csv", "b.csv")}
    assert outcome.progress.bytes_written == len(rows) + 4
    assert open_fds() <= before


def test_a_failed_object_frees_the_answers_waiting_for_it(tmp_path: Path) -> None:
    rows = b"".join(b"%d\n" % i for i in range(300_000))
    write(tmp_path, "a.csv", rows)
    write(tmp_path, "b.csv", b"1\n2\n")

    def fails_late(payload: bytes) -> bytes:
        if payload.startswith(b"0\n"):
            time.sleep(0.3)  # later answers wait behind this one, then it fails
            raise ModelError(400, "no")
        return payload

    before = open_fds()
    outcome = spooling_job(tmp_path, fails_late, MaxConcurrentTransforms=4, MaxPayloadInMB=1).run()
    assert outcome.status is JobStatus.FAILED
    assert sorted(outputs(tmp_path)) == ["b.csv.out"]
    assert open_fds() <= before


def test_a_stopped_job_leaves_no_output_and_no_descriptors(tmp_path: Path) -> None:
    rows = b"".join(b"%d\n" % i for i in range(3_000_000))  # about 20 payloads
    write(tmp_path, "a.csv", rows)
    calls = threading.Semaphore(0)

    def slow(payload: bytes) -> bytes:
        calls.release()
        time.sleep(0.05)
        return payload

    job = spooling_job(tmp_path, slow, MaxConcurrentTransforms=2, MaxPayloadInMB=1)
    threading.Thread(target=lambda: (calls.acquire(), calls.acquire(), job.stop.set())).start()
    before = open_fds()
    outcome = job.run()
    assert outcome.status is JobStatus.STOPPED
    assert outputs(tmp_path) == {}
    assert open_fds() <= before
