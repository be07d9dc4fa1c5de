"""A short ``repr`` for ib_async's ``Trade``, installed once by :class:`worker.ib.connection.IBConnection`.

ib_async writes a Trade into an f-string on every ``placeOrder``, ``cancelOrder``, ``openOrder``
and ``orderStatus`` (its log lines at INFO), and Python builds that text whatever the log level.
The default repr walks every non-default field of the order and the contract, and the trade's
whole status log, which grows with each status: about 0.1 to 0.3 ms per leg sent, on the path
every bracket waits on (``python -m bench.latency --steps``), and again for each of IB's answers.
The short one keeps what a reader of those lines looks for.
"""

from __future__ import annotations

from typing import Any

from ib_async import Trade


def compact_trade_repr(trade: Any) -> str:
    """``Trade(12 tv2ib:<alert>:sl SELL 5 AAPL STP aux 185.0 Submitted filled 0)``."""
    order, status, contract = trade.order, trade.orderStatus, trade.contract
    prices = "".join(
        f" {name} {value:g}" for name, value in (("lmt", order.lmtPrice), ("aux", order.auxPrice))
        if isinstance(value, float) and value < 1e300
    )  # fmt: skip
    symbol = contract.localSymbol or contract.symbol or contract.conId
    return (f"Trade({order.orderId} {order.orderRef or '-'} {order.action} {order.totalQuantity:g} {symbol} "
            f"{order.orderType}{prices} {status.status} filled {status.filled:g})")  # fmt: skip


def install_compact_repr() -> None:
    """Give ``Trade`` the short repr (idempotent; the worker's own process only)."""
    Trade.__repr__ = compact_trade_repr  # type: ignore[method-assign]
