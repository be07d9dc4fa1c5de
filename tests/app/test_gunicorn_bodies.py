"""Slow, short and malformed request bodies against the real server, over raw sockets.

gunicorn (config/gunicorn_gthread.py) reads each request on its event loop and gives it to one of
the worker's two threads only once it is complete: slow clients hold no thread, and get 408 at
REQUEST_TIMEOUT_SECONDS; a body that ends early or is malformed gets 400, never a stored alert.
"""

from __future__ import annotations

import json
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from app_helpers import SECRET, alert_body
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


# ---- fuzz: no request framing or body makes a 5xx, a crash, or an answer the README does not list

README_CODES = {200, 202, 400, 401, 403, 408, 413, 415, 422, 429}
FUZZ_CASES = 160


def _fuzz_json(rng: random.Random) -> bytes:
    """An alert as text: sometimes with duplicate keys, a wrong or missing secret, odd values."""
    pairs = [("secret", SECRET), ("ticker", "NASDAQ:AAPL"), ("action", rng.choice(["buy", "sell", "hold"]))]
    pairs.append(("quantity", rng.choice([1, 10, 0, -1, 1e12, "5", None])))
    pairs.append(("id", f"fuzz-{rng.randrange(10**9)}"))
    for _ in range(rng.randrange(3)):  # duplicate keys, last or first wins depending on the parser
        pairs.insert(rng.randrange(len(pairs) + 1), rng.choice(pairs))
    if rng.random() < 0.1:
        pairs = [(k, v) for k, v in pairs if k != "secret"] + [("secret", "wrong-secret-000000000000")]
    text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    if rng.random() < 0.1:
        text = text[: rng.randrange(len(text))]  # cut JSON
    return text.encode()


def _chunked(rng: random.Random, body: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(body):
        size = rng.randint(1, max(1, len(body) - pos))
        ext = b";x=y" if rng.random() < 0.2 else b""
        out += b"%x%s\r\n%s\r\n" % (size, ext, body[pos : pos + size])
        pos += size
    return out + (b"0\r\nX-T: 1\r\n\r\n" if rng.random() < 0.2 else b"0\r\n\r\n")


def _fuzz_request(rng: random.Random) -> tuple[bytes, bool, bool]:
    """(bytes to send, close the sending side after them, expect a stall until the deadline)."""
    body = (
        _fuzz_json(rng)
        if rng.random() < 0.9
        else bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    )
    kind = rng.choice(["length", "short", "long", "chunked", "bad-chunk", "no-last-chunk", "both", "stall"])
    if kind == "length":
        return HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body, False, False
    if kind == "short":  # fewer bytes than announced, then the client closes its side
        return HEAD + b"Content-Length: %d\r\n\r\n" % (len(body) + rng.randint(1, 50)) + body, True, False
    if kind == "long":  # more bytes than announced: the rest is a second, broken request
        return HEAD + b"Content-Length: %d\r\n\r\n" % max(0, len(body) - 5) + body, True, False
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    if kind == "chunked":
        return chunked + _chunked(rng, body), False, False
    if kind == "bad-chunk":
        encoded = bytearray(_chunked(rng, body))
        bad = rng.choice([b"zz", b"-1", b"0x10", b" 5", b"f" * 20, b"1_0", b""])
        cut = rng.choice(["size", "crlf"])
        if cut == "size":
            return chunked + bad + b"\r\n" + bytes(encoded), True, False
        crlf = encoded.find(b"\r\n", encoded.find(b"\r\n") + 2)
        return chunked + bytes(encoded[:crlf]) + b"XX" + bytes(encoded[crlf + 2 :]), True, False
    if kind == "no-last-chunk":
        encoded = _chunked(rng, body)
        return chunked + encoded[: encoded.rfind(b"0\r\n")], True, False
    if kind == "both":  # Content-Length and Transfer-Encoding together (a smuggling attempt)
        return (
            HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(rng, body),
            True,
            False,
        )
    return HEAD + b"Content-Length: %d\r\n\r\n" % (len(body) + 10) + body, False, True


def _send_fuzz(server: str, raw: bytes, close_after: bool, seed: int) -> int:
    rng = random.Random(seed)
    with connect(server) as conn:
        pos = 0
        while pos < len(raw):  # in random pieces, sometimes with a pause: framing split anywhere
            step = rng.randint(1, max(1, len(raw) // 3))
            conn.sendall(raw[pos : pos + step])
            pos += step
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0, 0.05))
        if close_after:
            conn.shutdown(socket.SHUT_WR)
        return answer_of(conn)[0]


def test_fuzzed_framing_and_bodies_never_get_a_5xx(server, tmp_path):
    rng = random.Random(20261130)
    cases = [(*_fuzz_request(rng), rng.randrange(2**32)) for _ in range(FUZZ_CASES)]
    stalls = [c for c in cases if c[2]][:8]  # each waits for the deadline, all at the same time
    cases = [c for c in cases if not c[2]] + stalls
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda c: _send_fuzz(server, c[0], c[1], c[3]), cases))
    print("fuzz answers:", sorted(Counter(statuses).items()))
    unexpected = sorted({s for s in statuses if s not in README_CODES})
    assert not unexpected, f"answers the README does not list: {unexpected}"
    assert statuses[-len(stalls) :] == [408] * len(stalls)
    assert {400, 202}.issubset(statuses)  # the fuzz reached both the parser's refusals and intake
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    logged = [line["http_status"] for line in lines if "http_status" in line]
    assert logged and max(logged) < 500
