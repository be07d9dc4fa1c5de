"""The pipe's skeleton: tv2ib's processes, threads and hand-offs, doing none of its work.

How much of webhook → last leg is the shape of the pipe (gunicorn's loop and threads, a committed
row, a Redis queue, a worker's job thread, a database writer thread and the IB loop, two cores
shared by all of them) and how much is what tv2ib does inside it (validation, authentication,
dedup, risk, sizing, margin, the position protocol, logging)? This runs the skeleton alone, as
real processes on free loopback ports, the same way ``bench/latency.py`` runs tv2ib:

* web: gunicorn with tv2ib's worker class (``config/gunicorn_gthread.py``: the request read on
  the loop, handed to one of the threads), 2 workers x 4 threads as ``bench/latency.py`` runs it;
  ``POST /webhook`` parses the JSON, commits one row to SQLite (WAL, ``synchronous=NORMAL``) and
  pushes the id on a Redis list, then answers 202;
* worker: the main thread takes the id (``BLMOVE``, as worker/consumer.py) and reads the row; the
  IB loop's thread (ib_async) has a writer thread commit one UPDATE and waits for it (the
  decision's write), then places the bracket (entry, take-profit, stop-loss);
* ibsim behind the benchmark's relay (bench/pipeline.py), which stamps the last leg.

Samples as ``bench/latency.py``'s: one every ``--period`` seconds, on a kept-alive connection, from
just before the request to the relay's stamp of the stop-loss. Run it beside
``python -m bench.latency --steps`` on the same machine: the difference is tv2ib's own work.

    .venv/bin/python -m bench.skeleton                  # 100 samples, about 40 s
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import queue
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.benchtools import percentile, private_redis
from bench.pipeline import Relay
from cli.stack import ProcessStack, free_port, wait_until

QUEUE, TAKEN = "skeleton:queue", "skeleton:taken"
JOB_LINE = re.compile(r"job (\S+) picked-up ([\d.]+) on-wire ([\d.]+)")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, payload TEXT, status TEXT, received_at REAL)"
)


def _sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


# ---------------------------------------------------------------------- web (gunicorn imports this)


def web_app() -> Any:
    """``gunicorn 'bench.skeleton:web_app()'``: the webhook that stores, enqueues and answers."""
    from flask import Flask, request

    app = Flask(__name__)
    db_path, client = os.environ["SKELETON_DB"], redis.Redis.from_url(os.environ["SKELETON_REDIS"])
    local = threading.local()

    @app.post("/webhook")
    def webhook() -> tuple[dict[str, str], int]:
        alert = request.get_json()
        received = time.time()  # after the parse, as intake's received_at after its validation
        conn = getattr(local, "conn", None) or _sqlite(db_path)
        local.conn = conn
        alert_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO alerts VALUES (?, ?, 'received', ?)", (alert_id, json.dumps(alert), received)
        )
        conn.commit()
        client.lpush(QUEUE, alert_id)
        return {"alert_id": alert_id, "status": "queued"}, 202

    return app


# ---------------------------------------------------------------------- worker (its own process)


class Writer:
    """The worker's single database writer thread: a queued statement, committed; a future says done."""

    def __init__(self, db_path: str) -> None:
        self.conn = _sqlite(db_path)
        self.items: queue.SimpleQueue[tuple[str, tuple[Any, ...], Future[None]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="writer", daemon=True).start()

    def write(self, sql: str, params: tuple[Any, ...]) -> Future[None]:
        done: Future[None] = Future()
        self.items.put((sql, params, done))
        return done

    def _run(self) -> None:
        while True:
            sql, params, done = self.items.get()
            self.conn.execute(sql, params)
            self.conn.commit()
            done.set_result(None)


def worker_main(db_path: str, redis_url: str, ib_port: int) -> None:
    from ib_async import IB, LimitOrder, MarketOrder, Stock, StopOrder

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="ib", daemon=True).start()
    ib = IB()
    asyncio.run_coroutine_threadsafe(
        ib.connectAsync("127.0.0.1", ib_port, clientId=7, timeout=10), loop
    ).result(15)
    contract = asyncio.run_coroutine_threadsafe(
        ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")), loop
    ).result(15)[0]
    writer, reader, client = Writer(db_path), _sqlite(db_path), redis.Redis.from_url(redis_url)

    async def act(alert_id: str, alert: dict[str, Any]) -> None:
        await asyncio.wrap_future(
            writer.write("UPDATE alerts SET status = 'decided' WHERE id = ?", (alert_id,))
        )
        price = float(alert["price"])
        entry = MarketOrder("BUY", 1, orderRef=f"tv2ib:{alert_id}:entry", transmit=False)
        entry.orderId = ib.client.getReqId()
        tp = LimitOrder("SELL", 1, round(price * 1.01, 2), orderRef=f"tv2ib:{alert_id}:tp", transmit=False,
                        parentId=entry.orderId, ocaGroup=alert_id, ocaType=2)  # fmt: skip
        sl = StopOrder("SELL", 1, round(price * 0.995, 2), orderRef=f"tv2ib:{alert_id}:sl", transmit=True,
                       parentId=entry.orderId, ocaGroup=alert_id, ocaType=2)  # fmt: skip
        for order in (entry, tp, sl):
            ib.placeOrder(contract, order)
        on_wire[alert_id] = time.time()

    on_wire: dict[str, float] = {}
    print("skeleton worker ready", flush=True)
    while True:
        taken = client.blmove(QUEUE, TAKEN, 1, "LEFT", "RIGHT")
        if taken is None:
            continue
        alert_id, picked_up = taken.decode(), time.time()
        (payload,) = reader.execute("SELECT payload FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        asyncio.run_coroutine_threadsafe(act(alert_id, json.loads(payload)), loop).result(10)
        print(f"job {alert_id} picked-up {picked_up:.6f} on-wire {on_wire.pop(alert_id):.6f}", flush=True)
        client.lrem(TAKEN, 1, alert_id)


# ---------------------------------------------------------------------- the run


@dataclass
class Sample:
    """One alert: its start (perf_counter and wall clock) and the relay's stamp of its last leg."""

    t0: float
    t0_wall: float
    at_ibsim: float = 0.0

    @property
    def total_ms(self) -> float:
        return (self.at_ibsim - self.t0) * 1000


def run(samples: int, period: float) -> tuple[list[float], dict[str, float]]:
    """The skeleton's samples (ms, webhook -> last leg at ibsim) and the p50 of its spans."""
    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-skeleton-"))
    db_path = str(tmp / "skeleton.db")
    with _sqlite(db_path) as conn:
        conn.execute(SCHEMA)
    with private_redis() as redis_url:
        stack = ProcessStack(tmp, {"SKELETON_DB": db_path, "SKELETON_REDIS": redis_url})
        try:
            stack.start_sim()
            stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
            relay = Relay(stack.sim_port)
            web_port = free_port()
            stack._spawn("web", [sys.executable, "-m", "gunicorn", "bench.skeleton:web_app()", "--bind",
                                 f"127.0.0.1:{web_port}", "--workers", "2", "--threads", "4",
                                 "--worker-class", "config.gunicorn_gthread.TimeoutThreadWorker"], stack.env)  # fmt: skip
            worker = stack._spawn("worker", [sys.executable, "-m", "bench.skeleton", "--worker", db_path, redis_url,
                                             str(relay.port)], stack.env)  # fmt: skip
            wait_until(lambda: "ready" in stack.logs("worker") or worker.poll() is not None, 30,
                       lambda: f"worker did not start:\n{stack.logs('worker')}")  # fmt: skip
            web = http.client.HTTPConnection("127.0.0.1", web_port, timeout=5)
            wait_until(lambda: _up(web), 20, lambda: f"web did not start:\n{stack.logs('web')}", interval=0.1)
            web.connect()
            taken = _samples(web, relay, samples, period, stack)
            time.sleep(0.5)  # the last job's line
            return [s.total_ms for s in taken.values()], _spans(
                taken, db_path, stack.logs("worker", 1_000_000)
            )
        finally:
            stack.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def _samples(web: http.client.HTTPConnection, relay: Relay, count: int, period: float,
             stack: ProcessStack) -> dict[str, Sample]:  # fmt: skip
    """``count`` alerts one every ``period`` s on one kept-alive connection, as bench/latency.py's
    (the first ten, not kept, warm up connections and caches)."""
    taken: dict[str, Sample] = {}
    for i in range(count + 10):
        sample = Sample(time.perf_counter(), time.time())
        web.request("POST", "/webhook", json.dumps({"ticker": "AAPL", "action": "buy", "price": 190.0}),
                    {"Content-Type": "application/json"})  # fmt: skip
        alert_id = json.loads(web.getresponse().read())["alert_id"]
        ref = f"tv2ib:{alert_id}:sl"
        if not relay.wait_acked(ref, 10):
            raise SystemExit(f"sample {i}: no acknowledgement\n{stack.logs('worker')}")
        sample.at_ibsim = relay.seen[ref]
        if i >= 10:
            taken[alert_id] = sample
        time.sleep(max(0.0, period - (time.perf_counter() - sample.t0)))
    return taken


def _spans(taken: dict[str, Sample], db_path: str, worker_log: str) -> dict[str, float]:
    """p50 of the spans bench/latency.py --steps prints: the post to the row's ``received_at``,
    from there to the worker's pick-up, the pick-up to the legs on the wire, the rest to the relay."""
    with _sqlite(db_path) as conn:
        received = dict(conn.execute("SELECT id, received_at FROM alerts").fetchall())
    marks = {m[1]: (float(m[2]), float(m[3])) for m in JOB_LINE.finditer(worker_log)}
    rows = []
    for alert_id, s in taken.items():
        if alert_id in marks and alert_id in received:
            picked_up, on_wire = marks[alert_id]
            web, queued, worker = (
                received[alert_id] - s.t0_wall,
                picked_up - received[alert_id],
                on_wire - picked_up,
            )
            rows.append(
                [web * 1000, queued * 1000, worker * 1000, s.total_ms - (web + queued + worker) * 1000]
            )
    names = ("post->received", "received->pick-up", "pick-up->on wire", "wire->ibsim")
    return {name: percentile([r[i] for r in rows], 50) for i, name in enumerate(names)} if rows else {}


def _up(web: http.client.HTTPConnection) -> bool:
    try:
        web.connect()
        web.close()
        return True
    except OSError:
        return False


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--period", type=float, default=0.25, help="seconds from one sample's start to the next"
    )
    args = parser.parse_args()
    latencies, spans = run(args.samples, args.period)
    print(f"skeleton: webhook -> last leg at ibsim, n={len(latencies)}: "
          f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")  # fmt: skip
    print("  spans (p50 ms): " + ", ".join(f"{name} {value:.2f}" for name, value in spans.items()))


if __name__ == "__main__":
    main()
