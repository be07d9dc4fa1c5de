"""The protections' locks (pure): a strategy's fills and the clock in, the locks that hold out.

freqtrade's protections are the model. A protection is evaluated at each fill that could set it
off, as of that fill's time, and locks from that fill's time; a lock holds until its time is up:

* ``stop_out_cooldown_minutes`` N: a stop-out (the first fill of an ``sl`` leg's order) locks its
  ticker for N minutes;
* ``stop_loss_guard`` {stop_outs, within_minutes, lock_minutes, lock}: a stop-out that makes
  ``stop_outs`` within ``within_minutes`` (on the ticker, or on any ticker with ``lock: strategy``)
  locks the ticker (or the strategy) for ``lock_minutes``;
* ``drawdown_pause`` {max_drawdown, within_minutes, pause_minutes}: a fill with IB's realized PnL
  after which the strategy's realized PnL over the last ``within_minutes`` (from 0 at the window's
  start) stands ``max_drawdown`` or more below its peak in the window locks the strategy for
  ``pause_minutes``;
* ``daily_profit_target`` T: the fill that brings the strategy's realized PnL of the trading day
  (worker/risk/state.py: it ends 17:00 New York) to T or more locks the strategy until the next
  trading day begins (the exchange calendar's next session: a Friday's lock holds over the weekend).

The locks are a function of the fills, the rules in force and the clock: the worker recomputes them
from the fills it keeps in memory (worker/risk/tally.py, built from the database at start), so a
restart keeps them, and a reloaded rule applies to the fills already made. A lock only refuses the
opening part of a decision: exits, closes and flattens never meet it.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.ids import exit_leg_parts, parse_order_ref
from core.risk_rules import RiskRules
from worker.decision.numbers import money, qty
from worker.risk.checks import Check
from worker.risk.state import DAY_ZONE, ClosedFillRow, day_bounds, strategy_key, trading_day

COOLDOWN = "stop_out_cooldown_minutes"
GUARD = "stop_loss_guard"
DRAWDOWN = "drawdown_pause"
PROFIT = "daily_profit_target"
ORDER = (COOLDOWN, GUARD, DRAWDOWN, PROFIT)  # the checks' order (the first failed one refuses)
PROFIT_DAYS = 7  # trading days back whose target can still lock (a long weekend, holidays)

NextDay = Callable[[date], date]  # a trading day -> the next one (worker/risk/calendar.py)


def next_calendar_day(day: date) -> date:
    return day + timedelta(days=1)


@dataclass(frozen=True)
class Lock:
    """New entries refused for a strategy's ticker (or the whole strategy) until ``until``."""

    rule: str  # the risk file's key
    strategy: str  # the strategy as its alerts name it ("": alerts without one)
    symbol: str  # IB's symbol; "": every ticker of the strategy
    since: datetime  # the fill that set it
    until: datetime
    label: str  # the rule in words: "cooldown 30 min after a stop-out"
    why: str  # "AAPL stopped out at 14:02"
    source: str  # where the rule came from: defaults, strategy "trend"

    @property
    def key(self) -> tuple[str, str, str]:
        """What one lock is about: a later fill extends it, it does not make another."""
        return self.rule, strategy_key(self.strategy), self.symbol

    def covers(self, names: Iterable[str]) -> bool:
        return not self.symbol or self.symbol.upper() in {n.upper() for n in names}

    @property
    def what(self) -> str:
        if self.symbol:
            return f"on {self.symbol}"
        return f'for strategy "{self.strategy}"' if self.strategy else "for alerts without a strategy"

    @property
    def until_text(self) -> str:
        return until_text(self.since, self.until) + (" (the next trading day)" if self.rule == PROFIT else "")

    def refusal(self) -> str:
        """``risk: cooldown 30 min after a stop-out (strategy "trend"): AAPL stopped out at 14:02,
        no new entry on AAPL until 14:32 America/New_York``."""
        return f"risk: {self.label} ({self.source}): {self.why}, no new entry {self.what} until {self.until_text}"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["since"], doc["until"] = self.since.isoformat(), self.until.isoformat()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Lock:
        return cls(**{**doc, "since": datetime.fromisoformat(doc["since"]),
                      "until": datetime.fromisoformat(doc["until"])})  # fmt: skip


def dumps(locks: Sequence[Lock]) -> str:
    return json.dumps([lock.to_json() for lock in locks])


def loads(text: str) -> list[Lock]:
    """Locks as :func:`dumps` stored them; what cannot be read is dropped (a lock is recomputed)."""
    try:
        return [Lock.from_json(doc) for doc in json.loads(text)]
    except (ValueError, TypeError, KeyError):
        return []


# ---------------------------------------------------------------------- words


def clock(moment: datetime) -> str:
    return moment.astimezone(DAY_ZONE).strftime("%H:%M")


def until_text(since: datetime, until: datetime) -> str:
    """``14:32 America/New_York``; with the date when it is not ``since``'s."""
    a, b = since.astimezone(DAY_ZONE), until.astimezone(DAY_ZONE)
    shown = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"{shown} {DAY_ZONE.key}"


def minutes(value: Decimal) -> str:
    return qty(value)


def signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + money(value)


# ---------------------------------------------------------------------- the locks


def locks_at(rules: RiskRules, strategy: str, fills: Sequence[ClosedFillRow], now: datetime, *,
             currency: str = "USD", next_day: NextDay = next_calendar_day) -> list[Lock]:  # fmt: skip
    """The locks of one strategy on one account that hold at ``now`` (``now`` before ``until``;
    a fill IB stamped a moment ahead of this clock locks already), at most one per rule and ticker
    (the one that ends last). ``fills``: the strategy's, by time (worker/risk/tally.py)."""
    found: list[Lock] = []
    stops = stop_outs(fills)
    cooldown = rules.stop_out_cooldown_minutes
    if cooldown:
        span = timedelta(minutes=float(cooldown))
        found += [Lock(COOLDOWN, strategy, symbol, at, at + span, f"cooldown {minutes(cooldown)} min after a stop-out",
                       f"{symbol} stopped out at {clock(at)}", rules.source_of(COOLDOWN))
                  for at, symbol in stops if at + span > now]  # fmt: skip
    if rules.stop_loss_guard is not None:
        found += _guard(rules, strategy, stops, now)
    if rules.drawdown_pause is not None:
        found += _drawdown(rules, strategy, [f for f in fills if f.realized is not None], now, currency)
    if rules.daily_profit_target is not None:
        found += _profit(rules, strategy, fills, now, currency, next_day)
    last: dict[tuple[str, str, str], Lock] = {}
    for lock in found:
        kept = last.get(lock.key)
        if kept is None or lock.until > kept.until:
            last[lock.key] = lock
    return sorted(last.values(), key=lambda lock: (ORDER.index(lock.rule), lock.symbol))


def stop_outs(fills: Sequence[ClosedFillRow]) -> list[tuple[datetime, str]]:
    """(time, IB symbol) of each stop-out: the first fill of the stops of one alert (``sl``, a
    re-attached ``sl2``, the slices ``sl.1`` / ``sl.2`` of a take-profit in levels: their stops
    trigger together, one stop-out), by time."""
    seen: set[str] = set()
    found = []
    for fill in fills:
        if (exit_leg_parts(fill.leg) or ("",))[0] != "sl":
            continue
        parsed = parse_order_ref(fill.order_ref)
        order = parsed[0] if parsed else fill.order_ref or fill.exec_id
        if order in seen:
            continue
        seen.add(order)
        found.append((fill.time, fill.symbol))
    return found


def _guard(rules: RiskRules, strategy: str, stops: list[tuple[datetime, str]], now: datetime) -> list[Lock]:
    guard = rules.stop_loss_guard
    assert guard is not None
    within, span = (
        timedelta(minutes=float(guard.within_minutes)),
        timedelta(minutes=float(guard.lock_minutes)),
    )
    label = f"stop_loss_guard {guard.stop_outs} stop-outs within {minutes(guard.within_minutes)} min"
    found = []
    for i, (at, symbol) in enumerate(stops):
        if at + span <= now:
            continue
        same = [
            (t, s) for t, s in stops[: i + 1] if t > at - within and (guard.lock == "strategy" or s == symbol)
        ]
        if len(same) < guard.stop_outs:
            continue
        if guard.lock == "strategy":
            tickers = ", ".join(dict.fromkeys(s for _, s in same))
            why = f"{len(same)} stop-outs ({tickers}) from {clock(same[0][0])} to {clock(at)}"
        else:
            why = f"{symbol} stopped out {len(same)} times from {clock(same[0][0])} to {clock(at)}"
        found.append(Lock(GUARD, strategy, symbol if guard.lock == "ticker" else "", at, at + span, label, why,
                          rules.source_of(GUARD)))  # fmt: skip
    return found


def _drawdown(
    rules: RiskRules, strategy: str, fills: list[ClosedFillRow], now: datetime, currency: str
) -> list[Lock]:
    """The fills after which the realized PnL over the window stood ``max_drawdown`` below its peak
    in the window (one pass: prefix sums, and the window's highest one kept in a deque)."""
    pause = rules.drawdown_pause
    assert pause is not None
    within, span = (
        timedelta(minutes=float(pause.within_minutes)),
        timedelta(minutes=float(pause.pause_minutes)),
    )
    label = (
        f"drawdown_pause {money(pause.max_drawdown)} {currency} within {minutes(pause.within_minutes)} min"
    )
    sums = [Decimal(0)]  # sums[j]: the realized PnL of the first j fills
    for fill in fills:
        sums.append(sums[-1] + (fill.realized or 0))
    highest: deque[int] = deque()  # indices of sums, their values decreasing: the window's peak first
    start = pushed = 0
    found = []
    for i in range(bisect_right(fills, now - span, key=lambda f: f.time), len(fills)):
        fill = fills[i]
        while fills[start].time <= fill.time - within:
            start += 1  # sums[start]: the PnL before the window
        for j in range(pushed, i + 2):
            while highest and sums[highest[-1]] <= sums[j]:
                highest.pop()
            highest.append(j)
        pushed = i + 2
        while highest[0] < start:
            highest.popleft()
        equity, peak = sums[i + 1] - sums[start], sums[highest[0]] - sums[start]
        if fill.time + span <= now or peak - equity < pause.max_drawdown:
            continue
        why = (f"the realized PnL fell to {signed(equity)} {currency} at {clock(fill.time)}, "
               f"{money(peak - equity)} below its peak of {signed(peak)} in the window")  # fmt: skip
        found.append(
            Lock(DRAWDOWN, strategy, "", fill.time, fill.time + span, label, why, rules.source_of(DRAWDOWN))
        )
    return found


def _profit(rules: RiskRules, strategy: str, fills: Sequence[ClosedFillRow], now: datetime, currency: str,
            next_day: NextDay) -> list[Lock]:  # fmt: skip
    target = rules.daily_profit_target
    assert target is not None
    first = trading_day(now) - timedelta(days=PROFIT_DAYS)
    days: dict[date, list[ClosedFillRow]] = {}
    for fill in fills:
        day = trading_day(fill.time)
        if fill.realized is not None and day >= first:
            days.setdefault(day, []).append(fill)
    found = []
    for day, rows in days.items():
        total = Decimal(0)
        for row in rows:
            total += row.realized or 0
            if total >= target:
                until = day_bounds(next_day(day))[0]
                if until > now:
                    why = f"the realized PnL of the trading day {day.isoformat()} reached {signed(total)} {currency} at {clock(row.time)}"
                    found.append(Lock(PROFIT, strategy, "", row.time, until, f"daily_profit_target {money(target)} {currency}",
                                      why, rules.source_of(PROFIT)))  # fmt: skip
                break
    return found


# ---------------------------------------------------------------------- the checks


def protection_checks(rules: RiskRules, locks: Sequence[Lock], names: Iterable[str]) -> list[Check]:
    """One check per protection in force: refused by the first lock covering the order's ticker
    (``names``: the TradingView ticker, IB's symbol and local symbol)."""
    names = set(names)
    checks = []
    for rule in ORDER:
        limit = getattr(rules, rule)
        if limit is None or (rule == COOLDOWN and not limit):
            continue
        shown = limit.to_json() if hasattr(limit, "to_json") else limit
        lock = next((lock for lock in locks if lock.rule == rule and lock.covers(names)), None)
        if lock is None:
            checks.append(Check(rule, shown, None, True, rules.source_of(rule)))
        else:
            value = {"symbol": lock.symbol, "since": lock.since.isoformat(), "until": lock.until.isoformat()}
            checks.append(Check(rule, shown, value, False, lock.source, lock.refusal()))
    return checks
