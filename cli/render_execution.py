"""Rich tables of slippage and latency (``tv2ib performance`` and the alert view): pure, document
in, renderable out. Slippage is signed so that positive is a cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from core.performance import AlertPerformance, StrategyPerformance
    from core.slippage import ExecutionDoc


def _num(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _cost(value: Any, fmt: str, suffix: str = "") -> Text:
    """A slippage figure: red when it cost money, green when it saved some."""
    if value is None:
        return Text("")
    style = "red" if value > 0 else "green" if value < 0 else ""
    return Text(format(value, fmt) + suffix, style=style)


def execution_table(execution: ExecutionDoc) -> Table:
    """One alert's fills against their reference prices, then its latency in the caption."""
    currency = execution.get("currency") or "money"
    table = Table(title="Slippage (positive is a cost)", title_justify="left")
    for column in ("fills of", "side", "qty", "avg price", "reference", "from", "per unit", currency, "bps"):
        table.add_column(column, overflow="fold")
    rows = ([execution["alert"]] if execution.get("alert") else []) + list(execution.get("exits") or [])
    for c in rows:
        if c["slippage"] is None:
            tail: list[Any] = [Text(c.get("note") or "", style="dim"), "", ""]
        else:
            tail = [
                _cost(c["slippage_per_unit"], "+g"),
                _cost(c["slippage"], "+,.2f"),
                _cost(c["slippage_bps"], "+.1f"),
            ]
        table.add_row(" + ".join(c["legs"]), c["side"], _num(c["quantity"], "g"), _num(c["avg_price"], "g"),
                      _num(c["reference_price"], "g"), c.get("reference_source") or "", *tail)  # fmt: skip
    latency = execution["latency"]
    parts = [
        f"signal -> first fill {_num(latency['signal_to_fill_seconds'], '.2f') or '-'} s",
        f"arrival -> first fill {_num(latency['arrival_to_fill_seconds'], '.2f') or '-'} s",
    ]
    if float(execution.get("multiplier") or 1) != 1:
        parts.append(f"multiplier {execution['multiplier']:g}")
    table.caption = "; ".join(parts)
    table.caption_justify = "left"
    return table


def strategies_table(rows: list[StrategyPerformance], days: int) -> Table:
    """``tv2ib performance``: one row per strategy."""
    table = Table(title=f"Execution per strategy, last {days} days (slippage: positive is a cost)",
                  title_justify="left")  # fmt: skip
    for column in ("strategy", "filled", "measured", "bps avg", "bps median", "money total",
                   "exits bps avg", "signal->fill p50", "p90", "arrival->fill p50", "p90"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in rows:
        money = ", ".join(f"{m['total']:+,.2f} {cur}" for cur, m in r["slippage_by_currency"].items())
        table.add_row(r["strategy"], str(r["filled"]), str(r["measured"]), _cost(r["slippage_bps_mean"], "+.1f"),
                      _cost(r["slippage_bps_median"], "+.1f"), money, _cost(r["exit_slippage_bps_mean"], "+.1f"),
                      _num(r["signal_to_fill_p50"], ".2f"), _num(r["signal_to_fill_p90"], ".2f"),
                      _num(r["arrival_to_fill_p50"], ".2f"), _num(r["arrival_to_fill_p90"], ".2f"))  # fmt: skip
    return table


def alerts_table(rows: list[AlertPerformance]) -> Table:
    """``tv2ib performance --strategy S``: its filled alerts, newest first."""
    table = Table(title=f"Filled alerts ({len(rows)})", title_justify="left")
    for column in ("alert", "received (UTC)", "ticker", "action", "avg price", "reference", "money", "bps",
                   "signal->fill s"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for a in rows:
        execution = a["execution"]
        own = execution["alert"]
        money = (
            ""
            if own is None or own["slippage"] is None
            else f"{own['slippage']:+,.2f} {execution['currency'] or ''}"
        )
        table.add_row(a["id"], (a["received_at"] or "").replace("T", " ")[:19], a["ticker"] or "", a["action"] or "",
                      _num(own and own["avg_price"], "g"), _num(own and own["reference_price"], "g"), money,
                      _cost(own and own["slippage_bps"], "+.1f"),
                      _num(execution["latency"]["signal_to_fill_seconds"], ".2f"))  # fmt: skip
    return table
