"""Slow, short and malformed request bodies against the real server, over raw sockets.

gunicorn (config/gunicorn_gthread.py) reads each request on its event loop and gives it to one of
the worker's two threads only once it is complete: slow clients hold no thread, and get 408 at
REQUEST_TIMEOUT_SECONDS; a body that ends early or is malformed gets 400, never a stored alert.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_helpers import alert_body
from gunicorn_server import running_gunicorn
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.e2e

REQUEST_TIMEOUT = 4  # REQUEST_TIMEOUT_SECONDS of the server under test
HEAD = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with running_gunicorn(
        redis_url, tmp_path, REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT), RATE_LIMIT="100000/minute"
    ) as base:
        yield base


def connect(server: str) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", int(server.rsplit(":", 1)[1])), timeout=REQUEST_TIMEOUT + 10
    )


def answer_of(conn: socket.socket) -> tuple[int, dict]:
    """Read one response (until the server closes or its Content-Length is in): (status, JSON body)."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and head.startswith(b"HTTP/1.1 100 "):
            data = body
            continue
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    status = int(head.split()[1])
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        doc = {"text": body[:200].decode(errors="replace")}
    return status, doc


def ask(server: str, raw: bytes, *, close_after: bool = False) -> tuple[int, dict]:
    with connect(server) as conn:
        conn.sendall(raw)
        if close_after:
            conn.shutdown(socket.SHUT_WR)  # the client says it has nothing more to send
        return answer_of(conn)


def stored_alerts(tmp_path: Path) -> int:
    engine = create_engine(f"sqlite:///{tmp_path / 'tv2ib.db'}")
    try:
        with engine.connect() as db:
            return db.execute(text("SELECT count(*) FROM alerts")).scalar_one()
    finally:
        engine.dispose()


def answered(conn: socket.socket) -> bool:
    """Has the server written anything to (or closed) this connection yet? (does not wait)"""
    with selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        return bool(sel.select(timeout=0))


def test_forty_drip_clients_do_not_hold_back_valid_alerts(server):
    """40 clients dripping a byte every 0.5 s; the worker has 2 threads. Valid alerts are answered
    202 while every dripper is still connected and unanswered; each dripper then gets 408."""
    drippers = [connect(server) for _ in range(40)]
    for conn in drippers:
        conn.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{")
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.5):
            for conn in drippers:
                try:
                    conn.send(b" ")
                except OSError:
                    pass

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    try:
        time.sleep(0.6)
        for n in range(5):
            # The timeout only bounds the test: stock gthread would never answer (both threads held).
            answer = httpx.post(
                f"{server}/webhook", json=alert_body(id=f"during-drip-{n}"), timeout=REQUEST_TIMEOUT - 1
            )
            assert answer.status_code == 202, answer.text
        assert not any(answered(conn) for conn in drippers)  # all 40 still dripping
        statuses = [answer_of(conn)[0] for conn in drippers]
    finally:
        stop.set()
        dripping.join()
        for conn in drippers:
            conn.close()
    assert statuses == [408] * 40


def test_stalled_chunked_body_is_408(server):
    with connect(server) as conn:
        conn.sendall(HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n')
        status, doc = answer_of(conn)
    assert status == 408 and doc["error"] == "request_timeout"


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", id="bad-chunk-size"),
        pytest.param(b"-2\r\n{}\r\n0\r\n\r\n", id="negative-chunk-size"),
        pytest.param(b"2\r\n{}XX0\r\n\r\n", id="missing-chunk-terminator"),
    ],
)
def test_malformed_chunked_body_is_400_not_500(server, tmp_path, chunks):
    status, doc = ask(server, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 400, doc
    assert doc["error"] == "bad_request" and "Traceback" not in json.dumps(doc)
    assert stored_alerts(tmp_path) == 0
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


def test_chunked_body_without_its_last_chunk_is_400(server, tmp_path):
    body = json.dumps(alert_body(id="cut-chunked")).encode()
    chunk = b"%x\r\n%s\r\n" % (len(body), body)  # no "0" chunk follows: the client closes instead
    status, doc = ask(server, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk, close_after=True)
    assert status == 400, doc
    assert stored_alerts(tmp_path) == 0


def test_body_shorter_than_its_content_length_is_400_and_not_stored(server, tmp_path):
    body = json.dumps(alert_body(id="cut")).encode()
    raw = HEAD + f"Content-Length: {len(body) + 40}\r\n\r\n".encode() + body
    status, doc = ask(server, raw, close_after=True)
    assert status == 400, doc
    assert "announced" in doc["message"]
    assert stored_alerts(tmp_path) == 0


def test_expect_100_continue_body_is_read_at_once(server):
    body = json.dumps(alert_body(id="expect")).encode()
    with connect(server) as conn:
        conn.sendall(HEAD + b"Expect: 100-continue\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(body)
        assert answer_of(conn)[0] == 202


def test_valid_chunked_alert_with_extensions_and_trailer_is_accepted(server):
    body = json.dumps(alert_body(id="chunked-ext")).encode()
    chunks = b"%x;name=v\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (
        10,
        body[:10],
        len(body) - 10,
        body[10:],
    )
    status, doc = ask(server, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    assert status == 202, doc
