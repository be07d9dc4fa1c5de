"""The events of tv2ib: one TypedDict per kind, each with a ``type`` Literal key.

Web and worker both read them. The worker's recorder emits the facts (``alert_status``,
``alert_rejected``, ``order_status``, ``order_rejected``, ``fill``) after their transaction
commits; they go out as one JSON object each on Redis pub/sub (``keys.EVENTS_CHANNEL``) to the
dashboard's SSE stream and ``tv2ib tail``, and the notifier composes its Telegram notices from them
(``worker/notify/compose.py``). The web app publishes ``paused``. The notifier makes its own alarms
(``ib_lost`` ... ``alarm``) and writes them to the outbox only (they never reach pub/sub).

A TypedDict is a plain dict at run time, so the JSON on the wire is exactly the dict the
constructor builds (keys in the order written here). Build events through the constructors below
rather than by hand: a forgotten key is then a type error at the call, and a reader can use
``event["key"]`` knowing the key is there.

Adding an event kind (as the guard's "unprotected" alarm was added):

1. a ``class UnprotectedEvent(TypedDict)`` here with ``type: Literal["unprotected"]`` and its
   keys, a constructor ``unprotected(...)``, and the class in :data:`Event`;
2. one ``@composer("unprotected")`` function in ``worker/notify/compose.py`` taking that type
   (its notice kind is then switchable with ``NOTIFY`` like any other);
3. emit it: ``uow.emit(events.unprotected(...))`` in the recorder (it then also reaches the
   dashboard), or ``Notifier.enqueue_event`` for a notice that is no fact of the database.
"""

from decimal import Decimal
from typing import Literal, NotRequired, TypedDict, get_args, get_type_hints

from core.models import Order

# --- the recorder's facts (pub/sub and notices) --------------------------------------------------


class AlertStatusEvent(TypedDict):
    """An alert moved to ``status`` (``reason``: why it ended, for terminal states)."""

    type: Literal["alert_status"]
    alert_id: str
    status: str
    reason: str | None


class AlertRejectedEvent(TypedDict):
    """An alert was refused (``rejected``) or could not be processed (``failed``)."""

    type: Literal["alert_rejected"]
    alert_id: str
    strategy: str | None
    ticker: str | None
    action: str | None
    status: str
    reason: str | None
    # the account of a fan-out child (one alert of several accounts): its notice names it
    account: NotRequired[str]


class OrderStatusEvent(TypedDict):
    """An alert's order changed state or filled quantity at IB."""

    type: Literal["order_status"]
    alert_id: str
    leg: str
    order_ref: str
    ib_order_id: int | None
    perm_id: int | None
    status: str
    filled: float | None
    remaining: float | None
    avg_fill_price: float | None


class OrderRejectedEvent(TypedDict):
    """IB refused an order (``error_code`` is IB's code, ``reason`` its text). ``alert_id`` and
    ``strategy`` are None for an order that no alert made (placed in TWS)."""

    type: Literal["order_rejected"]
    alert_id: str | None
    strategy: str | None
    leg: str | None
    symbol: str | None
    order_ref: str
    error_code: int
    reason: str
    account: NotRequired[str]  # as in AlertRejectedEvent: set for a fan-out child's order


class FillEvent(TypedDict):
    """One execution with its commission report (once per ``exec_id``)."""

    type: Literal["fill"]
    exec_id: str
    alert_id: str | None
    strategy: str | None
    leg: str | None
    symbol: str | None
    local_symbol: str | None
    sec_type: str | None
    side: str
    quantity: float | None
    price: float | None
    cum_quantity: float | None
    order_quantity: float | None
    order_ref: str | None
    time: str | None
    commission: float | None
    commission_currency: str | None
    realized_pnl: float | None
    account: str | None


# --- the web app's --------------------------------------------------------------------------------


class PausedEvent(TypedDict):
    """An operator paused (``paused`` true) or resumed trading; ``by`` says who (``api``,
    ``dashboard``, ``telegram:<user id>``)."""

    type: Literal["paused"]
    paused: bool
    by: str


# --- the notifier's alarms (outbox only) ---------------------------------------------------------


class _Where(TypedDict):
    # Which worker raises it; the notifier fills both in before writing the notice.
    account: NotRequired[str | None]
    client_id: NotRequired[int]


class OutageEvent(_Where):
    """A connection (IB or Redis) down for longer than its alarm delay (``*_lost``), or back after
    such an alarm (``*_restored``). ``since`` is the epoch it went down."""

    type: Literal["ib_lost", "ib_restored", "redis_lost", "redis_restored"]
    since: float
    down_seconds: float
    detail: NotRequired[str]


class WorkerStoppedEvent(_Where):
    """The worker process is stopping (``reason``: the signal or the error)."""

    type: Literal["worker_stopped"]
    reason: str
    pid: int
    host: str
    at: float


class StrategyTotals(TypedDict):
    strategy: str | None  # None: manual trades and fills no alert made
    fills: int
    realized_pnl: float
    commissions: float


class DailySummaryEvent(_Where):
    """The totals of one UTC day (``date``), with a breakdown per strategy."""

    type: Literal["daily_summary"]
    date: str
    fills: int
    realized_pnl: float
    commissions: float
    positions: NotRequired[int]
    strategies: NotRequired[list[StrategyTotals]]


class AlarmEvent(_Where):
    """A generic alarm (an unclean exit, risk rules and the like); ``dedup_key`` makes it once."""

    type: Literal["alarm"]
    title: str
    detail: NotRequired[str]
    dedup_key: NotRequired[str]


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


class UnknownStrategyEvent(TypedDict):
    """An alert named a strategy the risk file does not know (case aside): it was checked against
    the defaults and its account's section only (a warning; worker/risk/gate.py)."""

    type: Literal["unknown_strategy"]
    alert_id: str
    strategy: str
    account: str | None
    risk_file: str
    known: list[str]  # the strategies the file has (at most 10)


Event = (
    AlertStatusEvent
    | AlertRejectedEvent
    | OrderStatusEvent
    | OrderRejectedEvent
    | FillEvent
    | PausedEvent
    | OutageEvent
    | WorkerStoppedEvent
    | DailySummaryEvent
    | AlarmEvent
    | UnprotectedEvent
    | PositionDriftEvent
    | DailyLossEvent
    | UnknownStrategyEvent
)


# --- constructors ---------------------------------------------------------------------------------


def _float(value: Decimal | None) -> float | None:
    # Quantities and prices are Decimal in the database and numbers in JSON.
    return None if value is None else float(value)


def alert_status(alert_id: str, status: str, reason: str | None) -> AlertStatusEvent:
    return {"type": "alert_status", "alert_id": alert_id, "status": status, "reason": reason}


def alert_rejected(
    alert_id: str,
    *,
    strategy: str | None,
    ticker: str | None,
    action: str | None,
    status: str,
    reason: str | None,
    account: str | None = None,
) -> AlertRejectedEvent:
    event: AlertRejectedEvent = {
        "type": "alert_rejected",
        "alert_id": alert_id,
        "strategy": strategy,
        "ticker": ticker,
        "action": action,
        "status": status,
        "reason": reason,
    }
    if account:
        event["account"] = account
    return event


def order_status(order: Order, remaining: Decimal | None) -> OrderStatusEvent:
    """The state of an alert's ``order`` row as just recorded (``remaining``: IB's, not stored)."""
    assert order.alert_id is not None, "order_status events are for an alert's orders"
    return {
        "type": "order_status",
        "alert_id": order.alert_id,
        "leg": order.leg,
        "order_ref": order.order_ref,
        "ib_order_id": order.ib_order_id,
        "perm_id": order.perm_id,
        "status": order.status,
        "filled": _float(order.filled_quantity),
        "remaining": _float(remaining),
        "avg_fill_price": _float(order.avg_fill_price),
    }


def order_rejected(
    alert_id: str | None,
    *,
    strategy: str | None,
    leg: str | None,
    symbol: str | None,
    order_ref: str,
    error_code: int,
    reason: str,
    account: str | None = None,
) -> OrderRejectedEvent:
    event: OrderRejectedEvent = {
        "type": "order_rejected",
        "alert_id": alert_id,
        "strategy": strategy,
        "leg": leg,
        "symbol": symbol,
        "order_ref": order_ref,
        "error_code": error_code,
        "reason": reason,
    }
    if account:
        event["account"] = account
    return event


def fill(
    exec_id: str,
    *,
    alert_id: str | None,
    strategy: str | None,
    leg: str | None,
    symbol: str | None,
    local_symbol: str | None,
    sec_type: str | None,
    side: str,
    quantity: float | None,
    price: float | None,
    cum_quantity: float | None,
    order_quantity: float | None,
    order_ref: str | None,
    time: str | None,
    commission: float | None,
    commission_currency: str | None,
    realized_pnl: float | None,
    account: str | None,
) -> FillEvent:
    return {
        "type": "fill",
        "exec_id": exec_id,
        "alert_id": alert_id,
        "strategy": strategy,
        "leg": leg,
        "symbol": symbol,
        "local_symbol": local_symbol,
        "sec_type": sec_type,
        "side": side,
        "quantity": quantity,
        "price": price,
        "cum_quantity": cum_quantity,
        "order_quantity": order_quantity,
        "order_ref": order_ref,
        "time": time,
        "commission": commission,
        "commission_currency": commission_currency,
        "realized_pnl": realized_pnl,
        "account": account,
    }


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


def paused(is_paused: bool, by: str) -> PausedEvent:
    return {"type": "paused", "paused": is_paused, "by": by}


OutageKind = Literal["ib_lost", "ib_restored", "redis_lost", "redis_restored"]


def outage(kind: OutageKind, since: float, down_seconds: float, detail: str | None = None) -> OutageEvent:
    event: OutageEvent = {"type": kind, "since": round(since, 3), "down_seconds": down_seconds}
    if detail is not None:
        event["detail"] = detail
    return event


def worker_stopped(
    reason: str, *, account: str | None, client_id: int, pid: int, host: str, at: float
) -> WorkerStoppedEvent:
    return {
        "type": "worker_stopped",
        "reason": reason,
        "account": account,
        "client_id": client_id,
        "pid": pid,
        "host": host,
        "at": round(at, 3),
    }


def alarm(title: str, detail: str, *, dedup_key: str | None = None) -> AlarmEvent:
    event: AlarmEvent = {"type": "alarm", "title": title, "detail": detail}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


# --- kinds ------------------------------------------------------------------------------------------

# The notifier's alarms: written to the notice outbox only, never published on EVENTS_CHANNEL.
OUTBOX_ONLY: tuple[type, ...] = (OutageEvent, WorkerStoppedEvent, DailySummaryEvent, AlarmEvent)


def _kinds(types: tuple[type, ...]) -> frozenset[str]:
    return frozenset(kind for cls in types for kind in get_args(get_type_hints(cls)["type"]))


def published_kinds() -> frozenset[str]:
    """Every ``type`` a subscriber of ``EVENTS_CHANNEL`` can receive (the dashboard's stream,
    ``tv2ib tail --kind``): the kinds of :data:`Event` but the notifier's alarms."""
    return _kinds(get_args(Event)) - _kinds(OUTBOX_ONLY)
