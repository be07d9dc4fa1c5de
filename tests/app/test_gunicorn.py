"""The real server: gunicorn with config/gunicorn.conf.py on a free port, real Redis and SQLite."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_helpers import SECRET, alert_body, queued_jobs
from gunicorn_server import gunicorn_env, running_gunicorn
from support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "app:create_app()", "-c", "config/gunicorn.conf.py"]

pytestmark = pytest.mark.e2e
_env = gunicorn_env


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    # A short request deadline keeps the slow-client tests short.
    with running_gunicorn(redis_url, tmp_path, REQUEST_TIMEOUT_SECONDS="3") as base:
        yield base


def test_webhook_end_to_end(server, redis_client, tmp_path):
    answer = httpx.post(f"{server}/webhook", json=alert_body(), timeout=5)
    assert answer.status_code == 202
    alert_id = answer.json()["alert_id"]
    assert [j.args for j in queued_jobs(redis_client)] == [(alert_id,)]
    assert httpx.get(f"{server}/readyz", timeout=5).json()["database"] == "ok"
    assert (
        httpx.post(f"{server}/webhook", json=alert_body(secret="wrong-secret-0000000"), timeout=5).status_code
        == 401
    )
    # the canonical log line, as JSON, with no secret anywhere in the server's output
    log_text = (tmp_path / "gunicorn.log").read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    accepted = [doc for doc in lines if doc.get("outcome") == "accepted"]
    assert accepted and accepted[0]["alert_id"] == alert_id and accepted[0]["http_status"] == 202
    assert accepted[0]["client"] == "127.0.0.1" and accepted[0]["latency_ms"] >= 0
    assert SECRET not in log_text


def test_a_kept_alive_connection_outlasts_the_usual_clients_idle_expiry(server):
    """httpx, Node and nginx's upstream pool drop an idle connection after about 5 s; a server that
    closed its side at the same moment would race a client's next request on it (a reset: a lost
    alert for a client that does not resend). The server keeps it longer, so the client decides."""
    import http.client

    port = int(server.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for pause in (0.0, 6.0):
            time.sleep(pause)
            body = json.dumps(alert_body(id=f"kept-alive-{pause:g}"))
            connection.request("POST", "/webhook", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            assert (answer.status, answer.getheader("Connection")) == (202, "keep-alive"), answer.read()
            answer.read()
    finally:
        connection.close()


def _connect(server: str) -> socket.socket:
    port = int(server.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_slow_client_cannot_stall_intake_and_gets_408(server):
    slow = _connect(server)
    body = json.dumps(alert_body()).encode()
    slow.sendall(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    time.sleep(0.3)  # the slow request is being read
    for i in range(4):
        answer = httpx.post(f"{server}/webhook", json=alert_body(id=f"fast-{i}"), timeout=3)
        assert answer.status_code == 202
    reply = slow.recv(4096)  # blocks until the request deadline answers
    assert reply.startswith(b"HTTP/1.1 408")
    slow.close()


def test_client_that_never_sends_a_body_after_headers_is_refused(server):
    idle = _connect(server)
    idle.sendall(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
    )
    assert httpx.get(f"{server}/healthz", timeout=3).status_code == 200
    assert idle.recv(4096).startswith(b"HTTP/1.1 408")
    idle.close()


def test_clients_stalling_in_their_headers_are_dropped_and_intake_goes_on(server):
    # More stalled clients than the worker has threads (2): config/gunicorn_gthread.py reads
    # requests without a thread, so they hold none.
    stalled = [_connect(server) for _ in range(3)]
    for conn in stalled:
        conn.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    answer = httpx.post(f"{server}/webhook", json=alert_body(id="after-slowloris"), timeout=15)
    assert answer.status_code == 202
    for conn in stalled:
        conn.settimeout(15)
        assert conn.recv(4096).startswith(b"HTTP/1.1 408")  # at the request deadline
        assert conn.recv(4096) == b""  # and closed
        conn.close()


def test_oversized_content_length_is_413_before_the_body_is_sent(server):
    conn = _connect(server)
    conn.sendall(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 66560\r\n\r\n"
    )
    reply = conn.recv(4096)  # answered without a single body byte
    assert reply.startswith(b"HTTP/1.1 413")
    conn.close()


def test_chunked_bodies_are_bounded(server):
    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // 1024):
            yield b" " * 1024

    big = httpx.post(
        f"{server}/webhook",
        content=chunks(80 * 1024),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert big.status_code == 413
    small = json.dumps(alert_body(id="chunked")).encode()
    ok = httpx.post(f"{server}/webhook", content=iter([small[:20], small[20:]]), timeout=5)
    assert ok.status_code == 202


def test_missing_secret_stops_gunicorn_with_a_clear_message(tmp_path):
    env = _env(PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    command = [*GUNICORN[:-1], str(ROOT / "config" / "gunicorn.conf.py")]
    result = subprocess.run(
        command, cwd=tmp_path, env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "WEBHOOK_SECRET is not set" in output
    assert "Traceback" not in output


def test_short_secret_stops_create_app_without_traceback(tmp_path):
    code = "from app import create_app; create_app()"
    env = _env(WEBHOOK_SECRET="short", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "at least 16" in result.stderr and "Traceback" not in result.stderr


def test_relay_thread_runs_inside_gunicorn(server, redis_client, tmp_path):
    """An alert committed while Redis was unreachable is enqueued by the web workers' relay."""
    from app.webhook import store
    from core.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'tv2ib.db'}")
    try:
        recorded = store.record_valid(
            engine,
            payload={"ticker": "AAPL", "action": "buy", "account": None},
            raw_body="{}",
            client_ip=None,
            idempotency_key="relay-in-gunicorn",
            window_seconds=60,
        )
    finally:
        engine.dispose()
    wait_until(lambda: queued_jobs(redis_client), 10, "the relay enqueued nothing", interval=0.1)
    assert [j.args for j in queued_jobs(redis_client)] == [(recorded.alert_id,)]


def test_event_streams_that_would_starve_intake_stop_gunicorn_with_a_clear_message(tmp_path):
    env = _env(WEBHOOK_SECRET=SECRET, PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
               WEB_THREADS="2", EVENTS_MAX_STREAMS="2", PYTHONPATH=str(ROOT))  # fmt: skip
    command = [*GUNICORN[:-1], str(ROOT / "config" / "gunicorn.conf.py")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "tv2ib: configuration error: EVENTS_MAX_STREAMS (2) must be less than WEB_THREADS (2)" in output
    assert "Traceback" not in output and "Booting worker" not in output


FORWARDED_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}


@pytest.mark.parametrize(("trusted_proxies", "secure"), [("0", False), ("1", True)])
def test_only_trusted_proxies_make_a_request_https(redis_url, tmp_path, trusted_proxies, secure):
    # A plain-HTTP sign-in from loopback that claims https in forwarded headers: gunicorn must not
    # believe it (its default trusts loopback); only the app's TRUSTED_PROXIES may, and the
    # dashboard's cookie is Secure exactly when the app believes the request is https.
    token = "admin-token-0123456789"
    with running_gunicorn(redis_url, tmp_path, ADMIN_TOKEN=token, TRUSTED_PROXIES=trusted_proxies) as base:
        answer = httpx.post(f"{base}/login", data={"token": token}, headers=FORWARDED_HTTPS, timeout=5)
    assert answer.status_code == 302, answer.text
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("tv2ib_session=")
    assert ("; Secure" in cookie) is secure, cookie


def test_tradingview_only_behind_a_trusted_proxy_refuses_other_senders_with_the_reason(
    redis_url, redis_client, tmp_path
):
    """``TRADINGVIEW_IPS_ONLY`` through the real server, as behind one reverse proxy on the same host
    (loopback, ``TRUSTED_PROXIES=1``): the proxy's own ``X-Forwarded-For`` entry (the rightmost)
    decides; a refusal is a 403 saying why, logged, counted in /metrics and for ``auth_failed``."""
    from core.notice_digest import AUTH_BUCKET

    def send(forwarded: str | None) -> httpx.Response:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return httpx.post(
            f"{base}/webhook", json=alert_body(id=f"tv-{forwarded}"), headers=headers, timeout=5
        )

    with running_gunicorn(redis_url, tmp_path, TRADINGVIEW_IPS_ONLY="true", TRUSTED_PROXIES="1") as base:
        assert send("198.51.100.7, 52.89.214.238").status_code == 202  # the proxy saw TradingView
        forged = send("52.89.214.238, 203.0.113.9")  # a client's own entry on the left gains nothing
        direct = send(None)  # loopback itself, no proxy header
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert (forged.status_code, direct.status_code) == (403, 403)
    assert forged.json()["error"] == "forbidden"
    message = forged.json()["message"]
    assert message.startswith("not sent by TradingView: TRADINGVIEW_IPS_ONLY accepts alerts only from")
    assert "52.89.214.238" in message and "this request came from '203.0.113.9'" in message
    assert "came from '127.0.0.1'" in direct.json()["message"]
    assert len(queued_jobs(redis_client)) == 1  # only TradingView's alert was taken
    lines = [
        json.loads(line)
        for line in (tmp_path / "gunicorn.log").read_text().splitlines()
        if line.startswith("{")
    ]
    refused = [doc for doc in lines if doc.get("outcome") == "forbidden"]
    assert [(doc["client"], doc["http_status"]) for doc in refused] == [
        ("203.0.113.9", 403),
        ("127.0.0.1", 403),
    ]
    assert 'reason="not sent by TradingView' in refused[0]["msg"]
    assert 'tv2ib_webhook_requests_total{outcome="forbidden",status="403"} 2.0' in metrics
    counted = {k.decode(): v.decode() for k, v in redis_client.hgetall(AUTH_BUCKET).items()}
    assert counted["address 203.0.113.9"] == "1" and counted["address 127.0.0.1"] == "1"
