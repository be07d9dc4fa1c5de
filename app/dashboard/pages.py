"""The dashboard's pages: home (state, today's pictures, alert search, positions, orders), one
alert in full, one strategy, and the live event stream.

Routes of the dashboard blueprint (:mod:`app.dashboard.access`), so they pass its sign-in guard
and carry its security headers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, request, url_for
from markupsafe import Markup
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.analytics import (
    AlertQuery,
    day_bounds,
    latencies,
    pnl_curve,
    search_alerts,
    strategy_names,
    strategy_stats,
)
from app.dashboard.access import bp, page
from app.dashboard.charts import (
    SIGNAL_EDGES,
    SLIPPAGE_EDGES,
    bars,
    bps_label,
    bps_text,
    histogram,
    seconds_text,
    step_line,
)
from app.events import stream_response
from app.resources import get_ctx, resources
from core import performance, services
from core.models import AlertStatus
from core.services import AlertDoc, OrderDoc

log = logging.getLogger("app.dashboard")

PER_PAGE = 50
# The strategy page's curve starts this long ago (a strategy's whole recent history).
STRATEGY_HISTORY = timedelta(days=90)


def _when(raw: str | None) -> datetime | None:
    """A ``datetime-local`` or ISO value from the search form, taken as UTC; None if unreadable."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def alert_query(strategy: str | None = None) -> tuple[AlertQuery, list[str]]:
    """The search criteria in the request's query string, and a note per ignored value."""
    problems = []
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in AlertStatus}:
        problems.append(f"unknown status {status!r} ignored")
        status = None
    times = {}
    for name in ("since", "until"):
        raw = request.args.get(name) or None
        times[name] = _when(raw)
        if raw and times[name] is None:
            problems.append(f"{name}: {raw!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC); ignored")
    try:
        page = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page = 1
    query = AlertQuery(
        ticker=(request.args.get("ticker") or "").strip()[:64] or None,
        strategy=strategy if strategy is not None else (request.args.get("strategy") or None),
        status=status,
        since=times["since"],
        until=times["until"],
        page=page,
        per_page=PER_PAGE,
    )
    return query, problems


def search_context(strategy: str | None = None) -> dict[str, Any]:
    """Template values of the alerts list: the page of alerts, pagination links, the form."""
    ctx = get_ctx()
    query, problems = alert_query(strategy)
    alerts, total = search_alerts(ctx.sessions, query)
    pages = max(1, -(-total // PER_PAGE))
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    endpoint = request.endpoint or "dashboard.home"
    view_args = dict(request.view_args or {})

    def page_url(number: int) -> str:
        return url_for(endpoint, **view_args, **args, page=number)

    return {
        "alerts": alerts,
        "total": total,
        "page": query.page,
        "pages": pages,
        "prev_url": page_url(query.page - 1) if query.page > 1 else None,
        "next_url": page_url(query.page + 1) if query.page < pages else None,
        "search": query,
        "search_args": args,
        "search_problems": problems,
        "filtered": any(k in args for k in ("ticker", "strategy", "status", "since", "until")),
        "statuses": [s.value for s in AlertStatus],
        "strategies": strategy_names(ctx.sessions),
    }


def charts_context() -> dict[str, Any]:
    """The home page's pictures: today's PnL curve, PnL and win rate per strategy, latency."""
    ctx = get_ctx()
    start, end = day_bounds()
    stats = strategy_stats(ctx.sessions, since=start)
    return {
        "day": start.date().isoformat(),
        "stats": stats,
        "pnl_chart": step_line(pnl_curve(ctx.sessions, start, end), "Realized PnL today (net of fees)"),
        "strategy_chart": bars(
            [(s["strategy"], s["pnl"]) for s in stats if s["pnl"] or s["trades"]],
            "PnL per strategy today",
            empty="no fills today",
        ),
        "latency_chart": histogram(latencies(ctx.sessions, start, end), "Webhook to order on the wire today"),
    }


def _working_first(sessions: sessionmaker[Session]) -> list[OrderDoc]:
    # Every working order (however old) on top, then the newest others; each group newest first.
    working = services.list_orders(sessions, working_only=True, limit=500)
    refs = {o["order_ref"] for o in working}
    return working + [o for o in services.list_orders(sessions, limit=100) if o["order_ref"] not in refs]


@bp.get("/")
def home() -> Response:
    """State, today's pictures, alerts (with search and pages), positions, orders."""
    ctx = get_ctx()
    try:
        state = services.status(ctx.sessions, ctx.redis)
        pnl = services.pnl_today(ctx.sessions)
        found = search_context()
        pictures = charts_context()
        positions = services.list_positions(ctx.sessions)
        orders = _working_first(ctx.sessions)
    except (OperationalError, InterfaceError) as exc:
        log.warning("dashboard: database unreachable: %s", type(exc).__name__)
        return page("home.html", status=503, database_ok=False, refresh=True, statuses=list(AlertStatus))
    return page(
        "home.html",
        database_ok=True,
        live=True,
        state=state,
        pnl=pnl,
        **found,
        **pictures,
        positions=positions,
        orders=orders,
        working=services.WORKING_ORDER_STATUSES,
        webhook_url=request.host_url + "webhook",
    )


@bp.get("/alerts/<alert_id>")
def alert(alert_id: str) -> Response:
    """One alert in full: summary, raw body, payload, errors, plan, orders, fills, audit trail."""
    doc = services.get_alert(get_ctx().sessions, alert_id[:26])
    if doc is None:
        return page("not_found.html", status=404, alert_id=alert_id[:26])
    plan = doc.get("plan") or None
    extra_plan = {}
    if isinstance(plan, dict):
        shown = {
            "kind",
            "legs",
            "reference_price",
            "reference_source",
            "notes",
            "instrument",
            "contract",
            "option",
        }
        extra_plan = {k: v for k, v in plan.items() if k not in shown}
    return page(
        "alert.html", a=doc, plan=plan, extra_plan=extra_plan, live=True, timeline=alert_timeline(doc)
    )


@bp.get("/strategies/<path:name>")
def strategy(name: str) -> Response:
    """One strategy: its figures (alerts, trades, win rate, PnL), PnL curve, latency and alerts."""
    ctx = get_ctx()
    name = name[:128]
    now = datetime.now(UTC)
    stats = strategy_stats(ctx.sessions, strategy=name)
    figures = stats[0] if stats else None
    if figures is None:
        return page("strategy.html", status=404, name=name, figures=None)
    since = now - STRATEGY_HISTORY
    context = search_context(strategy=name)
    return page(
        "strategy.html",
        name=name,
        figures=figures,
        live=True,
        **execution_context(name, since),
        pnl_chart=step_line(
            pnl_curve(ctx.sessions, since, now + timedelta(minutes=1), strategy=name),
            f"Realized PnL of {name} (net of fees, last 90 days)",
        ),
        latency_chart=histogram(
            latencies(ctx.sessions, since, now + timedelta(minutes=1), strategy=name),
            f"Webhook to order on the wire, {name}",
        ),
        **context,
    )


def execution_context(name: str, since: datetime) -> dict[str, Any]:
    """The strategy page's execution figures: slippage against the alert's price (positive is a
    cost) and signal-to-fill latency, with a histogram of each (core/performance.py)."""
    filled = performance.filled_alerts(get_ctx().sessions, since, name)
    summary = performance.summarize(name, filled)
    costs = [a["execution"]["alert"] for a in filled if a["execution"]["alert"] is not None]
    bps = [c["slippage_bps"] for c in costs if c["slippage_bps"] is not None]
    signal = [
        t["signal_to_fill_seconds"]
        for t in (a["execution"]["latency"] for a in filled if a["execution"]["alert"] is not None)
        if t["signal_to_fill_seconds"] is not None
    ]
    return {
        "execution": summary,
        "slippage_chart": histogram(
            bps,
            f"Slippage against the alert price, {name} (bps, positive is a cost)",
            SLIPPAGE_EDGES,
            empty="no fill against an alert price yet",
            edge_label=bps_label,
            value_text=bps_text,
        ),
        "signal_chart": histogram(
            signal,
            f"Signal (alert time) to first fill, {name}",
            SIGNAL_EDGES,
            empty="no fill of an alert with a time yet",
            value_text=seconds_text,
        ),
    }


def alert_timeline(doc: AlertDoc) -> Markup:
    """Seconds from receipt to each step of the alert's audit trail, as bars."""
    received = _when(doc.get("received_at"))
    items = []
    for event in doc.get("events") or []:
        at = _when(event.get("at"))
        if received is not None and at is not None:
            items.append((str(event.get("status")), max(0.0, (at - received).total_seconds())))
    return bars(items, "Seconds from receipt to each step", empty="no steps recorded yet", unit=" s")


@bp.get("/events")
def event_stream() -> Response:
    """The live event stream for this signed-in browser (same stream as ``GET /api/events``)."""
    return stream_response(get_ctx(), resources().streams)
