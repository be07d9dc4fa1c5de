"""What ``/performance``, ``/profit`` and ``/daily`` answer: pure functions from the documents of
core/performance.py and core/profit.py to Telegram HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.notice_text import fit
from worker.notify.wording import duration_text, esc


def bps_text(value: Any) -> str:
    """``+2.6 bps`` (signed: positive is a cost); ``?`` when unknown."""
    return "?" if value is None else f"{float(value):+.1f} bps"


def money_text(value: Any, currency: str | None = None, *, sign: bool = True) -> str:
    """``+1,234.50 USD`` / ``-3.20``; ``?`` when unknown."""
    if value is None:
        return "?"
    text = f"{float(value):+,.2f}" if sign else f"{float(value):,.2f}"
    return f"{text} {esc(currency)}" if currency else text


def seconds_text(value: Any) -> str:
    """``0.84 s`` below ten seconds, else as :func:`duration_text`; ``?`` when unknown."""
    if value is None:
        return "?"
    seconds = float(value)
    return f"{seconds:.2f} s" if abs(seconds) < 10 else duration_text(seconds)


def _strategy_lines(row: Mapping[str, Any]) -> list[str]:
    lines = [
        f"<b>{esc(row['strategy'])}</b>: {row['filled']} filled, {row['measured']} against a reference price"
    ]
    if row["measured"]:
        lines.append(
            f"  slippage avg <b>{bps_text(row['slippage_bps_mean'])}</b>, median {bps_text(row['slippage_bps_median'])}"
        )
    for currency, money in (row.get("slippage_by_currency") or {}).items():
        lines.append(
            f"  in {esc(currency)}: total <b>{money_text(money['total'])}</b>, avg {money_text(money['mean'])}"
            f", median {money_text(money['median'])}"
        )
    if row["exits_measured"]:
        lines.append(
            f"  exits against their own price: {row['exits_measured']}, avg {bps_text(row['exit_slippage_bps_mean'])}"
            f", median {bps_text(row['exit_slippage_bps_median'])}"
        )
    if row["signal_to_fill_p50"] is not None:
        lines.append(
            f"  signal → fill p50 {seconds_text(row['signal_to_fill_p50'])}, p90 {seconds_text(row['signal_to_fill_p90'])}"
        )
    if row["arrival_to_fill_p50"] is not None:
        lines.append(
            f"  arrival → fill p50 {seconds_text(row['arrival_to_fill_p50'])}, p90 {seconds_text(row['arrival_to_fill_p90'])}"
        )
    return lines


def performance_text(doc: Mapping[str, Any], strategy: str | None = None) -> str:
    """/performance: per strategy, slippage against the alert's price and latency to the fill."""
    rows: Sequence[Mapping[str, Any]] = doc.get("strategies") or []
    if not rows:
        whose = f" for strategy <b>{esc(strategy)}</b>" if strategy else ""
        return f"No filled alert{whose} in the last {doc.get('days')} days."
    lines = [
        f"<b>Execution</b>, last {doc.get('days')} days",
        "<i>slippage: the fill against the alert's price; positive is a cost</i>",
    ]
    for row in rows:
        lines.append("")
        lines.extend(_strategy_lines(row))
    return fit("\n".join(lines))


def _period(doc: Mapping[str, Any]) -> str:
    since = doc.get("since")
    return f"since {esc(str(since)[:16].replace('T', ' '))} UTC" if since else "all time"


def _currency_lines(row: Mapping[str, Any]) -> list[str]:
    currency = row["currency"]
    lines = [
        f"<b>{esc(currency)}</b>: realized PnL <b>{money_text(row['realized_pnl'])}</b>"
        f" (IB's, net of commissions) · commissions {money_text(row['commissions'], sign=False)}"
    ]
    if row["trades"]:
        rate = f"{row['win_rate'] * 100:.0f}%" if row["win_rate"] is not None else "?"
        lines.append(f"trades: {row['trades']} ({row['wins']} won, {row['losses']} lost, win rate {rate})")
        lines.append(
            f"per trade: avg {money_text(row['avg_trade'])} · best {money_text(row['best_trade'])}"
            f" · worst {money_text(row['worst_trade'])}"
        )
        factor = "∞ (no loss)" if row["profit_factor"] is None else f"{row['profit_factor']:.2f}"
        lines.append(f"profit factor {factor} · max drawdown {money_text(row['max_drawdown'], sign=False)}")
    else:
        lines.append("trades: none closed")
    if row.get("best_strategy") is not None:
        lines.append(f"best strategy: {esc(row['best_strategy'])} {money_text(row['best_strategy_pnl'])}")
    lines.append(f"executions: {row['fills']}")
    return lines


def profit_text(doc: Mapping[str, Any]) -> str:
    """/profit: realized figures per currency over the window."""
    rows: Sequence[Mapping[str, Any]] = doc.get("currencies") or []
    if not rows:
        return f"No executions {_period(doc)}."
    lines = [f"<b>Profit</b>, {_period(doc)}"]
    for row in rows:
        lines.append("")
        lines.extend(_currency_lines(row))
    first, last = doc.get("first_fill"), doc.get("last_fill")
    if first and last:
        lines.append("")
        lines.append(
            f"first fill {esc(first[:16].replace('T', ' '))} · latest {esc(last[:16].replace('T', ' '))} UTC"
        )
    return fit("\n".join(lines))


def daily_text(days: Sequence[Mapping[str, Any]]) -> str:
    """/daily: one line per UTC day (and currency), newest first."""
    lines = [f"<b>Daily realized PnL</b>, last {len(days)} days (UTC)"]
    for day in days:
        currencies: Mapping[str, Mapping[str, Any]] = day.get("currencies") or {}
        if not currencies:
            lines.append(f"<code>{esc(day['date'])}</code>  0 · no executions")
            continue
        for currency, row in currencies.items():
            trades = row["trades"]
            lines.append(
                f"<code>{esc(day['date'])}</code>  <b>{money_text(row['realized_pnl'], currency)}</b>"
                f" · {trades} trade{'' if trades == 1 else 's'} · {row['fills']} fill{'' if row['fills'] == 1 else 's'}"
                f" · fees {money_text(row['commissions'], sign=False)}"
            )
    return fit("\n".join(lines))
