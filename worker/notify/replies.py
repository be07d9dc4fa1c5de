"""What the command bot answers: pure functions from service results (plain dicts) to HTML text."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.notice_text import fit
from worker.notify.wording import esc, num, signed


@dataclass(frozen=True)
class Command:
    """A bot command: its name (without the slash), what it does (menu and help), its arguments."""

    name: str
    summary: str
    args: str = ""


def help_text(commands: Sequence[Command]) -> str:
    """The /help answer, one line per command of ``commands`` (the bot's ``COMMANDS``)."""
    lines = ["<b>tv2ib</b> commands"]
    for command in commands:
        usage = f"/{command.name} {command.args}".rstrip()
        lines.append(f"{html.escape(usage, quote=False)} - {html.escape(command.summary, quote=False)}")
    return "\n".join(lines)


STATUS_ICONS = {
    "filled": "✅",
    "partially_filled": "◐",
    "submitted": "📨",
    "rejected": "🚫",
    "failed": "💥",
    "invalid": "❓",
    "duplicate": "♊",
    "cancelled": "✖️",
    "fanned_out": "🔀",  # a fan-out parent; its children (one per account) follow as their own lines
    "pending_approval": "✋",
}


def _time_of(iso: str | None) -> str:
    # "2026-11-22T07:30:33.123+00:00" -> "07:30:33"
    if not iso or "T" not in iso:
        return iso or "?"
    return iso.split("T", 1)[1][:8]


def status_text(doc: Mapping[str, Any], now: float | None = None) -> str:
    """/status: trading paused or not, Redis, each worker's IB connection, queue depth, last alert."""
    now = time.time() if now is None else now
    lines = ["<b>tv2ib status</b>"]
    lines.append("trading: ⏸ <b>paused</b> (/resume)" if doc.get("paused") else "trading: ▶️ running")
    lines.append("Redis: ok" if doc.get("redis", True) else "Redis: 🚨 <b>unreachable</b>")
    workers: Sequence[Mapping[str, Any]] = doc.get("workers") or []
    if not workers:
        lines.append("workers: 🚨 <b>none alive</b> (no heartbeat)")
    for worker in workers:
        ib = "IB connected ✅" if worker.get("ib_connected") else "IB 🚨 <b>disconnected</b>"
        if not worker.get("ib_connected") and worker.get("ib_detail"):
            ib += f" ({esc(str(worker['ib_detail'])[:120])})"
        if worker.get("ib_simulator"):  # the worker trades ibsim: nothing reaches Interactive Brokers
            ib += " 🧪 <b>SIMULATOR</b> (ibsim, not IB)"
        age = worker.get("age_seconds")
        if age is None and worker.get("ts") is not None:
            age = round(now - float(worker["ts"]), 1)
        lines.append(
            f"worker {esc(worker.get('account') or 'default')}/{esc(worker.get('client_id'))}: {ib}"
            f" (heartbeat {num(age)} s ago)"
        )
    queues: Mapping[str, int] = doc.get("queues") or {}
    if queues:
        depth = ", ".join(f"{esc(name)} {num(count)}" for name, count in sorted(queues.items()))
        lines.append(f"queued alerts: {depth}")
    else:
        lines.append("queued alerts: 0")
    if doc.get("notices_pending") is not None:
        lines.append(f"notices waiting: {num(doc['notices_pending'])}")
    last = doc.get("last_alert")
    if last:
        lines.append("last alert: " + _alert_line(last))
    return fit("\n".join(lines))


def _alert_line(alert: Mapping[str, Any]) -> str:
    status = str(alert.get("status") or "?")
    icon = STATUS_ICONS.get(status, "•")
    head = f"{_time_of(alert.get('received_at'))} {esc(alert.get('action') or '')} {esc(alert.get('ticker') or '?')}"
    text = f"{icon} {head.strip()} → <b>{esc(status)}</b>"
    if alert.get("strategy"):
        text += f" · {esc(alert['strategy'])}"
    if alert.get("parent_id"):  # a fan-out child: which account
        text += f" · account {esc(alert.get('account') or '?')}"
    if alert.get("reason") and status not in ("filled", "submitted"):
        reason = str(alert["reason"])
        text += f"\n    {esc(reason if len(reason) <= 200 else reason[:199] + '…')}"
    return text


def positions_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """/positions."""
    if not rows:
        return "No open positions."
    lines = ["<b>Open positions</b>"]
    for row in rows:
        symbol = row.get("local_symbol") or row.get("symbol") or "?"
        qty = row.get("quantity")
        lines.append(
            f"{esc(symbol)} ({esc(row.get('sec_type') or '?')}) <b>{signed(qty)}</b>"
            f" · avg cost {num(row.get('avg_cost'))} · {esc(row.get('account') or '')}"
        )
    return fit("\n".join(lines))


def orders_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """/orders (working orders)."""
    if not rows:
        return "No working orders."
    lines = ["<b>Working orders</b>"]
    for row in rows:
        price = row.get("limit_price") if row.get("limit_price") is not None else row.get("stop_price")
        at = f" @ {num(price)}" if price is not None else ""
        lines.append(
            f"{esc(row.get('leg') or '?')}: {esc(row.get('action') or '?')} {num(row.get('quantity'))}"
            f" {esc(row.get('symbol') or '?')} {esc(row.get('order_type') or '')}{at}"
            f" · {esc(row.get('status') or '?')} · <code>{esc(row.get('alert_id') or '')}</code>"
        )
    return fit("\n".join(lines))


def pnl_text(doc: Mapping[str, Any]) -> str:
    """/pnl."""
    return (
        f"<b>Today {esc(doc.get('date') or '')}</b> (UTC)\n"
        f"executions: {num(doc.get('fills'))}\n"
        f"realized PnL: <b>{signed(doc.get('realized_pnl'))}</b>\n"
        f"commissions: {num(doc.get('commissions'))}"
    )


def last_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """/last: newest alerts first with their outcome."""
    if not rows:
        return "No alerts yet."
    return fit("<b>Recent alerts</b>\n" + "\n".join(_alert_line(row) for row in rows))


def paused_text(paused: bool) -> str:
    if paused:
        return "⏸ <b>Trading paused.</b> No new orders are placed until /resume; working orders and positions stay."
    return "▶️ <b>Trading resumed.</b> New alerts are executed again."


def flatten_question(account: str | None, seconds: int) -> str:
    return (
        f"⚠️ <b>Flatten {esc(account or 'the default account')}?</b>\n"
        "This cancels every working order and closes every position at market.\n"
        f"Press <b>Confirm</b> or send <code>/flatten confirm</code> within {seconds} s."
    )


def flatten_done(doc: Mapping[str, Any]) -> str:
    return (
        f"🧹 <b>Flatten requested</b> for {esc(doc.get('account') or 'the default account')} "
        f"(job <code>{esc(doc.get('job_id') or '?')}</code>). Fills will be reported here."
    )


def approval_done(doc: Mapping[str, Any]) -> str:
    """The answer to an Approve / Reject press (core/approval.py ``decide``)."""
    alert = f"alert <code>{esc(doc.get('alert_id') or '?')}</code>"
    if doc.get("decision") == "approved":
        where = "queued" if doc.get("status") == "queued" else "waiting for Redis, then queued"
        return f"✅ <b>Approved</b> {alert}: {where}; the worker decides it now. Fills will be reported here."
    return f"❌ <b>Rejected</b> {alert}: nothing is sent."
