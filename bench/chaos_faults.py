"""The chaos run's faults, one row each in :data:`FAULTS`, and the scheduler that fires them at random
instants (a seeded RNG). A new ibsim fault kind is one more row of :data:`IBSIM_FAULTS`; anything else
(a process, a server, Telegram) one more function and row of :data:`FAULTS`.

Durations are the issue's figures times ``scale`` (``--minutes`` / 10, at most 1): PostgreSQL is
down 20 s and Telegram misbehaves 60 s in a run of 10 minutes or more, less in a short one.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.chaos_stack import ChaosStack, RestartablePostgres, RestartableRedis


@dataclass
class Chaos:
    """What the faults act on, and what they did."""

    stack: ChaosStack
    redis: RestartableRedis
    pg: RestartablePostgres
    tg: Any  # tests/fakes/telegram_api.FakeTelegramAPI (loaded from its file)
    rng: random.Random
    scale: float
    note: Callable[[str], None]
    prices: dict[str, float]
    fired: list[tuple[float, str, str]] = field(default_factory=list)  # (time, fault, what it did)
    active: dict[str, threading.Timer] = field(default_factory=dict)  # faults with an end pending
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sim(self, path: str, body: dict[str, Any]) -> str:
        answer = httpx.post(f"http://127.0.0.1:{self.stack.sim_control_port}{path}", json=body, timeout=5)
        return f"{path} {body} -> {answer.status_code} {answer.text[:160]}"

    def later(self, name: str, seconds: float, end: Callable[[], str]) -> None:
        """Run ``end`` after ``seconds`` (the fault ``name`` stays active until then)."""

        def run() -> None:
            with self.lock:
                self.active.pop(name, None)
            self.note(f"fault {name} ends: {end()}")

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        with self.lock:
            self.active[name] = timer
        timer.start()

    def end_all(self) -> None:
        """End every fault now (the end of the run: heal before waiting for quiescence)."""
        with self.lock:
            pending = dict(self.active)
            self.active.clear()
        for timer in pending.values():
            timer.cancel()
            timer.function()  # the fault's end, now
        self.pg.resume()
        self.tg.come_back()
        self.note(f"healed: ibsim {self.sim('/fault', {'kind': 'clear'})}; {self.sim('/notice', FARM_BACK)}")


FARM_DOWN = {"code": 2103, "message": "Market data farm connection is broken:usfarm"}
FARM_BACK = {"code": 2104, "message": "Market data farm connection is OK:usfarm"}

#: ibsim fault -> (POST path, body, seconds until it is undone (times scale) or 0, the undoing body)
IBSIM_FAULTS: dict[str, tuple[str, dict[str, Any], float, dict[str, Any] | None]] = {
    "drop": ("/fault", {"kind": "drop"}, 0, None),
    "refuse": ("/fault", {"kind": "refuse", "seconds": 4}, 0, None),
    "connectivity_1101": ("/fault", {"kind": "connectivity", "code": 1101, "seconds": 3}, 0, None),
    "connectivity_1102": ("/fault", {"kind": "connectivity", "code": 1102, "seconds": 3}, 0, None),
    "reject_next": ("/fault", {"kind": "reject_next", "count": 2, "code": 201, "reason": "Chaos: refused"}, 0, None),
    "delay": ("/fault", {"kind": "delay", "ms": 700}, 30, {"kind": "delay", "ms": 0}),
    "position_delay": ("/fault", {"kind": "position_delay", "ms": 1500}, 30, {"kind": "position_delay", "ms": 0}),
    "pause_fills": ("/fault", {"kind": "pause_fills"}, 20, {"kind": "resume_fills"}),
    "farm_broken": ("/notice", FARM_DOWN, 20, FARM_BACK),
    "farm": ("/fault", {"kind": "farm", "farm": "market", "seconds": 5}, 0, None),
    "reset_window": ("/fault", {"kind": "reset_window", "refuseSeconds": 3, "outageSeconds": 2, "code": 1101}, 0, None),
    "hold_session": ("/fault", {"kind": "hold_session", "seconds": 3}, 0, None),
    "competing_session": ("/fault", {"kind": "competing_session", "seconds": 3, "code": 1102}, 0, None),
    "stall_sync": ("/fault", {"kind": "stall_sync", "what": "openOrders", "seconds": 6}, 0, None),
    "cancel_working": ("/fault", {"kind": "cancel_working", "prefix": "tv2ib:", "count": 2,
                                  "reason": "Chaos: cancelled by IB"}, 0, None),
    "broken_what_if": ("/fault", {"kind": "broken_what_if", "figures": "unset",
                                  "warningText": "Chaos: margin impact not available"}, 0, None),
}  # fmt: skip


def ibsim_fault(name: str) -> Callable[[Chaos], str]:
    path, body, seconds, undo = IBSIM_FAULTS[name]

    def fire(chaos: Chaos) -> str:
        did = chaos.sim(path, body)
        if undo is not None:
            chaos.later(name, max(2.0, seconds * chaos.scale), lambda: chaos.sim(path, undo))
        return did

    return fire


def kill_worker(chaos: Chaos) -> str:
    account = chaos.rng.choice(list(chaos.stack.accounts))
    pid = chaos.stack.kill_account_worker(account)
    return f"SIGKILL worker-{account} pid {pid}" if pid else f"worker-{account} was not running"


def kill_web_worker(chaos: Chaos) -> str:
    pids = chaos.stack.gunicorn_workers()
    if not pids:
        return "no gunicorn worker found"
    pid = chaos.rng.choice(pids)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # a child of our own gunicorn master, by its PID
    return f"SIGKILL gunicorn worker pid {pid}"


def restart_redis(chaos: Chaos) -> str:
    chaos.redis.restart()
    return f"redis-server restarted empty on port {chaos.redis.port}"


def stop_postgres(chaos: Chaos) -> str:
    seconds = max(3.0, 20 * chaos.scale)
    chaos.pg.pause()
    chaos.later("stop_postgres", seconds, lambda: (chaos.pg.resume(), "PostgreSQL started")[1])
    return f"PostgreSQL stopped (immediate) for {seconds:.0f} s"


def telegram(mode: str) -> Callable[[Chaos], str]:
    def fire(chaos: Chaos) -> str:
        seconds = max(5.0, 60 * chaos.scale)
        chaos.tg.go_down(mode, seconds)
        chaos.later(f"telegram_{mode}", seconds, lambda: "Telegram answers again")
        return f"Telegram answers {mode} for {seconds:.0f} s"

    return fire


#: fault -> (weight, what fires it); the first pass fires each once, in a seeded order
FAULTS: dict[str, tuple[int, Callable[[Chaos], str]]] = {
    "kill_worker": (4, kill_worker),
    "kill_web_worker": (3, kill_web_worker),
    "restart_redis": (1, restart_redis),
    "stop_postgres": (1, stop_postgres),
    "telegram_429": (1, telegram("429")),
    "telegram_5xx": (1, telegram("5xx")),
    **{name: (1, ibsim_fault(name)) for name in IBSIM_FAULTS},
}


class Scheduler:
    """Fires every fault once within the first ``first_pass`` seconds (in a seeded order, one in each
    slot of equal length, at a random instant of it), then faults by weight at exponential gaps
    (mean ``gap`` s) until :meth:`stop`; a fault still active (its end pending) is not fired again.
    Moves prices meanwhile, so exits fill."""

    def __init__(self, chaos: Chaos, gap: float, first_pass: float) -> None:
        self.chaos, self.gap, self.first_pass = chaos, gap, first_pass
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._faults, name="chaos-faults", daemon=True),
                         threading.Thread(target=self._market, name="chaos-market", daemon=True)]  # fmt: skip

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _faults(self) -> None:
        rng = self.chaos.rng
        deck = list(FAULTS)
        rng.shuffle(deck)
        slot = self.first_pass / len(deck)
        start = time.monotonic()
        for i, name in enumerate(deck):
            if self._stop.wait(max(0.0, start + (i + rng.random()) * slot - time.monotonic())):
                return
            self._fire(name)
        while not self._stop.wait(rng.expovariate(1 / self.gap)):
            with self.chaos.lock:
                names = [n for n in FAULTS if n not in self.chaos.active]
            self._fire(rng.choices(names, weights=[FAULTS[n][0] for n in names])[0])

    def _fire(self, name: str) -> None:
        try:
            did = FAULTS[name][1](self.chaos)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be made is reported, not fatal
            did = f"could not be made: {exc!r}"
        self.chaos.fired.append((time.time(), name, did))
        self.chaos.note(f"fault {name}: {did}")

    def _market(self) -> None:
        """Every ~2 s one ticker jumps 0.3 % to 2.5 % (both ways), so stops and targets fill."""
        chaos = self.chaos
        rng = random.Random(chaos.rng.random())
        while not self._stop.wait(rng.uniform(1.0, 3.0)):
            ticker = rng.choice(list(chaos.prices))
            price = round(chaos.prices[ticker] * (1 + rng.choice([-1, 1]) * rng.uniform(0.003, 0.025)), 2)
            with contextlib.suppress(httpx.HTTPError):
                chaos.sim("/price", {"symbol": ticker, "secType": "STK", "price": price})
                chaos.prices[ticker] = price
