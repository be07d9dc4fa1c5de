"""Valid-alert latency while slow clients drip their requests: the real gunicorn server.

Starts ``gunicorn 'app:create_app()' -c config/gunicorn.conf.py`` (SQLite file, a private
redis-server; ``WEB_WORKERS`` 1, ``WEB_THREADS`` 4 unless given), opens ``--drippers``
connections that each send a webhook request one byte every ``--drip-every`` seconds, and
meanwhile posts ``--alerts`` valid alerts one after the other. Prints p50/p99/max latency of
the valid alerts with and without the drippers, and what the drippers got.

    .venv/bin/python -m bench.slow_clients
    .venv/bin/python -m bench.slow_clients --drippers 200 --drip-every 1
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.benchtools import end_process, free_port, percentile, private_redis
from bench.webhook import SECRET, gunicorn

ROOT = Path(__file__).resolve().parents[1]

HEAD = (
    b"POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
)


def post_alerts(port: int, count: int, tag: str) -> list[float]:
    """Latency (ms) of ``count`` valid alerts, sent one after the other on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    for n in range(count):
        body = json.dumps(
            {"secret": SECRET, "ticker": "AAPL", "action": "buy", "quantity": 1, "id": f"{tag}-{n}"}
        )
        started = time.perf_counter()
        conn.request("POST", "/webhook", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if answer.status != 202:
            raise RuntimeError(f"valid alert answered {answer.status}")
        time.sleep(0.05)
    conn.close()
    return latencies


def line(label: str, ms: list[float]) -> str:
    return (
        f"{label:<28} n={len(ms):<4} p50={percentile(ms, 50):7.1f} ms  p99={percentile(ms, 99):7.1f} ms"
        f"  max={max(ms):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drippers", type=int, default=40)
    parser.add_argument("--drip-every", type=float, default=2.0, help="seconds between a dripper's bytes")
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4, help="WEB_THREADS")
    args = parser.parse_args()
    port = free_port()
    with private_redis() as redis_url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "REDIS_URL": redis_url,
            "WEB_WORKERS": "1",
            "WEB_THREADS": str(args.threads),
            "RATE_LIMIT": "100000/minute",
        }
        server = gunicorn("app:create_app()", port, env, str(ROOT))
        try:
            post_alerts(port, 5, "warm")
            quiet = post_alerts(port, args.alerts, "quiet")
            drippers = [
                socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(args.drippers)
            ]
            for conn in drippers:
                conn.sendall(HEAD[:20])
            done = threading.Event()
            sent = [20] * len(drippers)

            def drip() -> None:
                while not done.wait(args.drip_every):
                    for i, conn in enumerate(drippers):
                        if sent[i] < len(HEAD):
                            try:
                                conn.send(HEAD[sent[i] : sent[i] + 1])
                                sent[i] += 1
                            except OSError:
                                sent[i] = len(HEAD)

            dripping = threading.Thread(target=drip, daemon=True)
            dripping.start()
            time.sleep(args.drip_every + 0.5)
            busy = post_alerts(port, args.alerts, "busy")
            done.set()
            dripping.join()
            outcomes: Counter[str] = Counter()
            for conn in drippers:
                try:
                    reply = conn.recv(64)
                    outcomes[reply.split(b"\r\n", 1)[0].decode() or "closed"] += 1
                except OSError as exc:
                    outcomes[type(exc).__name__] += 1
                conn.close()
        finally:
            end_process(server, 15)
    print(
        f"tv2ib slow-client benchmark: {os.cpu_count()} cores, 1 gunicorn worker x {args.threads} threads, "
        f"{args.drippers} clients dripping one byte every {args.drip_every:g} s"
    )
    print(line("valid alerts, no drippers", quiet))
    print(line("valid alerts, drippers on", busy))
    print("drippers got:", dict(outcomes))


if __name__ == "__main__":
    main()
