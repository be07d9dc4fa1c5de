"""The chaos run's alert stream: brackets, reversals, exits, position targets (``positionSize``), fan-outs
to both accounts and a few invalid alerts, on several tickers, sent like TradingView sends them.

Like TradingView, a sender resends an alert whose answer was a 5xx (after ``resend_after`` s, up to 3
times; TradingView waits 5 s); it resends after a connection error too (a gunicorn worker killed while
it held the request), which TradingView may not do: the alert's ``id`` makes every resend harmless.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

TICKERS = {"AAPL": 190.0, "MSFT": 410.0, "SPY": 520.0, "TSLA": 180.0, "AMD": 150.0}
ACCOUNTS = ("DU1", "DU2")
RESENDS = 3


@dataclass
class Sent:
    """One alert of the stream and what intake answered to each try."""

    number: int
    kind: str
    payload: dict[str, Any]
    answers: list[tuple[float, str]] = field(default_factory=list)  # (time, "202" / "ConnectError" ...)
    alert_id: str | None = None  # the (parent) alert intake stored, from a 2xx answer
    children: list[str] = field(default_factory=list)
    status: int | None = None  # the last HTTP status

    @property
    def accepted(self) -> bool:
        return self.alert_id is not None


def _exits(rng: random.Random) -> dict[str, Any]:
    return {"takeProfit": {"percent": rng.choice([1, 1.5, 2])}, "stopLoss": {"percent": rng.choice([1, 1.5])}}


def _bracket(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    return {**base, "action": rng.choice(["buy", "sell"]), "quantity": rng.randint(1, 10), **_exits(rng)}


def _reversal(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    side = rng.choice(["buy", "sell"])
    sentiment = "bullish" if side == "buy" else "bearish"
    return {**base, "action": side, "quantity": 2 * rng.randint(1, 8), "sentiment": sentiment, **_exits(rng)}


def _exit(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    return {**base, "action": "exit"}


def _target(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    size = rng.choice([-8, -5, -3, 0, 3, 5, 8])
    return {**base, "action": "buy" if size >= 0 else "sell", "positionSize": size, **_exits(rng)}


def _fanout(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    return {**_bracket(rng, base), "account": list(ACCOUNTS)}


def _invalid(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    return {**base, "action": "buy", "quantity": -rng.randint(1, 5)}  # 422: quantity must be > 0


#: alert kind -> (weight, builder); one more kind is one more row
KINDS: dict[str, tuple[int, Callable[[random.Random, dict[str, Any]], dict[str, Any]]]] = {
    "bracket": (5, _bracket),
    "reversal": (3, _reversal),
    "exit": (2, _exit),
    "target": (3, _target),
    "fanout": (2, _fanout),
    "invalid": (1, _invalid),
}


def make_alert(rng: random.Random, number: int, prices: dict[str, float]) -> Sent:
    kind = rng.choices(list(KINDS), weights=[w for w, _ in KINDS.values()])[0]
    ticker = rng.choice(list(TICKERS))
    base = {"ticker": ticker, "price": prices[ticker], "account": rng.choice(ACCOUNTS),
            "strategy": f"chaos-{kind}", "id": f"chaos-{number}"}  # fmt: skip
    return Sent(number, kind, KINDS[kind][1](rng, base))


class AlertStream:
    """Sends alerts at about ``rate`` a second (exponential gaps) plus a burst of 3 to 6 every
    ``bar_seconds`` (a bar close), each from a pool thread, until :meth:`stop`."""

    def __init__(self, url: str, secret: str, rng: random.Random, prices: dict[str, float], *,
                 rate: float, bar_seconds: float, resend_after: float, note: Callable[[str], None]) -> None:  # fmt: skip
        self.url, self.secret, self.rng, self.prices = url, secret, rng, prices
        self.rate, self.bar_seconds, self.resend_after, self.note = rate, bar_seconds, resend_after, note
        self.sent: list[Sent] = []
        self.http_5xx: list[tuple[float, int, str]] = []  # (time, status, body)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="chaos-send")
        self._thread = threading.Thread(target=self._run, name="chaos-stream", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop sending new alerts and wait for the ones in flight (their resends included)."""
        self._stop.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        next_bar = time.monotonic() + self.bar_seconds
        while not self._stop.is_set():
            burst = 1
            if time.monotonic() >= next_bar:
                burst, next_bar = self.rng.randint(3, 6), next_bar + self.bar_seconds
            for _ in range(burst):
                with self._lock:
                    sent = make_alert(self.rng, len(self.sent) + 1, dict(self.prices))
                    self.sent.append(sent)
                self._pool.submit(self._send, sent)
            self._stop.wait(self.rng.expovariate(self.rate))

    def _send(self, sent: Sent) -> None:
        body = {"secret": self.secret, **sent.payload}
        for attempt in range(1 + RESENDS):
            if attempt:
                time.sleep(self.resend_after)
            try:
                answer = httpx.post(f"{self.url}/webhook", json=body, timeout=10)
            except httpx.HTTPError as exc:
                sent.answers.append((time.time(), type(exc).__name__))
                continue
            sent.status = answer.status_code
            sent.answers.append((time.time(), str(answer.status_code)))
            if answer.status_code >= 500:
                with self._lock:
                    self.http_5xx.append((time.time(), answer.status_code, answer.text[:300]))
                continue
            if answer.status_code < 300:
                doc = answer.json()
                sent.alert_id = doc.get("alert_id")
                sent.children = [c["alert_id"] for c in doc.get("children") or []]
            elif sent.kind != "invalid":
                self.note(
                    f"alert #{sent.number} ({sent.kind}) refused {answer.status_code}: {answer.text[:200]}"
                )
            return
        self.note(
            f"alert #{sent.number} ({sent.kind}) not accepted after {1 + RESENDS} tries: {sent.answers}"
        )
