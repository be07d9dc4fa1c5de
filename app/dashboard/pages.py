"""Dashboard pictures, alert search, the strategy page and the live event stream.

Registered on the dashboard blueprint (imported at the end of :mod:`app.dashboard`), so they
share its sign-in guard and security headers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, request, url_for
from markupsafe import Markup

from app import analytics, events
from app.dashboard import _ctx, _page, bp, charts
from core.models import AlertStatus

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


def alert_query(strategy: str | None = None) -> tuple[analytics.AlertQuery, list[str]]:
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
    query = analytics.AlertQuery(
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
    ctx = _ctx()
    query, problems = alert_query(strategy)
    alerts, total = analytics.search_alerts(ctx.sessions, query)
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
        "strategies": analytics.strategy_names(ctx.sessions),
    }


def charts_context() -> dict[str, Any]:
    """The home page's pictures: today's PnL curve, PnL and win rate per strategy, latency."""
    ctx = _ctx()
    start, end = analytics.day_bounds()
    stats = analytics.strategy_stats(ctx.sessions, since=start)
    return {
        "day": start.date().isoformat(),
        "stats": stats,
        "pnl_chart": charts.step_line(
            analytics.pnl_curve(ctx.sessions, start, end), "Realized PnL today (net of fees)"
        ),
        "strategy_chart": charts.bars(
            [(s["strategy"], s["pnl"]) for s in stats if s["pnl"] or s["trades"]],
            "PnL per strategy today",
            empty="no fills today",
        ),
        "latency_chart": charts.histogram(
            analytics.latencies(ctx.sessions, start, end), "Webhook to order on the wire today"
        ),
    }


@bp.get("/strategies/<path:name>")
def strategy(name: str) -> Response:
    """One strategy: its figures (alerts, trades, win rate, PnL), PnL curve, latency and alerts."""
    ctx = _ctx()
    name = name[:128]
    now = datetime.now(UTC)
    stats = analytics.strategy_stats(ctx.sessions, strategy=name)
    figures = stats[0] if stats else None
    if figures is None:
        return _page("strategy.html", status=404, name=name, figures=None)
    since = now - STRATEGY_HISTORY
    context = search_context(strategy=name)
    return _page(
        "strategy.html",
        name=name,
        figures=figures,
        live=True,
        pnl_chart=charts.step_line(
            analytics.pnl_curve(ctx.sessions, since, now + timedelta(minutes=1), strategy=name),
            f"Realized PnL of {name} (net of fees, last 90 days)",
        ),
        latency_chart=charts.histogram(
            analytics.latencies(ctx.sessions, since, now + timedelta(minutes=1), strategy=name),
            f"Webhook to order on the wire, {name}",
        ),
        **context,
    )


def alert_timeline(doc: dict[str, Any]) -> Markup:
    """Seconds from receipt to each step of the alert's audit trail, as bars."""
    received = _when(doc.get("received_at"))
    items = []
    for event in doc.get("events") or []:
        at = _when(event.get("at"))
        if received is not None and at is not None:
            items.append((str(event.get("status")), max(0.0, (at - received).total_seconds())))
    return charts.bars(items, "Seconds from receipt to each step", empty="no steps recorded yet", unit=" s")


@bp.get("/events")
def event_stream() -> Response:
    """The live event stream for this signed-in browser (same stream as ``GET /api/events``)."""
    return events.stream_response()
