"""Rich tables and one-line summaries of the admin API's documents (pure: document in, renderable out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from cli.render_execution import execution_table

if TYPE_CHECKING:
    from core.services import AlertDoc, ChildDoc, FillDoc, OrderDoc, PositionDoc, StatusDoc

STATUS_STYLE = {
    "filled": "green",
    "submitted": "cyan",
    "partially_filled": "cyan",
    "working": "cyan",
    "queued": "yellow",
    "received": "yellow",
    "processing": "yellow",
    "pending_approval": "cyan",  # waits for the trader (core/approval.py)
    "rejected": "red",
    "invalid": "red",
    "failed": "red",
    "cancelled": "magenta",
    "duplicate": "dim",
    "fanned_out": "dim",
}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".")
    return str(value)


def status_text(status: str | None) -> Text:
    return Text(status or "", style=STATUS_STYLE.get(status or "", ""))


def _time(value: str | None) -> str:
    return (value or "").replace("T", " ")[:19]


def alerts_table(alerts: list[AlertDoc]) -> Table:
    table = Table(title=f"Alerts ({len(alerts)})", title_justify="left")
    for column in ("id", "received (UTC)", "ticker", "action", "strategy", "status", "reason"):
        table.add_column(column, overflow="fold")
    for a in alerts:
        table.add_row(a.get("id"), _time(a.get("received_at")), a.get("ticker"), a.get("action"),
                      a.get("strategy") or "", status_text(a.get("status")), a.get("reason") or "")  # fmt: skip
    return table


def orders_table(orders: list[OrderDoc], title: str = "Orders") -> Table:
    table = Table(title=f"{title} ({len(orders)})", title_justify="left")
    for column in (
        "ib id",
        "alert",
        "leg",
        "symbol",
        "side",
        "type",
        "qty",
        "limit",
        "stop",
        "status",
        "filled",
        "avg",
    ):
        table.add_column(column, overflow="fold")
    for o in orders:
        table.add_row(_fmt(o.get("ib_order_id")), _fmt(o.get("alert_id")), _fmt(o.get("leg")), _fmt(o.get("symbol")),
                      _fmt(o.get("action")), _fmt(o.get("order_type")), _fmt(o.get("quantity")),
                      _fmt(o.get("limit_price")), _fmt(o.get("stop_price")), _fmt(o.get("status")),
                      _fmt(o.get("filled_quantity")), _fmt(o.get("avg_fill_price")))  # fmt: skip
    return table


def fills_table(fills: list[FillDoc]) -> Table:
    table = Table(title=f"Fills ({len(fills)})", title_justify="left")
    for column in ("time (UTC)", "leg", "side", "qty", "price", "commission", "realized PnL"):
        table.add_column(column)
    for f in fills:
        table.add_row(_time(f.get("time")), _fmt(f.get("leg")), _fmt(f.get("side")), _fmt(f.get("quantity")),
                      _fmt(f.get("price")), _fmt(f.get("commission")), _fmt(f.get("realized_pnl")))  # fmt: skip
    return table


def positions_table(positions: list[PositionDoc]) -> Table:
    table = Table(title=f"Positions ({len(positions)})", title_justify="left")
    for column in ("account", "symbol", "type", "qty", "avg cost", "updated (UTC)"):
        table.add_column(column)
    for p in positions:
        table.add_row(_fmt(p.get("account")), _fmt(p.get("local_symbol") or p.get("symbol")), _fmt(p.get("sec_type")),
                      _fmt(p.get("quantity")), _fmt(p.get("avg_cost")), _time(p.get("updated_at")))  # fmt: skip
    return table


def children_table(children: list[ChildDoc]) -> Table:
    """A fan-out parent's child alerts, one per account (``tv2ib alert <child id>`` for one)."""
    table = Table(title=f"Children ({len(children)})", title_justify="left")
    for column in ("account", "alert", "status", "reason"):
        table.add_column(column, overflow="fold")
    for c in children:
        table.add_row(
            c.get("account") or "", c.get("id") or "", status_text(c.get("status")), c.get("reason") or ""
        )
    return table


def alert_detail(alert: AlertDoc) -> list[Table]:
    """Header table, orders, fills and the audit trail of one alert."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("alert", alert.get("id") or "")
    head.add_row("status", status_text(alert.get("status")))
    if alert.get("reason"):
        head.add_row("reason", alert["reason"])
    head.add_row("received", _time(alert.get("received_at")))
    head.add_row("signal", " ".join(str(alert.get(k) or "") for k in ("ticker", "action")).strip())
    for key in ("strategy", "account", "parent_id", "duplicate_of"):
        if alert.get(key):
            head.add_row(key, str(alert[key]))
    for field, errors in (alert.get("errors") or {}).items():
        head.add_row(
            Text(f"error {field}", style="red"),
            "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors),
        )
    parts = [head]
    if alert.get("children"):
        parts.append(children_table(alert["children"]))
    if alert.get("orders"):
        parts.append(orders_table(alert["orders"]))
    if alert.get("fills"):
        parts.append(fills_table(alert["fills"]))
    if alert.get("execution"):
        parts.append(execution_table(alert["execution"]))
    if alert.get("events"):
        trail = Table(title="Audit trail", title_justify="left")
        for column in ("at (UTC)", "status", "message"):
            trail.add_column(column, overflow="fold")
        for e in alert["events"]:
            trail.add_row(_time(e.get("at")), status_text(e.get("status")), e.get("message") or "")
        parts.append(trail)
    return parts


def status_panel(doc: StatusDoc) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(
        "trading",
        Text("PAUSED (no new entries)", style="bold red")
        if doc.get("paused")
        else Text("active", style="green"),
    )
    grid.add_row("redis", Text("ok", style="green") if doc.get("redis") else Text("DOWN", style="bold red"))
    workers = doc.get("workers") or []
    if not workers:
        grid.add_row("workers", Text("none alive", style="bold red"))
    for w in workers:
        ib = (
            Text("IB connected", style="green")
            if w.get("ib_connected")
            else Text("IB DISCONNECTED", style="bold red")
        )
        line = Text(f"{w.get('account') or 'default'} client {w.get('client_id')} pid {w.get('pid')} "
                    f"(heartbeat {w.get('age_seconds')} s ago) ")  # fmt: skip
        if w.get("ib_simulator"):  # the worker trades ibsim: nothing reaches Interactive Brokers
            ib += Text(" SIMULATOR (ibsim, not IB)", style="bold yellow")
        grid.add_row("worker", line + ib)
    for queue, depth in (doc.get("queues") or {}).items():
        grid.add_row("queue", f"{queue}: {depth} waiting")
    last = doc.get("last_alert")
    if last:
        grid.add_row(
            "last alert",
            Text(f"{last.get('id')} {last.get('ticker')} {last.get('action')} ")
            + status_text(last.get("status")),
        )
    for lock in doc.get("locks") or []:  # the risk file's protections (docs/risk.md)
        what = lock.get("symbol") or "every ticker"
        grid.add_row("locked", Text(f"{lock.get('strategy') or '(no strategy)'} {what} until {lock.get('until')} "
                                    f"({lock.get('rule')}: {lock.get('why')})", style="yellow"))  # fmt: skip
    pnl = doc.get("pnl_today")
    if pnl:
        grid.add_row("today", f"{pnl.get('fills', 0)} fills, realized PnL {_fmt(pnl.get('realized_pnl'))}, "
                              f"commissions {_fmt(pnl.get('commissions'))}")  # fmt: skip
    return grid


def alert_line(alert: AlertDoc) -> Text:
    """The live status line of ``tv2ib send``: status, reason, orders and fills so far."""
    line = Text(f"{alert.get('id')} ") + status_text(alert.get("status"))
    if alert.get("reason"):
        line += Text(f" - {alert['reason']}")
    orders = alert.get("orders") or []
    if orders:
        legs = ", ".join(f"{o.get('leg')} {o.get('status')}" for o in orders)
        line += Text(f"  orders: {legs}", style="dim")
    fills = alert.get("fills") or []
    if fills:
        done = ", ".join(f"{_fmt(f.get('quantity'))} @ {_fmt(f.get('price'))}" for f in fills)
        line += Text(f"  fills: {done}", style="green")
    return line
