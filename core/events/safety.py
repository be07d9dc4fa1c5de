"""What the worker's safety nets report: a position the guard could not protect again, a position
that drifted from the one the strategy said it held, the daily loss limit reached, a protection
locking or unlocking a strategy's entries, an alert of a strategy the risk file does not know, the
positions closed before their session's end, a stop moved to break-even."""

from decimal import Decimal
from typing import Literal, TypedDict


class UnprotectedEvent(TypedDict):
    """The guard could not put a position's take-profit / stop-loss back (it tried once)."""

    type: Literal["unprotected"]
    account: str
    con_id: int
    symbol: str
    alert_id: str | None
    position: str
    position_text: str
    missing: list[str]
    detail: str
    action_taken: str
    raised_at: int  # part of the notice's dedup key: a later loss of protection alarms again


class PositionDriftEvent(TypedDict):
    """IB's position is not the one the strategy said it held before the alert."""

    type: Literal["position_drift"]
    alert_id: str
    strategy: str | None
    ticker: str
    symbol: str
    account: str | None
    expected: str
    actual: str
    detail: str


class DailyLossEvent(TypedDict):
    """Today's loss reached the account's ``daily_loss_limit`` (risk file): entries are halted until
    the trading day ends (worker/risk/gate.py); ``action`` says whether positions were flattened."""

    type: Literal["daily_loss"]
    account: str
    day: str  # the trading day (ends 17:00 America/New_York)
    pnl: str  # today's PnL, realized + unrealized, base currency
    realized: str
    unrealized: str | None
    limit: str
    source: str  # where the limit came from: defaults, account "DU1"
    action: str
    until: str


class ProtectionEvent(TypedDict):
    """A protection of the risk file locked a strategy's new entries (on a ticker, or all of them),
    or the lock ended (worker/risk/protections.py, said by worker/risk/lock_watch.py)."""

    type: Literal["protection"]
    state: Literal["locked", "unlocked"]
    account: str
    strategy: str  # as its alerts name it ("": alerts without one)
    rule: str  # the risk file's key: stop_out_cooldown_minutes, stop_loss_guard, ...
    symbol: str  # "": every ticker of the strategy
    label: str  # the rule in words: "cooldown 30 min after a stop-out"
    source: str  # where the rule came from: defaults, strategy "trend"
    why: str  # "AAPL stopped out at 14:02"
    what: str  # "on AAPL", 'for strategy "trend"'
    since: str  # ISO 8601
    until: str  # ISO 8601
    until_text: str  # "14:32 America/New_York"
    detail: str  # unlocked: why ("its time is up", "the risk file no longer locks it")


class UnknownStrategyEvent(TypedDict):
    """An alert named a strategy the risk file does not know (case aside): it was checked against
    the defaults and its account's section only (a warning; worker/risk/gate.py)."""

    type: Literal["unknown_strategy"]
    alert_id: str
    strategy: str
    account: str | None
    risk_file: str
    known: list[str]  # the strategies the file has (at most 10)


class SessionClose(TypedDict):
    """One position the session-end flatten closed (or tried to)."""

    con_id: int
    symbol: str
    alert_id: str  # the alert that owns the position (its protection record)
    strategy: str | None
    position: str  # before the close: "long 10"
    action: str  # the closing order: BUY / SELL
    quantity: str
    order_ref: str
    when: str  # "15 min before the 16:00 America/New_York close (XNYS, Wed 2026-11-25)"
    source: str  # where flatten_before_close came from: 'strategy "day"'
    result: str  # "filled", or why it was not closed (the close cancelled, the exits put back)


class SessionFlattenEvent(TypedDict):
    """``flatten_before_close`` (risk file): positions closed before their exchange's close
    (worker/session_flatten.py)."""

    type: Literal["session_flatten"]
    account: str
    closed: list[SessionClose]


def session_flatten(account: str, closed: list[SessionClose]) -> SessionFlattenEvent:
    return {"type": "session_flatten", "account": account, "closed": closed}


class BreakEvenEvent(TypedDict):
    """``stopLoss.breakEven``: the position's stop moved to its entry (worker/break_even_watch.py)."""

    type: Literal["break_even"]
    account: str
    con_id: int
    symbol: str
    alert_id: str  # the alert that opened the position (its protection record)
    position: str  # "long 10"
    old_stop: str | None
    new_stop: str
    why: str


def break_even(*, account: str, con_id: int, symbol: str, alert_id: str, position: str, old_stop: str | None,
               new_stop: str, why: str) -> BreakEvenEvent:  # fmt: skip
    return {"type": "break_even", "account": account, "con_id": con_id, "symbol": symbol, "alert_id": alert_id,
            "position": position, "old_stop": old_stop, "new_stop": new_stop, "why": why}  # fmt: skip


def unprotected(
    *,
    account: str,
    con_id: int,
    symbol: str,
    alert_id: str | None,
    position: Decimal,
    position_text: str,
    missing: list[str],
    detail: str,
    action_taken: str,
    raised_at: int,
) -> UnprotectedEvent:
    return {
        "type": "unprotected",
        "account": account,
        "con_id": con_id,
        "symbol": symbol,
        "alert_id": alert_id,
        "position": str(position),
        "position_text": position_text,
        "missing": missing,
        "detail": detail,
        "action_taken": action_taken,
        "raised_at": raised_at,
    }


def position_drift(
    alert_id: str,
    *,
    strategy: str | None,
    ticker: str,
    symbol: str,
    account: str | None,
    expected: str,
    actual: str,
    detail: str,
) -> PositionDriftEvent:
    return {
        "type": "position_drift",
        "alert_id": alert_id,
        "strategy": strategy,
        "ticker": ticker,
        "symbol": symbol,
        "account": account,
        "expected": expected,
        "actual": actual,
        "detail": detail,
    }


def daily_loss(
    *,
    account: str,
    day: str,
    pnl: str,
    realized: str,
    unrealized: str | None,
    limit: str,
    source: str,
    action: str,
    until: str,
) -> DailyLossEvent:
    return {
        "type": "daily_loss",
        "account": account,
        "day": day,
        "pnl": pnl,
        "realized": realized,
        "unrealized": unrealized,
        "limit": limit,
        "source": source,
        "action": action,
        "until": until,
    }


def protection(
    state: Literal["locked", "unlocked"],
    *,
    account: str,
    strategy: str,
    rule: str,
    symbol: str,
    label: str,
    source: str,
    why: str,
    what: str,
    since: str,
    until: str,
    until_text: str,
    detail: str = "",
) -> ProtectionEvent:
    return {
        "type": "protection",
        "state": state,
        "account": account,
        "strategy": strategy,
        "rule": rule,
        "symbol": symbol,
        "label": label,
        "source": source,
        "why": why,
        "what": what,
        "since": since,
        "until": until,
        "until_text": until_text,
        "detail": detail,
    }


def unknown_strategy(
    alert_id: str, *, strategy: str, account: str | None, risk_file: str, known: list[str]
) -> UnknownStrategyEvent:
    return {
        "type": "unknown_strategy",
        "alert_id": alert_id,
        "strategy": strategy,
        "account": account,
        "risk_file": risk_file,
        "known": known[:10],
    }
