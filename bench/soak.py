"""Memory soak: the worker's resident memory at rest and after N completed orders.

Starts real processes on free ports: a private ``redis-server``, ``python -m ibsim`` and
``python -m worker`` on a fresh SQLite file. Alerts are written and queued as intake does (the
row, then the rq job by ``core/enqueue.py``), in batches of ``--batch``, each batch awaited to
its end state: market orders of 1 AAPL, buy then sell, so every alert is one order that fills
and the position returns to flat. The worker's RSS (``/proc/<pid>/status`` VmRSS) is read at
rest (after a warm-up of 50 alerts) and at each checkpoint, every time after ``--settle``
seconds without alerts.

Each run is made twice: with the IB session's pruning off (``IB_PRUNE_DONE_AFTER_SECONDS=0``:
ib_async keeps every trade and fill of the session) and on, with a short margin (``--margin``,
5 s: the product's default is an hour, the same code). The margin check is off (a what-if per
alert adds a round trip, not memory) and the notices go to the log.

    .venv/bin/python -m bench.soak                          # 1k and 10k orders, pruning off and on
    .venv/bin/python -m bench.soak --checkpoints 500 2000 --modes on
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from bench.benchtools import private_redis
from cli.stack import ProcessStack, wait_until
from core import keys
from core.db import make_engine, migrate
from core.enqueue import enqueue_alert
from core.ids import new_alert_id
from core.models import TERMINAL_STATUSES, Alert, AlertStatus, utcnow

WARM_UP = 50


def rss_kb(pid: int) -> int:
    """The process's resident set size, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Feeder:
    """Writes and queues alerts as intake does, and waits for them to end."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        engine = make_engine(database_url)
        migrate(engine)
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.redis = redis.Redis.from_url(redis_url)
        self.sent = 0

    def send(self, count: int) -> None:
        """``count`` more alerts (buy, sell, buy ...: one filled market order each), awaited."""
        ids = []
        with self.sessions.begin() as session:
            for _ in range(count):
                action = "buy" if self.sent % 2 == 0 else "sell"
                payload = {
                    "ticker": "AAPL",
                    "action": action,
                    "quantity": 1,
                    "orderType": "market",
                    "price": 190,
                }
                alert_id = new_alert_id()
                session.add(Alert(id=alert_id, status=AlertStatus.QUEUED.value, received_at=utcnow(),
                                  payload=payload, ticker="AAPL", action=action,
                                  queue_name=keys.queue_name(None)))  # fmt: skip
                ids.append(alert_id)
                self.sent += 1
        for alert_id in ids:
            enqueue_alert(self.redis, alert_id, None)
        wait_until(
            lambda: self.ended() >= self.sent, 60 + count, f"alerts did not end ({self.ended()}/{self.sent})"
        )

    def ended(self) -> int:
        with self.sessions() as session:
            terminal = [s.value for s in TERMINAL_STATUSES]
            return session.scalar(select(func.count()).where(Alert.status.in_(terminal))) or 0

    def not_filled(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).where(Alert.status != AlertStatus.FILLED.value)) or 0


def run(mode: str, args: argparse.Namespace) -> list[tuple[str, int, float]]:
    """One worker's life: warm-up, then the checkpoints; returns (label, orders, RSS MiB) rows."""
    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-soak-"))
    rows = []
    with private_redis() as redis_url:
        env = {
            "WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "DATABASE_URL": f"sqlite:///{tmp / 'soak.db'}",
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
            "STALE_ALERT_SECONDS": "3600",
            "MARGIN_CHECK": "off",
            "IB_PRUNE_DONE_AFTER_SECONDS": "0" if mode == "off" else str(args.margin),
        }
        stack = ProcessStack(tmp, env)
        try:
            stack.start_sim()
            stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
            stack.start_worker()
            pid = stack.procs["worker"].pid
            feeder = Feeder(env["DATABASE_URL"], redis_url)
            feeder.send(WARM_UP)
            time.sleep(args.settle)
            rows.append(("at rest (after the warm-up)", 0, rss_kb(pid) / 1024))
            started, done = time.monotonic(), 0
            for target in args.checkpoints:
                while done < target:
                    step = min(args.batch, target - done)
                    feeder.send(step)
                    done += step
                time.sleep(args.settle)
                rows.append((f"after {target:,} orders", target, rss_kb(pid) / 1024))
            rate = done / (time.monotonic() - started)
            print(
                f"  pruning {mode}: {done:,} orders at {rate:.0f}/s; alerts not filled: {feeder.not_filled()}"
            )
        finally:
            stack.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch", type=int, default=200, help="alerts queued at once, then awaited")
    parser.add_argument(
        "--settle", type=float, default=12.0, help="seconds without alerts before each reading"
    )
    parser.add_argument(
        "--margin", type=float, default=5.0, help="IB_PRUNE_DONE_AFTER_SECONDS of the 'on' run"
    )
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=["off", "on"])
    args = parser.parse_args()
    print(f"tv2ib worker memory soak - {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"SQLite, market orders of 1 AAPL (buy, sell, ...), checkpoints {args.checkpoints}")  # fmt: skip
    results = {mode: run(mode, args) for mode in args.modes}
    print("\n| worker RSS | " + " | ".join(f"pruning {m}" for m in args.modes) + " |")
    print("|---|" + "---|" * len(args.modes))
    for i, (label, _orders, _mb) in enumerate(results[args.modes[0]]):
        print(f"| {label} | " + " | ".join(f"{results[m][i][2]:.1f} MiB" for m in args.modes) + " |")
    first, last = args.checkpoints[0], args.checkpoints[-1]
    if last > first:
        for mode in args.modes:
            rows = results[mode]
            growth = (rows[-1][2] - rows[1][2]) * 1024 / (last - first)
            print(f"pruning {mode}: {growth:+.1f} KiB per order between {first:,} and {last:,} orders")


if __name__ == "__main__":
    main()
