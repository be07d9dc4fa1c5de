"""Memory of each process: gunicorn (its master and workers), the worker and ibsim, at rest and
after N alerts through the webhook.

Starts real processes on free ports (as ``bench/pipeline.py``): a private ``redis-server``,
``python -m ibsim``, gunicorn (``config/gunicorn.conf.py``) and ``python -m worker``, on a fresh
SQLite file. The alerts are market orders of 1 AAPL, buy then sell (each one order that fills, the
position back to flat every second alert), posted in batches of ``--batch`` and each batch awaited
to its end state. The resident set size (``/proc/<pid>/status`` VmRSS) of every process is read
at rest (after a warm-up of 50 alerts) and after the alerts, each time after ``--settle`` seconds
without alerts. The gunicorn workers' figure is the sum over them (shared pages counted in each).

    .venv/bin/python -m bench.memory                    # 10,000 alerts (about 5 minutes)
    .venv/bin/python -m bench.memory --alerts 1000
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from bench.benchtools import private_redis, wait_until
from cli.stack import ProcessStack
from core.models import TERMINAL_STATUSES, Alert, AlertStatus

WARM_UP = 50


def rss_mib(pid: int) -> float:
    """The process's resident set size in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """The process's direct children (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def readings(stack: ProcessStack) -> dict[str, float]:
    """RSS in MiB of each process of the stack."""
    master = stack.procs["web"].pid
    workers = children(master)
    return {
        "web: gunicorn master": rss_mib(master),
        f"web: {len(workers)} gunicorn workers (sum)": sum(rss_mib(pid) for pid in workers),
        "worker": rss_mib(stack.procs["worker"].pid),
        "ibsim": rss_mib(stack.procs["ibsim"].pid),
    }


class Feeder:
    """Posts market orders through the webhook and waits for them to end."""

    def __init__(self, stack: ProcessStack) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=10)
        self.engine = create_engine(stack.env["DATABASE_URL"])
        self.sent = 0

    def send(self, count: int) -> None:
        """``count`` more alerts (buy, sell, buy ...), awaited to their end state."""
        for _ in range(count):
            body = {"secret": self.stack.env["WEBHOOK_SECRET"], "ticker": "AAPL", "quantity": 1,
                    "action": "buy" if self.sent % 2 == 0 else "sell", "orderType": "market",
                    "price": 190, "id": f"mem-{self.sent}-{secrets.token_hex(4)}"}  # fmt: skip
            answer = self.http.post(f"{self.stack.web_url}/webhook", json=body)
            if answer.status_code != 202:
                raise SystemExit(f"webhook answered {answer.status_code}: {answer.text}")
            self.sent += 1
        wait_until(lambda: self.count(True) >= self.sent, 120 + count,
                   lambda: f"alerts did not end ({self.count(True)}/{self.sent})")  # fmt: skip

    def count(self, terminal: bool) -> int:
        """Alerts in a terminal state (``terminal``), or not filled."""
        if terminal:
            where = Alert.status.in_([s.value for s in TERMINAL_STATUSES])
        else:
            where = Alert.status != AlertStatus.FILLED.value
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Alert).where(where)).scalar() or 0

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()


@dataclass
class Figures:
    """RSS in MiB per process, at rest and after ``alerts`` alerts; alerts not filled; rate."""

    alerts: int
    at_rest: dict[str, float]
    after: dict[str, float]
    not_filled: int
    per_second: float


def run_benchmark(stack: ProcessStack, args: argparse.Namespace) -> Figures:
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()
    feeder = Feeder(stack)
    try:
        feeder.send(WARM_UP)
        time.sleep(args.settle)
        at_rest = readings(stack)
        started = time.monotonic()
        while feeder.sent - WARM_UP < args.alerts:
            feeder.send(min(args.batch, args.alerts - (feeder.sent - WARM_UP)))
        rate = args.alerts / (time.monotonic() - started)
        time.sleep(args.settle)
        figures = Figures(args.alerts, at_rest, readings(stack), feeder.count(False), rate)
    finally:
        feeder.close()
    print(f"{args.alerts:,} alerts at {figures.per_second:.0f}/s (posted and awaited in batches of "
          f"{args.batch}); alerts not filled: {figures.not_filled}")  # fmt: skip
    print(f"| RSS (MiB) | at rest | after {args.alerts:,} alerts | growth |\n|---|---|---|---|")
    for name, rest in at_rest.items():
        after = figures.after.get(name, float("nan"))
        print(f"| {name} | {rest:.1f} | {after:.1f} | {after - rest:+.1f} |")
    return figures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts after the warm-up")
    parser.add_argument("--batch", type=int, default=200, help="alerts posted at once, then awaited")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds without alerts before a reading")
    return parser


def run(args: argparse.Namespace) -> Figures:
    """The whole benchmark (printing as it goes); returns its figures."""
    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-memory-"))
    with private_redis() as redis_url:
        env = {
            "WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "DATABASE_URL": f"sqlite:///{tmp / 'memory.db'}",
            "REDIS_URL": redis_url,
            "RATE_LIMIT": "1000000/minute",
            "AUTHENTICATED_RATE_LIMIT": "1000000/minute",
            "LOG_LEVEL": "WARNING",
            "MARGIN_CHECK": "off",
            "STALE_ALERT_SECONDS": "3600",
            "WEB_WORKERS": os.environ.get("WEB_WORKERS", "2"),
        }
        print(f"tv2ib memory benchmark - {os.cpu_count()} CPUs, SQLite, market orders of 1 AAPL")
        stack = ProcessStack(tmp, env)
        try:
            return run_benchmark(stack, args)
        finally:
            stack.stop()


def main() -> None:
    run(build_parser().parse_args())


if __name__ == "__main__":
    main()
