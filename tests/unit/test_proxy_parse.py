"""The endpoint proxy's answer parser, fed the bytes of an answer as they may arrive."""

from __future__ import annotations

import pytest

from batchform.endpoints.proxy import parse_answer

LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 6\r\n\r\n1,2,3\n"
CHUNKED = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
)
CLOSE = b"HTTP/1.0 500 Oops\r\n\r\nmodel broke"


@pytest.mark.parametrize(
    ("raw", "status", "body", "reusable"),
    [(LENGTH, 200, b"1,2,3\n", True), (CHUNKED, 200, b"abcde", True)],
    ids=["content-length", "chunked"],
)
def test_an_answer_is_whole_only_with_its_last_byte(
    raw: bytes, status: int, body: bytes, reusable: bool
) -> None:
    buffer = bytearray()
    for byte in raw[:-1]:
        buffer.append(byte)
        assert parse_answer(buffer, closed=False) is None
    buffer.append(raw[-1])
    parsed = parse_answer(buffer, closed=False)
    assert parsed is not None
    answer, keeps = parsed
    assert (answer.status, answer.body, keeps) == (status, body, reusable)


def test_a_body_without_length_ends_with_the_close() -> None:
    buffer = bytearray(CLOSE)
    assert parse_answer(buffer, closed=False) is None
    parsed = parse_answer(buffer, closed=True)
    assert parsed is not None
    assert (parsed[0].status, parsed[0].body, parsed[1]) == (500, b"model broke", False)


def test_connection_close_is_not_kept_and_headers_are_lower_case() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Amzn-Thing: v\r\nContent-Length: 0\r\n\r\n"
    parsed = parse_answer(bytearray(raw), closed=False)
    assert parsed is not None
    assert parsed[0].headers["x-amzn-thing"] == "v"
    assert parsed[1] is False


def test_garbage_is_not_an_answer() -> None:
    with pytest.raises(ValueError, match="not an HTTP answer"):
        parse_answer(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"), closed=False)
