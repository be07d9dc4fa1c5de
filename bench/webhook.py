"""Webhook intake benchmark: the real gunicorn server vs a bare Flask endpoint (the floor).

For each database (SQLite file, PostgreSQL database; both private to this run) and each number of
stored alerts (default 1,000 and 100,000, pre-filled with a bulk insert), it starts

* the real app: ``gunicorn 'app:create_app()' -c config/gunicorn.conf.py`` (real Redis: a private
  ``redis-server`` on a free port, no persistence), and
* the bare endpoint: ``bench/bare_app.py`` under the same gunicorn settings,

then drives ``POST /webhook`` with keep-alive HTTP clients in threads and prints p50/p99/max latency
and throughput at a fixed offered rate (default 200 req/s, open loop: latency is measured from the
scheduled send time, so a stalled server cannot hide its queueing) and at the maximum rate
(closed loop, ``--concurrency`` clients back to back). Every alert is unique (no dedup hits) and
is really stored and enqueued. The load generator shares the machine's cores with the server.

Then the intake ratio at saturation: the bare endpoint and the real app, each served by ONE
gunicorn worker (``WEB_WORKERS=1``, ``WEB_THREADS`` default), driven by ``--clients`` closed-loop
clients. The two servers run side by side and are measured in alternation (``--rounds`` pairs of
``--seconds`` each), so a change in the machine's load falls on both; it prints the bare median,
the intake median and their ratio for each database (the goal: at most 3x).

    .venv/bin/python -m bench.webhook
    .venv/bin/python -m bench.webhook --db postgresql --rows 1000 --seconds 5
    .venv/bin/python -m bench.webhook --saturation-only --clients 4 --rounds 3   # the ratio alone
    .venv/bin/python -m bench.webhook --saturation-only --against /tmp/main   # A/B with that checkout
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from bench.benchtools import (
    end_process,
    free_port,
    percentile,
    private_pg_database,
    private_redis,
    wait_until,
)
from core.db import make_engine, migrate
from core.ids import new_alert_id
from core.models import Alert

ROOT = Path(__file__).resolve().parents[1]

SECRET = "bench-webhook-secret-0123456789"
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def wait_http(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return True
        except OSError:
            pass
        return False

    wait_until(healthy, timeout, "server did not start", interval=0.1)


def prefill(url: str, rows: int) -> None:
    """Bring the alerts table to ``rows`` rows with one bulk insert (old, finished alerts)."""
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM alerts")).scalar() or 0
    missing = rows - have
    start = datetime.now(UTC) - timedelta(days=30)
    batch = 10_000
    while missing > 0:
        n = min(batch, missing)
        values = []
        for i in range(n):
            at = start + timedelta(seconds=i)
            payload = {"ticker": "AAPL", "action": "buy", "quantity": 1, "id": uuid.uuid4().hex}
            values.append(
                {
                    "id": new_alert_id(at.timestamp() - i),
                    "status": "filled",
                    "received_at": at,
                    "updated_at": at,
                    "raw_body": json.dumps(payload),
                    "payload": payload,
                    "idempotency_key": "id:" + uuid.uuid4().hex,
                    "ticker": "AAPL",
                    "action": "buy",
                    "enqueue_attempts": 1,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Alert), values)
        missing -= n
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE alerts"))
    engine.dispose()


@dataclass
class Result:
    latencies: list[float]
    errors: int
    elapsed: float

    def line(self) -> str:
        if not self.latencies:
            return f"no successful requests ({self.errors} errors)"
        lat = sorted(self.latencies)
        p50 = percentile(lat, 50) * 1000
        p99 = percentile(lat, 99) * 1000
        return (
            f"n={len(lat):6d}  p50={p50:6.2f} ms  p99={p99:6.2f} ms  max={lat[-1] * 1000:7.2f} ms  "
            f"throughput={len(lat) / self.elapsed:7.1f}/s  errors={self.errors}"
        )

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")


def _body(expected: tuple[int, ...]) -> tuple[bytes, tuple[int, ...]]:
    alert = {
        "secret": SECRET,
        "id": uuid.uuid4().hex,
        "ticker": "NASDAQ:AAPL",
        "action": "buy",
        "quantity": "10",
        "orderType": "limit",
        "limitPrice": "187.50",
        "takeProfit": {"percent": 2},
        "stopLoss": {"percent": 1},
        "time": "2026-11-22T07:35:25Z",
        "strategy": "bench",
    }
    return json.dumps(alert).encode(), expected


def run_load(port: int, *, rate: float | None, seconds: float, concurrency: int) -> Result:
    """Open loop at ``rate`` req/s spread over ``concurrency`` threads, or closed loop when None."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    end = start + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        bad = 0
        interval = concurrency / rate if rate else 0.0
        scheduled = start + (index * interval / concurrency if rate else 0.0)
        while True:
            if rate:
                now = time.perf_counter()
                if scheduled > now:
                    time.sleep(scheduled - now)
            t0 = scheduled if rate else time.perf_counter()
            if t0 >= end:
                break
            if not rate and t0 < start:
                time.sleep(start - t0)
                continue
            body, ok = _body((200, 202))
            try:
                conn.request("POST", "/webhook", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status in ok:
                    mine.append(time.perf_counter() - t0)
                else:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            scheduled += interval
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result(latencies, errors[0], seconds)


def gunicorn(
    app_spec: str, port: int, env: dict[str, str], pythonpath: str, root: Path = ROOT
) -> subprocess.Popen:
    """``app_spec`` served by gunicorn with ``root``'s settings (``root``: this checkout, or the
    one given with ``--against``)."""
    full_env = dict(os.environ, **env, PORT=str(port), PYTHONPATH=pythonpath)
    cmd = [sys.executable, "-m", "gunicorn", app_spec, "-c", str(root / "config" / "gunicorn.conf.py")]
    proc = subprocess.Popen(cmd, cwd=root, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(port, proc)
    return proc


def measure(label: str, port: int, args: argparse.Namespace) -> tuple[Result, Result]:
    run_load(port, rate=None, seconds=1.0, concurrency=args.concurrency)  # warm up
    fixed = run_load(port, rate=args.rate, seconds=args.seconds, concurrency=args.concurrency)
    print(f"  {label:<26} @{args.rate:g}/s  {fixed.line()}  load={os.getloadavg()[0]:.1f}", flush=True)
    top = run_load(port, rate=None, seconds=args.seconds, concurrency=args.concurrency)
    print(f"  {label:<26} max      {top.line()}  load={os.getloadavg()[0]:.1f}", flush=True)
    return fixed, top


def saturation(port: int, args: argparse.Namespace) -> Result:
    """``--clients`` closed-loop clients for ``--seconds`` (after a short warm-up)."""
    run_load(port, rate=None, seconds=0.5, concurrency=args.clients)
    return run_load(port, rate=None, seconds=args.seconds, concurrency=args.clients)


def saturation_ratio(label: str, targets: dict[str, int], args: argparse.Namespace) -> dict[str, Result]:
    """Alternate the servers of ``targets`` (name -> port, the bare endpoint first) ``--rounds``
    times; print each one's median and every other's ratio to the bare endpoint's; returns each
    server's pooled result."""
    pooled = {name: Result([], 0, 0.0) for name in targets}
    for i in range(args.rounds):
        names = list(targets)
        if i % 2:  # the servers after the bare one in turns first and last
            names[1:] = reversed(names[1:])
        for name in names:
            run = saturation(targets[name], args)
            pooled[name].latencies += run.latencies
            pooled[name].errors += run.errors
            pooled[name].elapsed += run.elapsed
    bare_name, *others = targets
    bare = pooled[bare_name]
    for name, result in pooled.items():
        print(f"  {name:<8} {result.line()}", flush=True)
    for name in others:
        intake = pooled[name]
        ratio = intake.p50 / bare.p50 if bare.latencies and intake.latencies else float("nan")
        print(
            f"  {label}{'' if name == 'intake' else f' ({name})'}: at saturation ({args.clients} "
            f"closed-loop clients, 1 worker): bare median {bare.p50 * 1000:.2f} ms, intake median "
            f"{intake.p50 * 1000:.2f} ms, ratio {ratio:.2f}x  load={os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return pooled


def app_env(url: str, redis_url: str) -> dict[str, str]:
    """The real app's settings: limits lifted (every alert unique, all from one address)."""
    return {
        "WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "RATE_LIMIT": "1000000/minute",
        "AUTHENTICATED_RATE_LIMIT": "1000000/minute",
        "DEDUP_WINDOW_SECONDS": "60",
    }


def run_saturation(
    dbs: dict[str, tuple[str, str]], redis_url: str, rows: int, args: argparse.Namespace
) -> dict[str, dict[str, Result]]:
    """The intake ratio at saturation for each database in ``dbs`` (name -> URL for this
    checkout's app, URL for the ``--against`` checkout's); returns database -> server -> result."""
    pooled: dict[str, dict[str, Result]] = {}
    one = {"WEB_WORKERS": "1"}
    print(
        f"intake at saturation: {args.clients} closed-loop clients, one gunicorn worker each, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s, {rows:,} stored alerts",
        flush=True,
    )
    bare_port = free_port()
    bare = gunicorn(
        "bare_app:create_app()", bare_port, {"WEBHOOK_SECRET": SECRET, **one}, f"{ROOT / 'bench'}:{ROOT}"
    )
    try:
        for db, (url, against_url) in dbs.items():
            apps = {"intake": (ROOT, url)}
            if args.against is not None:
                apps["against"] = (args.against, against_url)
            targets, servers = {"bare": bare_port}, []
            try:
                for name, (root, app_url) in apps.items():
                    prefill(app_url, rows)
                    targets[name] = free_port()
                    env = {**app_env(app_url, redis_url), **one}
                    servers.append(gunicorn("app:create_app()", targets[name], env, str(root), root))
                print(f"{db}:", flush=True)
                pooled[db] = saturation_ratio(db, targets, args)
            finally:
                for server in servers:
                    end_process(server, 15)
    finally:
        end_process(bare, 15)
    return pooled


def fixed_and_max(
    urls: dict[str, str], redis_url: str, rows_list: list[int], args: argparse.Namespace
) -> dict[tuple[str, int], tuple[Result, Result]]:
    """The fixed-rate and maximum-rate runs (default gunicorn settings) beside the bare endpoint;
    returns (database, stored alerts) -> (fixed-rate, maximum-rate) results, the bare endpoint's
    under ("bare", 0)."""
    bare_port = free_port()
    bare = gunicorn(
        "bare_app:create_app()", bare_port, {"WEBHOOK_SECRET": SECRET}, f"{ROOT / 'bench'}:{ROOT}"
    )
    try:
        print("bare Flask endpoint (the floor):", flush=True)
        bare_fixed, bare_top = measure("bare", bare_port, args)
    finally:
        end_process(bare, 15)
    results = {("bare", 0): (bare_fixed, bare_top)}
    for db, url in urls.items():
        for rows in rows_list:
            prefill(url, rows)
            port = free_port()
            server = gunicorn("app:create_app()", port, app_env(url, redis_url), str(ROOT))
            try:
                print(f"{db}, {rows:,} stored alerts:", flush=True)
                fixed, top = measure(f"webhook {db} {rows // 1000}k", port, args)
                results[(db, rows)] = (fixed, top)
                ratio = fixed.p50 / bare_fixed.p50 if bare_fixed.latencies else float("nan")
                print(f"  median vs bare endpoint at {args.rate:g}/s: {ratio:.1f}x", flush=True)
            finally:
                end_process(server, 15)
    return results


@dataclass
class Figures:
    """What one run measured: ``fixed_and_max``'s and ``run_saturation``'s results."""

    rates: dict[tuple[str, int], tuple[Result, Result]]
    saturation: dict[str, dict[str, Result]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--rows", default="1000,100000", help="stored alerts before measuring, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--rate", type=float, default=200.0, help="offered rate of the fixed-rate run")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop clients of the saturation ratio")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/intake pairs of the ratio")
    parser.add_argument(
        "--saturation-only", action="store_true", help="print only the intake ratio at saturation"
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. a worktree of main): its app joins the saturation rounds, "
        "on its own database, for an A/B under the same load",
    )
    return parser


def run(args: argparse.Namespace) -> Figures:
    """The whole benchmark (printing as it goes); returns its figures."""
    rows_list = [int(r) for r in args.rows.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-bench-"))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with contextlib.ExitStack() as cleanup:
        redis_url = cleanup.enter_context(private_redis())
        pg_urls = [
            cleanup.enter_context(private_pg_database(PG_ADMIN, "tv2ib_bench")) if "postgresql" in dbs else ""
            for _ in range(2 if args.against else 1)
        ]
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        print(
            f"tv2ib webhook benchmark: {os.cpu_count()} cores, gunicorn gthread "
            f"(WEB_WORKERS/WEB_THREADS defaults unless set), {args.concurrency} client threads, "
            f"{args.seconds:g} s per run; load average {os.getloadavg()[0]:.1f} "
            "(other processes share the cores: compare runs at similar load)",
            flush=True,
        )
        urls = {db: f"sqlite:///{tmp / 'bench.db'}" if db == "sqlite" else pg_urls[0] for db in dbs}
        rates = {} if args.saturation_only else fixed_and_max(urls, redis_url, rows_list, args)
        against = {db: f"sqlite:///{tmp / 'against.db'}" if db == "sqlite" else pg_urls[-1] for db in dbs}
        pairs = {db: (urls[db], against[db]) for db in dbs}
        return Figures(rates, run_saturation(pairs, redis_url, rows_list[0], args))


def main() -> None:
    run(build_parser().parse_args())


if __name__ == "__main__":
    main()
