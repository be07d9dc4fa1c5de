"""Latency with every check on: webhook → the bracket's last leg, warm and cold, on ibsim and under
ibsim's IB-like latency profile, beside the plain ib_async floor. One command, one table.

Real processes on free loopback ports (as ``bench/pipeline.py``): a private ``redis-server``,
``python -m ibsim`` with an extension catalog of made-up stocks, gunicorn and ``python -m worker``
with ``MARGIN_CHECK=on`` and the risk file ``bench/risk.yaml`` (every limit set), on a fresh SQLite
file (or ``--database-url``). The worker reaches ibsim through the pipeline's relay, which stamps
the moment the last leg (the transmitting stop-loss) reaches ibsim and the moment ibsim's first
``openOrder`` for it passes back (its acknowledgement).

Each sample is one bracket from flat: post it (t0), wait for the last leg and its acknowledgement,
wait until the worker has recorded the entry's fill, post an exit back to flat (not measured) and
wait until it is done; samples start at least ``--period`` seconds apart, so the worker's order
pacer (40 messages/s) never holds one back. The runs, in order:

1. ibsim answering at once: WARM (AAPL, seen in the warm-up), COLD (a stock the worker has never
   seen: contract lookup and what-if), the FLOOR (a plain ib_async script placing the same bracket
   through the same relay).
2. ``POST /latency {"profile": "ib"}`` (docs/ibsim-protocol.md, "Latency profiles"), then the same
   three runs. The worker keeps its connection and its caches: AAPL stays warm.

COLD: every sample is a symbol of its own (``QZAA``, ``QZAB``, ... from the extension catalog),
so the worker has seen none of them: no contract, market-rule or margin figure of it is cached.
Restarting the worker per sample would measure its start-up and first connection too.

    .venv/bin/python -m bench.latency                    # about two minutes
    .venv/bin/python -m bench.latency --samples 50 --ib-samples 10
    .venv/bin/python -m bench.latency --steps --shape    # where the time goes; the shape beside it

``--shape`` then runs ``bench/skeleton.py`` (the same processes, threads and hand-offs doing none of
tv2ib's work) as many times and prints it beside the instant warm row: on a virtual machine whose
speed changes from one hour to the next, the difference between the two is the figure that says
what tv2ib's own checks cost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench.benchtools import percentile, private_redis, wait_until
from bench.pipeline import Relay, run_floor
from cli.stack import ProcessStack
from core.db import make_engine
from core.models import Alert

RISK_FILE = Path(__file__).with_name("risk.yaml")
WARM = ("AAPL", 190.0)
COLD_PRICE = 50.0
DONE = {"filled", "cancelled", "rejected", "invalid", "duplicate", "failed"}
REFUSED = {"rejected", "invalid", "duplicate", "failed", "cancelled"}


def cold_symbols(count: int) -> list[str]:
    """``count`` made-up stock symbols: QZAA, QZAB, ... (no built-in instrument, forex pair or
    futures root looks like them)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"QZ{letters[i // 26]}{letters[i % 26]}" for i in range(count)]


def write_catalog(path: Path, symbols: list[str]) -> None:
    """ibsim's extension catalog: one NASDAQ stock per symbol, priced COLD_PRICE, US stock rules."""
    entries = [
        {"conId": 990_001 + i, "symbol": symbol, "secType": "STK", "primaryExchange": "NASDAQ",
         "price": COLD_PRICE, "tradingClass": "NMS", "validExchanges": "SMART,NASDAQ",
         "market_rule_ids": "26,26", "longName": f"BENCH COLD {symbol}", "stock_type": "COMMON"}
        for i, symbol in enumerate(symbols)
    ]  # fmt: skip
    path.write_text(json.dumps(entries))


class Samples:
    """Posts brackets and exits through the webhook and reads their fate from the admin API."""

    def __init__(self, stack: ProcessStack, relay: Relay, period: float) -> None:
        self.stack, self.relay, self.period = stack, relay, period
        self.http = httpx.Client(timeout=5)
        # the webhook's own client: the standard library's, kept alive (httpx adds about 0.45 ms of
        # its own per request on this machine, which is no part of the server's path)
        self.webhook = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=5)
        self.webhook_used = 0.0  # when it last answered: gunicorn closes a connection idle for 2 s
        self.admin = {"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
        # each sample's start on the wall clock, the clock intake stamps ``received_at`` with (--steps)
        self.started_wall: dict[str, float] = {}

    def connected(self) -> None:
        """A connection gunicorn keeps: a new one when the last has been idle for a second (opened
        here, before a sample's clock starts)."""
        if time.monotonic() - self.webhook_used > 1.0:
            self.webhook.close()
            self.webhook.connect()

    def post(self, body: dict[str, Any]) -> str:
        payload = {"secret": self.stack.env["WEBHOOK_SECRET"], "strategy": "bench", **body}
        self.connected()
        self.webhook.request("POST", "/webhook", json.dumps(payload), {"Content-Type": "application/json"})
        answer = self.webhook.getresponse()
        text = answer.read().decode()
        self.webhook_used = time.monotonic()
        if answer.status != 202:
            raise SystemExit(f"webhook answered {answer.status}: {text}")
        return str(json.loads(text)["alert_id"])

    def status(self, alert_id: str) -> tuple[str, str]:
        doc = self.http.get(f"{self.stack.web_url}/api/alerts/{alert_id}", headers=self.admin).json()
        return str(doc.get("status")), str(doc.get("reason") or "")

    def until_acked(self, ref: str, alert_id: str, timeout: float = 20) -> None:
        """Wait for ibsim's acknowledgement of the last leg ``ref``, sleeping until the relay stamps
        it (no polling: the benchmark's own wake-ups would compete with the pipeline for the two
        cores); every 50 ms without it, the alert's state (one request to the web: a refusal ends
        the benchmark with its reason)."""
        deadline = time.monotonic() + timeout
        while not self.relay.wait_acked(ref, 0.05):
            status, reason = self.status(alert_id)
            if status in REFUSED:
                raise SystemExit(f"alert {alert_id} {status}: {reason}")
            if time.monotonic() > deadline:
                raise SystemExit(f"alert {alert_id}: no last leg in {timeout:g}s: {status}\n"
                                 f"{self.stack.logs('worker', 30)}")  # fmt: skip

    def one(self, i: int, symbol: str, price: float) -> tuple[str, float]:
        """One bracket from flat and its exit back to flat; returns its last leg's ref and t0."""
        started = time.perf_counter()
        body = {"ticker": symbol, "action": "buy", "quantity": 1, "orderType": "market", "price": price,
                "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}, "id": f"lat-{i}-{secrets.token_hex(4)}"}  # fmt: skip
        self.connected()
        t0, t0_wall = time.perf_counter(), time.time()
        alert = self.post(body)
        self.started_wall[alert] = t0_wall
        ref = f"tv2ib:{alert}:sl"
        self.until_acked(ref, alert)
        self.settle(lambda: self.status(alert)[0] == "filled", alert)
        exit_alert = self.post(
            {"ticker": symbol, "action": "exit", "id": f"lat-exit-{i}-{secrets.token_hex(4)}"}
        )
        self.settle(lambda: self.status(exit_alert)[0] in DONE and self._flat(symbol), exit_alert)
        time.sleep(max(0.0, self.period - (time.perf_counter() - started)))
        return ref, t0

    def settle(self, what: Callable[[], bool], alert_id: str) -> None:
        """Wait, not measured, for a condition that asks the web or ibsim (every 10 ms)."""
        wait_until(what, 20, lambda: f"alert {alert_id}: {self.status(alert_id)}\n{self.stack.logs('worker', 30)}",
                   interval=0.01)  # fmt: skip

    def _flat(self, symbol: str) -> bool:
        """Flat at ibsim and in the worker's view (the positions it recorded from IB's reports: a
        position report the worker still waits for would otherwise be in the next sample)."""
        state = self.stack.sim_state()
        if any(p["symbol"] == symbol and p["position"] for p in state["positions"]):
            return False
        seen = self.http.get(f"{self.stack.web_url}/api/positions", headers=self.admin).json()["positions"]
        return not any(p["symbol"] == symbol for p in seen)

    def run(self, symbols: list[str], price: float, tag: int) -> dict[str, float]:
        """One sample per symbol (repeat a symbol for warm samples)."""
        return dict(self.one(tag + i, symbol, price) for i, symbol in enumerate(symbols))


@dataclass
class Row:
    """One run's samples: webhook (or the floor's first placeOrder) to the last leg at ibsim and to
    ibsim's acknowledgement of it (ms); under a profile, the answers per sample ibsim held back
    (``waited``); with --steps, the worker's own marks (p50 ms, ``steps``)."""

    name: str
    placed: list[float]
    acked: list[float]
    waited: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    steps_n: int = 0
    alert_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The row as printed: p50 / p99 in ms, and what the samples waited for."""
        placed, acked = self.placed, self.acked
        text = (
            f"{self.name:<34} n={len(placed):<3} at ibsim {percentile(placed, 50):6.1f} / {percentile(placed, 99):6.1f}"
            f" | acked {percentile(acked, 50):6.1f} / {percentile(acked, 99):6.1f}"
        )
        if self.waited:
            text += " | waited for: " + ", ".join(f"{name} {n:.1f}" for name, n in self.waited.items())
        return text

    def steps_line(self) -> str:
        if not self.steps:
            return "  steps: no timing lines in the worker's log (LOG_LEVEL must be INFO)"
        shown = [f"{k} {v:.1f}" for k, v in self.steps.items()]
        # the first two and the last are spans; the worker's marks count from its pick-up
        return (f"  steps (p50 ms, n={self.steps_n}): {', '.join(shown[:2])}; from the pick-up: "
                f"{', '.join(shown[2:-1])}; {shown[-1]}")  # fmt: skip


def figures(name: str, relay: Relay, sent: dict[str, float]) -> Row:
    """One row from the relay's marks of the samples ``sent`` (last-leg ref -> t0)."""
    ids = [ref.split(":")[1] for ref in sent]
    return Row(name, relay.latencies(sent), relay.latencies(sent, acked=True), alert_ids=ids)


def waited(stack: ProcessStack, profile: str, samples: int) -> dict[str, float]:
    """Under a profile: the answers per sample (bracket and exit) ibsim held back that the worker
    waits for before the last leg (what-if, market data, contract lookups), from ibsim's log."""
    if profile == "none" or not samples:
        return {}
    held = httpx.get(f"http://127.0.0.1:{stack.sim_control_port}/latency", timeout=5).json()["held"]
    kinds = {"whatIf": "what-if", "snapshot": "market data", "contractDetails": "lookup"}
    return {name: sum(row["kind"] == kind for row in held) / samples for kind, name in kinds.items()}


STEP = re.compile(
    r"alert (\S+): \d+ leg\(s\) on the wire ([\d.]+) ms after pick-up \(loaded ([\d.]+), "
    r"looked ([\d.]+), decided ([\d.]+), written ([\d.]+)\).*picked up ([\d.]+) ms"
)
STEP_NAMES = (
    "post->intake",
    "intake->pick-up",
    "loaded",
    "looked",
    "decided",
    "written",
    "on wire",
    "wire->ibsim",
)


def steps(stack: ProcessStack, row: Row, started_wall: dict[str, float]) -> None:
    """--steps: where the row's samples' time went, p50 of each step in ms, into ``row.steps``:
    the post to intake's ``received_at`` (the web's own part: HTTP, authentication, validation;
    wall clocks of one machine), intake -> the worker's pick-up and from the pick-up to each of the
    worker's marks (its log line per job), and what is left until the relay saw the last leg."""
    wanted, found = set(row.alert_ids), []
    received, placed = _received_at(stack, wanted), dict(zip(row.alert_ids, row.placed, strict=True))
    for line in (stack.dir / "worker.log").read_text(errors="replace").splitlines():
        if (m := STEP.search(line)) and m[1] in wanted and m[1] in received and m[1] in started_wall:
            web = (received[m[1]] - started_wall[m[1]]) * 1000
            marks = [float(m[i]) for i in (7, 3, 4, 5, 6, 2)]
            total = placed[m[1]]
            found.append([web, *marks, total - web - marks[0] - marks[-1]])
    row.steps_n = len(found)
    if found:
        row.steps = {k: percentile([f[i] for f in found], 50) for i, k in enumerate(STEP_NAMES)}


def _received_at(stack: ProcessStack, alert_ids: set[str]) -> dict[str, float]:
    """Intake's ``received_at`` of each alert, on the wall clock (read from the database)."""
    engine = make_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Alert.id, Alert.received_at).where(Alert.id.in_(alert_ids))).all()
    finally:
        engine.dispose()
    return {alert_id: (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() for alert_id, at in rows}


def run_benchmark(stack: ProcessStack, args: argparse.Namespace, unseen: list[str]) -> list[Row]:
    stack.start_sim()
    relay = Relay(stack.sim_port)
    stack.env["IB_PORT"] = str(relay.port)
    stack.start_web()
    stack.start_worker()
    samples = Samples(stack, relay, args.period)
    print(f"tv2ib latency benchmark - {os.cpu_count()} CPUs, database {stack.env['DATABASE_URL'].split(':')[0]}, "
          f"MARGIN_CHECK=on, RISK_FILE={RISK_FILE.relative_to(RISK_FILE.parents[1])}")  # fmt: skip
    samples.run([WARM[0]] * 10, WARM[1], 0)  # warm-up: AAPL's contract, market rule, connections
    rows: list[Row] = []
    phases = (("instant", "none", args.samples), ("IB-like", "ib", args.ib_samples))
    for n, (label, profile, count) in enumerate(phases):
        profile_figures = stack.sim_post("/latency", {"profile": profile})
        if profile != "none":
            print(f"{label} '{profile}' (ms): " + ", ".join(f"{k[:-2]} {v:g}" for k, v in profile_figures.items()
                                                         if k.endswith("Ms")), flush=True)  # fmt: skip
        warm = figures(
            f"{label}: warm (AAPL)", relay, samples.run([WARM[0]] * count, WARM[1], 1000 * (n + 1))
        )
        warm.waited = waited(stack, profile, count)
        if args.steps:
            steps(stack, warm, samples.started_wall)
        stack.sim_post("/latency", {"profile": profile})  # a new log of what ibsim held back
        first_sight = unseen[args.cold * n : args.cold * (n + 1)]
        cold = figures(
            f"{label}: cold (first sight)", relay, samples.run(first_sight, COLD_PRICE, 1000 * (n + 1) + 500)
        )
        cold.waited = waited(stack, profile, len(first_sight))
        floor = run_floor(relay, count, args.period / 2, tag=f"floor{profile}-", clean_up=True)
        rows += [warm, cold, figures(f"{label}: plain ib_async floor", relay, floor)]
        print("\n".join(lines(rows[-3:], args.steps)), flush=True)
    print("\nwebhook -> the bracket's last leg at ibsim, and until ibsim's acknowledgement of it is back:"
          " p50 / p99 ms; waited for: answers per sample ibsim held back before the last leg")  # fmt: skip
    print("\n".join(lines(rows, args.steps)))
    return rows


def lines(rows: list[Row], with_steps: bool) -> list[str]:
    """The rows as printed; with --steps each warm row followed by its steps line."""
    out = []
    for row in rows:
        out.append(row.line())
        if with_steps and "warm" in row.name:
            out.append(row.steps_line())
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=100, help="warm samples and floor brackets on ibsim")
    parser.add_argument("--ib-samples", type=int, default=25, help="the same under the IB-like profile")
    parser.add_argument("--cold", type=int, default=15, help="cold samples per run (one new symbol each)")
    parser.add_argument(
        "--period", type=float, default=0.25, help="seconds from one sample's start to the next"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--steps", action="store_true",
                        help="log at INFO and print where a warm alert's time goes: the web's part, the worker's own marks, the wire")  # fmt: skip
    parser.add_argument("--shape", action="store_true",
                        help="then run bench.skeleton (the pipe's processes and hand-offs doing none of tv2ib's work) "
                             "as many times, and print it beside the instant warm row")  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> list[Row]:
    """The whole benchmark (printing as it goes); returns its rows."""
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)  # the floor's clean-up: one 202 per order

    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-latency-"))
    cold = cold_symbols(2 * args.cold)
    write_catalog(tmp / "catalog.json", cold)
    with private_redis() as redis_url:
        env = {
            "WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "ADMIN_TOKEN": secrets.token_urlsafe(24),
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}",
            "REDIS_URL": redis_url,
            "RATE_LIMIT": "1000000/minute",
            "MARGIN_CHECK": "on",
            "RISK_FILE": str(RISK_FILE),
            "LOG_LEVEL": "INFO" if args.steps else os.environ.get("LOG_LEVEL", "WARNING"),
            "WEB_WORKERS": os.environ.get("WEB_WORKERS", "2"),
        }
        stack = ProcessStack(tmp, env, sim_args=("--catalog", str(tmp / "catalog.json")))
        try:
            return run_benchmark(stack, args, cold)
        finally:
            stack.stop()
            shutil.rmtree(tmp, ignore_errors=True)  # the database, the logs, the catalog


def shape_line(rows: list[Row], shape: list[float]) -> str:
    """The skeleton beside tv2ib's instant warm row: what this machine gives the pipe's shape alone,
    and what tv2ib's own work adds to it (p50)."""
    warm = next(row for row in rows if row.name.startswith("instant: warm"))
    own = percentile(warm.placed, 50) - percentile(shape, 50)
    return (f"{'shape (bench.skeleton)':<34} n={len(shape):<3} at ibsim {percentile(shape, 50):6.1f} / "
            f"{percentile(shape, 99):6.1f} | tv2ib's own work at p50: {own:.1f} ms above it")  # fmt: skip


def main() -> None:
    args = build_parser().parse_args()
    rows = run(args)
    if args.shape:  # the same machine, minutes apart: the host's speed weighs on both alike
        from bench import skeleton

        shape, _spans = skeleton.run(args.samples, args.period)
        print(shape_line(rows, shape))


if __name__ == "__main__":
    main()
