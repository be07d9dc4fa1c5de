"""The notifier's alarms: a connection lost and restored, the worker stopping, the daily summary,
a generic alarm. Written to the notice outbox only, never published on the events channel."""

from typing import Literal, NotRequired, TypedDict


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
    # the how-many-th alarm of this outage, from the second on (IB_ALARM_REPEAT_SECONDS)
    repeat: NotRequired[int]
    # the "restored" notice: what the outage cost (alerts that went stale meanwhile)
    missed: NotRequired[str]


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
