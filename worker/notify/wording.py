"""How values read in a notice (Telegram HTML): escaped text, numbers without float noise, signed
PnL, shortened reasons, a contract's symbol, where an order came from, a leg's name, a duration,
which worker raised an alarm. Pure functions, shared by the composers and the bot's replies."""

from __future__ import annotations

import html
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from core.ids import exit_leg_parts
from core.notice_text import ELLIPSIS

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


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def symbol_text(symbol: str | None, local_symbol: str | None = None, sec_type: str | None = None) -> str:
    """The contract as a trader names it: the local symbol where the plain one is ambiguous."""
    if local_symbol and ((sec_type or "").upper() in LOCAL_SYMBOL_TYPES or not symbol):
        return str(local_symbol)
    return str(symbol or "?")


def origin_text(strategy: str | None, alert_id: str | None, order_ref: str | None) -> str:
    """'strategy X · alert Y' (either may be missing: a manual order in TWS has neither)."""
    parts = []
    if strategy:
        parts.append(f"strategy <b>{esc(shorten(str(strategy), 200))}</b>")
    if alert_id:
        parts.append(f"alert <code>{esc(alert_id)}</code>")
    elif order_ref:
        parts.append(f"ref <code>{esc(shorten(str(order_ref), 100))}</code>")
    return " · ".join(parts)


def leg_name(leg: str | None) -> str:
    """``take-profit`` for ``tp`` and so on (``take-profit 2`` for a level's ``tp.2``); an unknown
    leg as it is."""
    parts = exit_leg_parts(leg)
    if parts is not None and parts[1]:
        return f"{LEG_NAMES[parts[0]]} {parts[1]}"
    return LEG_NAMES.get(leg or "", leg or "order")


def duration_text(seconds: Any) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 5 min``."""
    try:
        total = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "?"
    if total < 120:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def where_text(event: Mapping[str, Any]) -> str:
    """Which worker raised an alarm: its account and client id, when the event says."""
    # account and client_id: the notifier adds them to every alarm it raises (NotRequired keys).
    account = event.get("account")
    client_id = event.get("client_id")
    parts = []
    if account:
        parts.append(f"account {esc(account)}")
    if client_id is not None:
        parts.append(f"client id {esc(client_id)}")
    return " · ".join(parts)


def with_account(lines: list[str], account: str | None) -> str:
    """The notice's lines, and last the account it concerns when it names one."""
    return "\n".join([*lines, f"account {esc(account)}"] if account else lines)
