"""What a notice says: pure functions from a typed event (``core/events/``) to a :class:`NoticeDraft`.

No I/O here (freqtrade's rpc/telegram split): the outbox stores drafts, the sender delivers them.
Texts are Telegram HTML: every value that comes from outside (symbols such as ``ES1!`` or
``BRK.B``, strategy names with ``<``, ``>`` or ``&``, IB's reasons) goes through :func:`esc`, and
:func:`fit` cuts a text to Telegram's 4096-character limit without splitting a tag or an entity.

Each composer takes the TypedDict of its kind and reads its keys as ``event["key"]``: a key the
event type does not promise is a type error, not a silent None (only ``NotRequired`` keys are read
with ``.get``). A new notice kind is its event type in ``core/events/`` (see the steps there) and
one function here::

    @composer("margin_call")
    def _margin_call(event: MarginCallEvent) -> NoticeDraft:
        return NoticeDraft("margin_call", f"⚠️ margin call: {esc(event['detail'])}", None)
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from core.events import (
    AlarmEvent,
    AlertRejectedEvent,
    DailyLossEvent,
    DailySummaryEvent,
    FillEvent,
    OrderRejectedEvent,
    OutageEvent,
    PositionDriftEvent,
    UnknownStrategyEvent,
    UnprotectedEvent,
    WorkerStoppedEvent,
)
from core.intake_notices import WEB_NOTICE_KINDS
from core.notice_text import ELLIPSIS, fit
from core.notices import MAX_DEDUP_KEY, NoticeDraft  # plain data: the outbox row's shape

# What the outbox hands in: a core.events.Event, or (from a caller with a bug) any mapping.
Event = Mapping[str, Any]

# Each composer takes its own event type; the registry dispatches on ``type``.
Composer = Callable[[Any], NoticeDraft | None]
COMPOSERS: dict[str, Composer] = {}

# Event types that are facts for the dashboard only; they make no notice.
IGNORED_TYPES = frozenset({"alert_status", "order_status"})

LEG_NAMES = {
    "entry": "entry",
    "tp": "take-profit",
    "sl": "stop-loss",
    "exit": "exit",
    "flatten": "flatten",
    "cancel": "cancel",
}
SIDE_NAMES = {"BOT": "BUY", "SLD": "SELL", "BUY": "BUY", "SELL": "SELL"}
# Contracts whose plain symbol is ambiguous (ES) while the local symbol is exact (ESZ6).
LOCAL_SYMBOL_TYPES = frozenset({"FUT", "FOP", "OPT", "CONTFUT", "WAR"})


def composer(kind: str) -> Callable[[Composer], Composer]:
    """Register ``func`` as the composer of events whose ``type`` is ``kind``."""

    def register(func: Composer) -> Composer:
        COMPOSERS[kind] = func
        return func

    return register


def known_kinds() -> frozenset[str]:
    """Every notice kind: those a composer exists for, and those the web writes itself
    (``core/intake_notices.py``, ``core/notices.py``). Used to warn about typos in ``NOTIFY``;
    ``docs/telegram.md`` lists the same set (a test holds them equal)."""
    return frozenset(COMPOSERS) | WEB_NOTICE_KINDS


def compose(event: Event) -> NoticeDraft | None:
    """The notice for ``event``, or None when its type makes none. May raise on malformed events;
    :func:`compose_safely` is the caller-facing version."""
    kind = str(event.get("type") or "")
    if kind in IGNORED_TYPES:
        return None
    draft = COMPOSERS.get(kind, _unknown)(event)
    if draft is None:
        return None
    explicit = event.get("dedup_key")
    key = str(explicit) if explicit else draft.dedup_key
    return NoticeDraft(draft.kind, fit(draft.text), _bounded_key(key), draft.silent)


def compose_safely(event: Event) -> NoticeDraft | None:
    """Like :func:`compose` but never raises: a malformed event still tells the trader something."""
    try:
        return compose(event)
    except Exception as exc:  # noqa: BLE001 - a formatting bug must never cost the fact's transaction
        kind = str(event.get("type") or "event") if isinstance(event, Mapping) else "event"
        body = _short(repr(dict(event)) if isinstance(event, Mapping) else repr(event), 1500)
        text = f"⚠️ <b>{esc(kind)}</b> (notice formatting failed: {esc(type(exc).__name__)})\n<code>{esc(body)}</code>"
        key = None
        if isinstance(event, Mapping):
            key = event.get("dedup_key") or _default_key(event)
        return NoticeDraft(kind[:32], fit(text), _bounded_key(key))


# --- helpers -----------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape any value for Telegram's HTML parse mode (``<``, ``>``, ``&``; quotes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any) -> str:
    """A number as a trader writes it: no float noise, no trailing zeros, no exponent."""
    if value is None or value == "":
        return "?"
    try:
        dec = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not dec.is_finite():
        return str(value)
    text = format(dec.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def signed(value: Any) -> str:
    """A PnL with its sign (``+125.5``, ``-30``)."""
    text = num(value)
    return text if text.startswith("-") or text in {"0", "?"} else f"+{text}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _bounded_key(key: str | None) -> str | None:
    """Dedup keys fit the column; a long key keeps a readable prefix and a hash of the whole."""
    if key is None:
        return None
    key = str(key)
    # Room for the ":<chat id>" suffix the outbox appends (chat ids are at most ~20 characters).
    room = MAX_DEDUP_KEY - 24
    if len(key) <= room:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"{key[: room - 25]}#{digest}"


def _fill_key(exec_id: str | None) -> str | None:
    return f"fill:{exec_id}" if exec_id else None


def _default_key(event: Event) -> str | None:
    """The dedup key of a malformed event (read defensively: its keys are unknown)."""
    return _fill_key(event.get("exec_id")) if event.get("type") == "fill" else None


def _symbol(symbol: str | None, local_symbol: str | None = None, sec_type: str | None = None) -> str:
    if local_symbol and ((sec_type or "").upper() in LOCAL_SYMBOL_TYPES or not symbol):
        return str(local_symbol)
    return str(symbol or "?")


def _origin(strategy: str | None, alert_id: str | None, order_ref: str | None) -> str:
    """'strategy X · alert Y' (either may be missing: a manual order in TWS has neither)."""
    parts = []
    if strategy:
        parts.append(f"strategy <b>{esc(_short(str(strategy), 200))}</b>")
    if alert_id:
        parts.append(f"alert <code>{esc(alert_id)}</code>")
    elif order_ref:
        parts.append(f"ref <code>{esc(_short(str(order_ref), 100))}</code>")
    return " · ".join(parts)


def _leg(leg: str | None) -> str:
    return LEG_NAMES.get(leg or "", leg or "order")


# --- composers ---------------------------------------------------------------------------------


CLOSING_LEGS = frozenset({"tp", "sl", "exit", "flatten"})


def _realized(event: FillEvent) -> Decimal | None:
    """The realized PnL worth showing: IB reports 0 (or an unset huge double) for a fill that opens
    a position; a closing leg shows even a breakeven 0."""
    raw: Any = event["realized_pnl"]
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value) >= Decimal("1e300"):
        return None
    if value == 0 and str(event["leg"] or "") not in CLOSING_LEGS:
        return None
    return value


@composer("fill")
def _fill(event: FillEvent) -> NoticeDraft:
    side = SIDE_NAMES.get(str(event["side"] or "").upper(), str(event["side"] or "?"))
    icon = "🟢" if side == "BUY" else "🔴" if side == "SELL" else "⚪"
    symbol = esc(_symbol(event["symbol"], event["local_symbol"], event["sec_type"]))
    lines = [
        f"{icon} <b>{side} {num(event['quantity'])} {symbol} @ {num(event['price'])}</b> · {esc(_leg(event['leg']))}"
    ]
    cum, total = event["cum_quantity"], event["order_quantity"]
    if cum is not None and total is not None:
        try:
            final = Decimal(str(cum)) >= Decimal(str(total))
        except (InvalidOperation, ValueError):
            final = True
        word = "filled" if final else "partial fill"
        lines.append(f"{word} {num(cum)}/{num(total)}")
    origin = _origin(event["strategy"], event["alert_id"], event["order_ref"])
    if origin:
        lines.append(origin)
    money = []
    if event["commission"] is not None:
        currency = event["commission_currency"]
        money.append(f"commission {num(event['commission'])}{' ' + esc(currency) if currency else ''}")
    if _realized(event) is not None:
        money.append(f"realized PnL <b>{signed(event['realized_pnl'])}</b>")
    if money:
        lines.append(" · ".join(money))
    if event["account"]:
        lines.append(f"account {esc(event['account'])}")
    return NoticeDraft("fill", "\n".join(lines), _fill_key(event["exec_id"]))


# Legs whose rejection is the alert's rejection (a refused take-profit or stop-loss is its own news).
ALERT_LEGS = frozenset({"entry", "exit"})


def _rejection_key(alert_id: str | None) -> str:
    return f"rejected:{alert_id}"


@composer("order_rejected")
def _order_rejected(event: OrderRejectedEvent) -> NoticeDraft:
    code = event["error_code"]
    head = f"⛔ <b>Order rejected</b> · {esc(_symbol(event['symbol']))} {esc(_leg(event['leg']))}"
    lines = [
        head,
        f"IB{' ' + esc(code) if code not in (None, '') else ''}: {esc(_short(str(event['reason'] or 'no reason given'), 1500))}",
    ]
    origin = _origin(event["strategy"], event["alert_id"], event["order_ref"])
    if origin:
        lines.append(origin)
    if event.get("account"):  # a fan-out child: which of its accounts
        lines.append(f"account {esc(event.get('account'))}")
    ref = event["order_ref"] or f"{event['alert_id']}:{event['leg']}"
    key = f"order_rejected:{ref}:{code}"
    if event["alert_id"] and str(event["leg"] or "entry") in ALERT_LEGS:
        # The alert's own order refused: the worker also reports the alert as rejected. Both share
        # one key, so the trader gets one notice (whichever the worker records first).
        key = _rejection_key(event["alert_id"])
    return NoticeDraft("order_rejected", "\n".join(lines), key)


@composer("alert_rejected")
def _alert_rejected(event: AlertRejectedEvent) -> NoticeDraft:
    status = str(event["status"] or "rejected")
    word = "failed" if status == "failed" else "refused"
    action = esc(event["action"] or "")
    ticker = esc(event["ticker"] or "?")
    lines = [
        f"🚫 <b>Alert {word}</b> · {action + ' ' if action else ''}{ticker}",
        esc(_short(str(event["reason"] or "no reason given"), 1500)),
    ]
    origin = _origin(event["strategy"], event["alert_id"], None)
    if origin:
        lines.append(origin)
    if event.get("account"):  # a fan-out child: which of its accounts
        lines.append(f"account {esc(event.get('account'))}")
    return NoticeDraft("alert_rejected", "\n".join(lines), _rejection_key(event["alert_id"]))


def _duration(seconds: Any) -> str:
    try:
        total = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "?"
    if total < 120:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def _where(event: Mapping[str, Any]) -> str:
    # account and client_id: the notifier adds them to every alarm it raises (NotRequired keys).
    account = event.get("account")
    client_id = event.get("client_id")
    parts = []
    if account:
        parts.append(f"account {esc(account)}")
    if client_id is not None:
        parts.append(f"client id {esc(client_id)}")
    return " · ".join(parts)


def _alarm_text(
    icon: str, title: str, event: OutageEvent | WorkerStoppedEvent | AlarmEvent, *extra: str
) -> str:
    lines = [f"{icon} <b>{title}</b>"]
    lines.extend(line for line in extra if line)
    detail = event.get("detail")
    if detail:
        lines.append(esc(_short(str(detail), 1500)))
    where = _where(event)
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
    text = _alarm_text(icon, title, event, how_long.format(down=_duration(event["down_seconds"])))
    return NoticeDraft(kind, text, f"{kind}:{event.get('account')}:{event['since']}")


for _kind in OUTAGE_TEXTS:
    composer(_kind)(_outage)


@composer("worker_stopped")
def _worker_stopped(event: WorkerStoppedEvent) -> NoticeDraft:
    reason = esc(_short(str(event["reason"] or "no reason given"), 1500))
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
            name = esc(_short(str(row["strategy"] or "manual / unknown"), 60))
            lines.append(
                f"  {name}: {signed(row['realized_pnl'])} · {num(row['fills'])} exec · fees {num(row['commissions'])}"
            )
    return NoticeDraft("daily_summary", "\n".join(lines), f"daily_summary:{event['date']}")


@composer("unprotected")
def _unprotected(event: UnprotectedEvent) -> NoticeDraft:
    """The guard could not put a position's take-profit / stop-loss back (it tried once)."""
    missing = ", ".join(LEG_NAMES.get(role, role) for role in event["missing"]) or "exits"
    lines = [
        f"🚨 <b>Position unprotected</b> · {esc(_symbol(event['symbol']))} {esc(event['position_text'])}",
        f"missing: {esc(missing)}",
        esc(_short(event["detail"], 1500)),
        esc(event["action_taken"]),
    ]
    origin = _origin(None, event["alert_id"], None)
    if origin:
        lines.append(origin)
    if event["account"]:
        lines.append(f"account {esc(event['account'])}")
    key = f"unprotected:{event['account']}:{event['con_id']}:{event['alert_id']}:{event['raised_at']}"
    return NoticeDraft("unprotected", "\n".join(lines), key)


@composer("position_drift")
def _position_drift(event: PositionDriftEvent) -> NoticeDraft:
    """IB's position is not the one the strategy believed it had before this alert."""
    lines = [
        f"⚠️ <b>Position drift</b> · {esc(_symbol(event['symbol']))}",
        f"strategy expected {esc(event['expected'])}, IB has <b>{esc(event['actual'])}</b>",
        esc(_short(event["detail"], 1500)),
    ]
    origin = _origin(event["strategy"], event["alert_id"], None)
    if origin:
        lines.append(origin)
    if event["account"]:
        lines.append(f"account {esc(event['account'])}")
    return NoticeDraft("position_drift", "\n".join(lines), f"position_drift:{event['alert_id']}")


@composer("daily_loss")
def _daily_loss(event: DailyLossEvent) -> NoticeDraft:
    """The account's daily loss limit was reached: entries halted until the day ends (risk file)."""
    unrealized = event["unrealized"]
    lines = [
        f"🚨 <b>Daily loss limit reached</b> · today's PnL <b>{signed(event['pnl'])}</b>",
        f"realized {signed(event['realized'])} + unrealized {signed(unrealized) if unrealized is not None else '?'}; "
        f"limit {num(event['limit'])} ({esc(event['source'])})",
        esc(_short(event["action"], 1500)),
        f"new entries refused until {esc(event['until'])}; exits still go out",
    ]
    if event["account"]:
        lines.append(f"account {esc(event['account'])}")
    return NoticeDraft("daily_loss", "\n".join(lines), f"daily_loss:{event['account']}:{event['day']}")


@composer("unknown_strategy")
def _unknown_strategy(event: UnknownStrategyEvent) -> NoticeDraft:
    """A warning, not an alarm: the alert went on with the defaults' and the account's limits only
    (``NOTIFY=unknown_strategy=off`` silences it)."""
    known = ", ".join(esc(_short(name, 60)) for name in event["known"]) or "none"
    lines = [
        f"⚠️ <b>Strategy not in the risk file</b> · {esc(_short(event['strategy'], 128))}",
        f"checked against the defaults and the account's limits only; {esc(event['risk_file'])} has: {known}",
        f"alert <code>{esc(event['alert_id'])}</code>",
    ]
    if event["account"]:
        lines.append(f"account {esc(event['account'])}")
    return NoticeDraft("unknown_strategy", "\n".join(lines), f"unknown_strategy:{event['alert_id']}")


@composer("alarm")
def _alarm(event: AlarmEvent) -> NoticeDraft:
    """A generic alarm: {"type": "alarm", "title", "detail"?, "dedup_key"?} (risk rules and the like)."""
    title = esc(_short(str(event["title"] or "Alarm"), 200))
    return NoticeDraft("alarm", _alarm_text("⚠️", title, event), None)


def _unknown(event: Mapping[str, Any]) -> NoticeDraft:
    """An event type nobody wrote a composer for: say so rather than lose it."""
    kind = str(event.get("type") or "event")
    fields = ", ".join(f"{esc(k)}={esc(_short(str(v), 200))}" for k, v in event.items() if k != "type")
    return NoticeDraft(_short(kind, 32), f"ℹ️ <b>{esc(kind)}</b>\n{fields}", None)
