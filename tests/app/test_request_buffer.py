"""When the web worker hands a buffered request to a thread (config/request_buffer.py)."""

from __future__ import annotations

import pytest

from config.request_buffer import MAX_HEAD_BYTES, request_ready

HEAD = b"POST /webhook HTTP/1.1\r\nHost: x\r\n"
LIMIT = 1000


@pytest.mark.parametrize(
    ("data", "ready"),
    [
        pytest.param(b"POST /webhook HTTP/1.1\r\nHost:", False, id="half-headers"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True, id="no-body"),
        pytest.param(HEAD + b"Content-Length: 5\r\n\r\nabc", False, id="body-on-its-way"),
        pytest.param(HEAD + b"Content-Length: 5\r\n\r\nabcde", True, id="body-complete"),
        pytest.param(HEAD + b"content-length: 5\r\n\r\nabcdeGET", True, id="pipelined-next-request"),
        pytest.param(HEAD + b"Content-Length: 5000\r\n\r\n", True, id="over-the-limit-refused-at-once"),
        pytest.param(HEAD + b"Content-Length: x\r\n\r\n", True, id="bad-length-refused-at-once"),
        pytest.param(HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", True, id="two-lengths"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nab", False, id="chunk-on-its-way"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False, id="no-last-chunk-yet"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True, id="chunked-complete"
        ),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n", True, id="trailer"
        ),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n", False, id="trailer-half"
        ),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", True, id="bad-chunk-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX", True, id="no-chunk-terminator"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n9999\r\n", True, id="chunk-over-the-limit"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, True, id="endless-size-line"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 6 + 1), True, id="endless-headers"
        ),
    ],
)
def test_request_ready(data: bytes, ready: bool) -> None:
    assert request_ready(data, LIMIT) is ready
