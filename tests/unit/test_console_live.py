"""The live pages' log reading and event framing: tails, resumption, reconnects."""

from __future__ import annotations

from pathlib import Path

import orjson

from batchform.console.live import event, lines_after, start_offset, tail


def _log(path: Path, count: int, partial: str = "") -> None:
    lines = "".join(
        f"2026-01-02T03:04:05.{index:03d}Z [data-log] line {index}\n" for index in range(count)
    )
    path.write_text(lines + partial)


def test_a_tail_is_the_last_lines_oldest_first_and_where_they_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _log(log, 10, partial="2026-01-02T03:04:06.000Z [data-log] still being writ")
    lines, offset = tail(log, count=3)
    assert lines == [
        "03:04:05.007 [data-log] line 7",
        "03:04:05.008 [data-log] line 8",
        "03:04:05.009 [data-log] line 9",
    ]
    assert log.read_bytes()[:offset].endswith(b"line 9\n")  # the cut-off line is not read


def test_lines_after_an_offset_resume_exactly_and_in_bounded_pages(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _log(log, 3)
    _, offset = tail(log)
    with log.open("a") as more:
        more.write("2026-01-02T03:04:07.000Z [instance-1] model says hi\n")
    lines, after = lines_after(log, offset)
    assert lines == ["03:04:07.000 [instance-1] model says hi"]
    assert lines_after(log, after) == ([], after)
    first, middle = lines_after(log, 0, limit=2)
    assert len(first) == 2 and lines_after(log, middle)[0][0].endswith("line 2")


def test_a_missing_or_recreated_log_starts_again(tmp_path: Path) -> None:
    assert tail(tmp_path / "absent") == ([], 0)
    log = tmp_path / "log"
    _log(log, 1)
    lines, _ = lines_after(log, 10_000)  # an offset past the end: a new, shorter file
    assert lines == ["03:04:05.000 [data-log] line 0"]


def test_a_reconnect_resumes_from_the_browsers_last_event_id() -> None:
    assert start_offset("120", "40") == 120
    assert start_offset(None, "40") == 40
    assert start_offset("garbage", None) == 0


def test_events_are_framed_as_server_sent_events() -> None:
    framed = event("log", ["a", "b"], 42)
    assert framed.startswith(b"id: 42\nevent: log\ndata: ")
    assert framed.endswith(b"\n\n")
    assert orjson.loads(framed.split(b"data: ", 1)[1]) == ["a", "b"]
