"""The notices of the notifier's alarms (a connection lost and back, the worker stopping, the daily
summary, a generic alarm) and of the safety nets' warnings (a position unprotected or drifted, the
daily loss limit, a protection locking and unlocking entries, a strategy the risk file does not
know), and the session-end flatten."""

from __future__ import annotations

import hashlib

from core.events import (
    AlarmEvent,
    DailyLossEvent,
    DailySummaryEvent,
    OutageEvent,
    PositionDriftEvent,
    ProtectionEvent,
    SessionFlattenEvent,
    UnknownStrategyEvent,
    UnprotectedEvent,
    WorkerStoppedEvent,
)
from core.notices import NoticeDraft
from worker.notify.registry import composer
from worker.notify.wording import (
    LEG_NAMES,
    duration_text,
    esc,
    num,
    origin_text,
    shorten,
    signed,
    symbol_text,
    where_text,
    with_account,
)


def _alarm_text(
    icon: str, title: str, event: OutageEvent | WorkerStoppedEvent | AlarmEvent, *extra: str
) -> str:
    lines = [f"{icon} <b>{title}</b>"]
    lines.extend(line for line in extra if line)
    detail = event.get("detail")
    if detail:
        lines.append(esc(shorten(str(detail), 1500)))
    where = where_text(event)
    if where:
        lines.append(where)
    return "\n".join(lines)


# The four outage notices: (icon, title, how long it was down).
OUTAGE_TEXTS: dict[str, tuple[str, str, str]] = {
    "ib_lost": ("🚨", "IB connection lost", "down for {down} and counting"),
    "ib_restored": ("✅", "IB connection restored", "after {down}"),
    "redis_lost": ("🚨", "Redis unreachable", "for {down}; new alerts wait in the database until it returns"),
    "redis_restored": ("✅", "Redis reachable again", "after {down}"),
}


def _outage(event: OutageEvent) -> NoticeDraft:
    kind = event["type"]
    icon, title, how_long = OUTAGE_TEXTS[kind]
    repeat = event.get("repeat")
    if repeat:  # IB_ALARM_REPEAT_SECONDS: the same outage, still going on
        title = f"{title.replace(' lost', ' still lost')} (alarm {repeat})"
    missed = esc(str(event.get("missed") or ""))
    text = _alarm_text(icon, title, event, how_long.format(down=duration_text(event["down_seconds"])), missed)
    key = f"{kind}:{event.get('account')}:{event['since']}" + (f":{repeat}" if repeat else "")
    return NoticeDraft(kind, text, key)


for _kind in OUTAGE_TEXTS:
    composer(_kind)(_outage)


@composer("worker_stopped")
def _worker_stopped(event: WorkerStoppedEvent) -> NoticeDraft:
    reason = esc(shorten(str(event["reason"] or "no reason given"), 1500))
    text = _alarm_text("🛑", "Worker stopping", event, f"reason: {reason}")
    key = f"worker_stopped:{event.get('account')}:{event.get('client_id')}:{event['pid']}:{event['at']}"
    return NoticeDraft("worker_stopped", text, key)


@composer("daily_summary")
def _daily_summary(event: DailySummaryEvent) -> NoticeDraft:
    lines = [
        f"📊 <b>Daily summary {esc(event['date'] or '')}</b> (UTC)",
        f"trades (executions): {num(event['fills'])}",
        f"realized PnL: <b>{signed(event['realized_pnl'])}</b>",
        f"fees: {num(event['commissions'])}",
    ]
    if event.get("positions") is not None:
        lines.append(f"open positions: {num(event.get('positions'))}")
    strategies = event.get("strategies") or []
    if len(strategies) > 1 or (strategies and strategies[0]["strategy"]):
        lines.append("<b>by strategy</b>")
        for row in strategies:
            name = esc(shorten(str(row["strategy"] or "manual / unknown"), 60))
            lines.append(
                f"  {name}: {signed(row['realized_pnl'])} · {num(row['fills'])} exec · fees {num(row['commissions'])}"
            )
    return NoticeDraft("daily_summary", "\n".join(lines), f"daily_summary:{event['date']}")


@composer("unprotected")
def _unprotected(event: UnprotectedEvent) -> NoticeDraft:
    """The guard could not put a position's take-profit / stop-loss back (it tried once)."""
    missing = ", ".join(LEG_NAMES.get(role, role) for role in event["missing"]) or "exits"
    lines = [
        f"🚨 <b>Position unprotected</b> · {esc(symbol_text(event['symbol']))} {esc(event['position_text'])}",
        f"missing: {esc(missing)}",
        esc(shorten(event["detail"], 1500)),
        esc(event["action_taken"]),
    ]
    origin = origin_text(None, event["alert_id"], None)
    if origin:
        lines.append(origin)
    key = f"unprotected:{event['account']}:{event['con_id']}:{event['alert_id']}:{event['raised_at']}"
    return NoticeDraft("unprotected", with_account(lines, event.get("account")), key)


@composer("position_drift")
def _position_drift(event: PositionDriftEvent) -> NoticeDraft:
    """IB's position is not the one the strategy believed it had before this alert."""
    lines = [
        f"⚠️ <b>Position drift</b> · {esc(symbol_text(event['symbol']))}",
        f"strategy expected {esc(event['expected'])}, IB has <b>{esc(event['actual'])}</b>",
        esc(shorten(event["detail"], 1500)),
    ]
    origin = origin_text(event["strategy"], event["alert_id"], None)
    if origin:
        lines.append(origin)
    return NoticeDraft(
        "position_drift", with_account(lines, event.get("account")), f"position_drift:{event['alert_id']}"
    )


@composer("daily_loss")
def _daily_loss(event: DailyLossEvent) -> NoticeDraft:
    """The account's daily loss limit was reached: entries halted until the day ends (risk file)."""
    unrealized = event["unrealized"]
    lines = [
        f"🚨 <b>Daily loss limit reached</b> · today's PnL <b>{signed(event['pnl'])}</b>",
        f"realized {signed(event['realized'])} + unrealized {signed(unrealized) if unrealized is not None else '?'}; "
        f"limit {num(event['limit'])} ({esc(event['source'])})",
        esc(shorten(event["action"], 1500)),
        f"new entries refused until {esc(event['until'])}; exits still go out",
    ]
    return NoticeDraft(
        "daily_loss",
        with_account(lines, event.get("account")),
        f"daily_loss:{event['account']}:{event['day']}",
    )


@composer("session_flatten")
def _session_flatten(event: SessionFlattenEvent) -> NoticeDraft:
    """``flatten_before_close``: what was closed before the session's end (and what could not be)."""
    closed = event["closed"]
    done = [c for c in closed if c["result"] == "filled"]
    count = f"{len(done)} of {len(closed)}" if len(done) != len(closed) else str(len(closed))
    lines = [f"🔔 <b>Session-end flatten</b> · {count} position{'' if len(closed) == 1 else 's'} closed"]
    for c in closed[:20]:
        ok = c in done
        head = f"<b>{esc(c['action'])} {num(c['quantity'])} {esc(symbol_text(c['symbol']))}</b>"
        outcome = "" if c["result"] == "filled" else f": {esc(shorten(c['result'], 300))}"
        lines.append(f"{'•' if ok else '⚠️ NOT closed:'} {head} (was {esc(c['position'])}){outcome}")
        lines.append(f"  {esc(c['when'])}; flatten_before_close ({esc(c['source'])})")
        origin = origin_text(c["strategy"], c["alert_id"], None)
        if origin:
            lines.append(f"  {origin}")
    if len(closed) > 20:
        lines.append(f"(and {len(closed) - 20} more)")
    lines.append("new entries of these strategies are refused until the close; exits still go out")
    # each close once: the order refs (a restart at the minute sends no order, so no notice)
    refs = ",".join(sorted(c["order_ref"] or f"{c['con_id']}@{c['when']}" for c in closed))
    key = f"session_flatten:{event['account'][:40]}:{hashlib.sha256(refs.encode()).hexdigest()[:32]}"
    return NoticeDraft("session_flatten", with_account(lines, event.get("account")), key)


@composer("protection")
def _protection(event: ProtectionEvent) -> NoticeDraft:
    """A protection of the risk file locked a strategy's entries (on a ticker, or all), or unlocked them."""
    strategy = esc(shorten(event["strategy"], 128)) if event["strategy"] else "alerts without a strategy"
    title = f"{esc(symbol_text(event['symbol']))} · {strategy}" if event["symbol"] else strategy
    if event["state"] == "locked":
        lines = [
            f"🔒 <b>Entries locked</b> · {title}",
            f"{esc(event['label'])} ({esc(event['source'])}): {esc(event['why'])}",
            f"no new entry {esc(event['what'])} until {esc(event['until_text'])}; exits still go out",
        ]
    else:
        lines = [
            f"🔓 <b>Entries unlocked</b> · {title}",
            f"{esc(event['label'])} ({esc(event['source'])}): {esc(event['detail'] or 'its time is up')}",
        ]
    lock = "|".join(
        (event["account"], event["rule"], event["strategy"].casefold(), event["symbol"], event["since"])
    )
    key = f"protection:{event['state']}:{hashlib.sha256(lock.encode()).hexdigest()[:24]}"  # once per lock and state
    return NoticeDraft("protection", with_account(lines, event.get("account")), key)


@composer("unknown_strategy")
def _unknown_strategy(event: UnknownStrategyEvent) -> NoticeDraft:
    """A warning, not an alarm: the alert went on with the defaults' and the account's limits only
    (``NOTIFY=unknown_strategy=off`` silences it)."""
    known = ", ".join(esc(shorten(name, 60)) for name in event["known"]) or "none"
    lines = [
        f"⚠️ <b>Strategy not in the risk file</b> · {esc(shorten(event['strategy'], 128))}",
        f"checked against the defaults and the account's limits only; {esc(event['risk_file'])} has: {known}",
        f"alert <code>{esc(event['alert_id'])}</code>",
    ]
    return NoticeDraft(
        "unknown_strategy", with_account(lines, event.get("account")), f"unknown_strategy:{event['alert_id']}"
    )


@composer("alarm")
def _alarm(event: AlarmEvent) -> NoticeDraft:
    """A generic alarm: {"type": "alarm", "title", "detail"?, "dedup_key"?} (risk rules and the like)."""
    title = esc(shorten(str(event["title"] or "Alarm"), 200))
    return NoticeDraft("alarm", _alarm_text("⚠️", title, event), None)
