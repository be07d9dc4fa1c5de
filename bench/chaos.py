"""One chaos run: a whole private stack under a stream of alerts while everything fails at random.

    .venv/bin/python -m bench.chaos --minutes 10 [--seed N] [--log var/chaos.log] [--rate 1.0]

Starts its OWN redis-server and PostgreSQL cluster (``scripts/devservers.py``) on free loopback ports,
ibsim with two accounts, gunicorn, one worker per account (DU1, DU2) and the fake Telegram Bot API
(``tests/fakes``); never the machine's shared Redis or PostgreSQL. It sends alerts
(``bench/chaos_traffic.py``) while a seeded scheduler (``bench/chaos_faults.py``) kills workers and
gunicorn workers (killed workers are started again, as systemd does), restarts Redis empty, stops
PostgreSQL, puts ibsim through its faults and Telegram through 429 / 5xx. Then it heals everything,
waits until every alert is terminal and every notice delivered, and prints the counts with their
expected values (``bench/chaos_checks.py``). Exit code 1 when a count misses its expectation.

The run's log (every alert, fault and miss) is ``--log`` (default ``var/chaos-<time>/chaos.log``);
the processes' logs and ``counts.json`` (the table, for tests) are beside it. bench/README.md describes the run and its figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench.benchtools import test_module, wait_until
from bench.chaos_checks import ExitSampler, final_counts, render
from bench.chaos_faults import Chaos, Scheduler
from bench.chaos_stack import ChaosStack, RestartablePostgres, redis_server
from bench.chaos_traffic import TICKERS, AlertStream
from cli.stack import ROOT
from core.models import TERMINAL_STATUSES, Alert, Notice

SECRET = "chaos-webhook-secret-0123456789"
ADMIN_TOKEN = "chaos-admin-token-0123456789"
CHAT = "4242"
ACCOUNTS = {"DU1": 21, "DU2": 22}


class Log:
    """The run's log file; lines also go to stdout when ``echo``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file = path.open("a", encoding="utf-8")
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def __call__(self, text: str, echo: bool = False) -> None:
        line = f"{datetime.now():%H:%M:%S.%f}"[:-3] + f" +{time.monotonic() - self.started:6.1f}s {text}"
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()
        if echo:
            print(line, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long alerts and faults go on (10)")
    parser.add_argument("--seed", type=int, default=None, help="the scheduler's and the stream's seed")
    parser.add_argument("--log", type=Path, default=None, help="the run's log (var/chaos-<time>/chaos.log)")
    parser.add_argument("--rate", type=float, default=1.0, help="alerts per second between bar closes (1.0)")
    parser.add_argument("--stale", type=int, default=30, help="STALE_ALERT_SECONDS of the stack (30)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    if args.log is None:
        args.log = ROOT / "var" / f"chaos-{datetime.now():%Y%m%d-%H%M%S}" / "chaos.log"
    return args


def settle(database_url: str, timeout: float, log: Log) -> bool:
    """Wait until no alert is left unterminated and no notice unsent."""
    engine = create_engine(database_url)

    def quiet() -> bool:
        try:
            with engine.connect() as conn:
                open_alerts = conn.scalar(
                    select(func.count()).select_from(Alert).where(Alert.status.not_in(TERMINAL_STATUSES))
                )
                unsent = conn.scalar(select(func.count()).select_from(Notice).where(Notice.sent_at.is_(None)))
        except Exception as exc:  # noqa: BLE001 - PostgreSQL may still be recovering
            log(f"settle: cannot read the database yet: {exc!r}")
            return False
        log(f"settle: {open_alerts} alert(s) not terminal, {unsent} notice(s) unsent")
        return open_alerts == 0 and unsent == 0

    try:
        wait_until(quiet, timeout, interval=2.0)
        return True
    except TimeoutError:
        return False
    finally:
        engine.dispose()


def start_stack(
    workdir: Path, servers: contextlib.ExitStack, log: Log, stale: int
) -> tuple[ChaosStack, Chaos]:
    redis = servers.enter_context(redis_server())
    pg = RestartablePostgres(servers)
    tg = test_module("fakes/telegram_api.py").FakeTelegramAPI().start()
    servers.callback(tg.stop)
    env = {"WEBHOOK_SECRET": SECRET, "ADMIN_TOKEN": ADMIN_TOKEN, "DATABASE_URL": pg.url,
           "REDIS_URL": redis.url, "TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_CHAT_ID": CHAT,
           "TELEGRAM_API_URL": tg.base_url, "WEB_WORKERS": "2", "STALE_ALERT_SECONDS": str(stale)}  # fmt: skip
    sim_args = tuple(arg for account in ACCOUNTS for arg in ("--account", account))
    stack = ChaosStack(workdir, env, ACCOUNTS, sim_args=sim_args, cwd=workdir, inherit=False)
    servers.callback(stack.stop)
    stack.note = log
    stack.start_sim()
    for ticker, price in TICKERS.items():
        stack.sim_post("/price", {"symbol": ticker, "secType": "STK", "price": price})
    stack.start_web()
    stack.start_workers()
    log(f"stack up: redis {redis.url}, PostgreSQL {pg.url} (data {pg.data}), ibsim {stack.sim_port} "
        f"(control {stack.sim_control_port}), web {stack.web_url}, Telegram fake {tg.base_url}", echo=True)  # fmt: skip
    return stack, Chaos(stack, redis, pg, tg, random.Random(), 1.0, log, dict(TICKERS))


def run(args: argparse.Namespace) -> int:
    log = Log(args.log)
    log(f"chaos run: {args.minutes:g} min, seed {args.seed}, rate {args.rate}/s, log {args.log}", echo=True)
    with contextlib.ExitStack() as servers:
        stack, chaos = start_stack(args.log.parent, servers, log, args.stale)
        chaos.rng.seed(args.seed)
        chaos.scale = min(1.0, args.minutes / 10)
        seconds = args.minutes * 60
        sampler = ExitSampler(f"http://127.0.0.1:{stack.sim_control_port}", log)
        stream = AlertStream(stack.web_url, SECRET, random.Random(args.seed + 1), chaos.prices,
                             rate=args.rate, bar_seconds=15, resend_after=max(1.0, 5 * chaos.scale), note=log)  # fmt: skip
        scheduler = Scheduler(
            chaos, gap=min(10.0, max(2.0, seconds / 30)), first_pass=min(0.6 * seconds, 300)
        )
        for part in (sampler, stream, scheduler):
            part.start()
        stack.supervise()
        time.sleep(seconds)
        log("alerts and faults stop; healing everything", echo=True)
        stream.stop()
        scheduler.stop()
        chaos.end_all()
        settled = settle(chaos.pg.url, args.stale + 90, log)
        log(f"settled: {settled}", echo=True)
        sampler.sample()
        sampler.stop()
        stack.stop_supervising()
        state = stack.sim_state()
        (args.log.parent / "ibsim-state.json").write_text(json.dumps(state, indent=1))
        rows = final_counts(
            chaos.pg.url, stream.sent, state, [m.text for m in chaos.tg.messages(CHAT)],
            http_5xx=stream.http_5xx, pg_windows=chaos.pg.windows, sampler=sampler,
            worker_kills=sum(1 for _, name, did in chaos.fired if name == "kill_worker" and "SIGKILL" in did),
            note=log,
        )  # fmt: skip
    fired = ", ".join(f"{name}" for _, name, _ in chaos.fired)
    log(f"faults fired ({len(chaos.fired)}): {fired}; worker restarts {stack.restarts}", echo=True)
    table = render(rows)
    log("counts:\n" + table)
    counts = {r.name: {"value": r.value, "expected": r.expected, "ok": r.ok} for r in rows}
    (args.log.parent / "counts.json").write_text(json.dumps({"seed": args.seed, "counts": counts}, indent=1))
    print(table, flush=True)
    missed = [r.name for r in rows if not r.ok]
    print(
        f"seed {args.seed}; log {args.log}; "
        + (f"MISSED: {', '.join(missed)}" if missed else "every count as expected")
    )
    return 1 if missed else 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds run(): every process and private server is stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
