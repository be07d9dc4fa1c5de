"""The alarm naming the open option positions on their expiry day (pure, typed).

The worker's housekeeping thread (worker/expiry_watch.py) reads the account's option positions
every few seconds and asks :func:`expiry_alarm` whether to raise an alarm now:

* on the exchange's date (New York for US options), from ``OPTION_EXPIRY_ALARM_TIME`` (09:30 by
  default) on, every option position that expires that day is named, once: one alarm for those
  open at the first check, and one more for each contract opened later that day (it names only
  the new ones). A contract closed and opened again the same day is not named again;
* the text says how each one stands: long or short, how many, the contract, and, when the
  underlying's price is at hand without asking IB (a kept market-data stream), in or out of the
  money by how much: ``long 2 AAPL 261218C00195000 (call 195, in the money by 3.10 at 198.10)``.

The memory of what was named is the watcher's (:class:`Alarmed`); across a restart the notice's
dedup key (:meth:`ExpiryAlarm.dedup_key`: the account, the day and the contracts named) keeps the
same alarm from being written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from worker.decision.numbers import price as fmt_price
from worker.decision.option_choice import strike_text
from worker.decision.option_target import HeldOption

#: the first check of an expiry day that may raise the alarm (New York); OPTION_EXPIRY_ALARM_TIME
DEFAULT_ALARM_TIME = time(9, 30)
TITLE = "Options expire today"
EXERCISE_RULE = "IB exercises options in the money by 0.01 or more at the close (docs/contracts.md, Expiry)"


@dataclass(frozen=True)
class OptionPosition:
    """An option position of the account and its underlying's symbol."""

    symbol: str
    held: HeldOption


@dataclass(frozen=True)
class Alarmed:
    """The contracts (conIds) already named on ``day`` (None: nothing named yet)."""

    day: date | None = None
    con_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ExpiryAlarm:
    """One alarm: the positions it names, and what has been named once it is raised."""

    day: date
    named: tuple[OptionPosition, ...]
    after: Alarmed

    def dedup_key(self, account: str) -> str:
        """The notice's dedup key: the same contracts on the same day make one notice, restarts
        included (a long list is shortened to a hash by the notices pipeline)."""
        con_ids = ",".join(str(p.held.con_id) for p in self.named)
        return f"option_expiry:{account}:{self.day.isoformat()}:{con_ids}"

    @property
    def symbols(self) -> list[str]:
        """The underlyings whose prices the text would show."""
        return sorted({p.symbol for p in self.named})

    def detail(self, prices: Mapping[str, Decimal]) -> str:
        """The alarm's text (the title aside); ``prices``: the underlyings' prices at hand."""
        named = ", ".join(describe(p, prices.get(p.symbol)) for p in self.named)
        return f"{named}; {EXERCISE_RULE}"


def expiry_alarm(
    positions: Sequence[OptionPosition], now: datetime, alarm_time: time, alarmed: Alarmed
) -> ExpiryAlarm | None:
    """The alarm to raise now, or None: the positions expiring on ``now``'s date (the exchange's
    local time) that ``alarmed`` has not named that day, from ``alarm_time`` on."""
    today = now.date()
    if alarmed.day != today:
        alarmed = Alarmed(today)
    if now.time() < alarm_time:
        return None
    new = sorted(
        (p for p in positions
         if p.held.position and p.held.expiry == today and p.held.con_id not in alarmed.con_ids),
        key=lambda p: (p.symbol, p.held.expiry, p.held.right, p.held.strike, p.held.con_id),
    )  # fmt: skip
    if not new:
        return None
    named = alarmed.con_ids | {p.held.con_id for p in new}
    return ExpiryAlarm(today, tuple(new), Alarmed(today, frozenset(named)))


def describe(position: OptionPosition, underlying: Decimal | None) -> str:
    """``long 2 AAPL 261218C00195000 (call 195, in the money by 3.10 at 198.10)``."""
    held = position.held
    side = "long" if held.position > 0 else "short"
    size = f"{abs(held.position).normalize():f}"
    kind = "call" if held.right == "C" else "put"
    name = " ".join(held.local_symbol.split()) or f"{position.symbol} {held.expiry:%y%m%d}"
    where = moneyness(held, position.symbol, underlying)
    return f"{side} {size} {name} ({kind} {strike_text(held.strike)}, {where})"


def moneyness(held: HeldOption, symbol: str, underlying: Decimal | None) -> str:
    """In or out of the money by how much at ``underlying``; says so when no price is at hand."""
    if underlying is None:
        return f"{symbol}'s price not at hand"
    into = underlying - held.strike if held.right == "C" else held.strike - underlying
    if into > 0:
        return f"in the money by {fmt_price(into)} at {fmt_price(underlying)}"
    if into < 0:
        return f"out of the money by {fmt_price(-into)} at {fmt_price(underlying)}"
    return f"at the money at {fmt_price(underlying)}"
