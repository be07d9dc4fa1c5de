"""A protective exit's IB order terms, read from and written to ib_async's ``Order`` (IB loop only).

:func:`exit_order_of` reads what kind of exit IB works (so the executor can describe a position's
protection when no spec names it); :func:`reprice_exit` changes a working exit's price in place
for a modification WITHOUT changing its kind: a TRAIL keeps trailing, a STP LMT keeps a limit.
The rules are in worker/decision/order_types.py and docs/orders.md.
"""

from __future__ import annotations

from decimal import Decimal

from ib_async import Order
from ib_async.util import UNSET_DOUBLE

from worker.decision.order_types import ExitOrder
from worker.ib.translate import num


def exit_order_of(order: Order) -> ExitOrder:
    """The terms of a working exit as IB reports it. A percent TRAIL may come back with an
    ``auxPrice`` of 0 or unset: the percent is the trail then."""
    kind = order.orderType
    if kind == "TRAIL":
        percent = num(order.trailingPercent)
        if percent is not None and percent > 0:
            return ExitOrder("TRAIL", trail_percent=percent, outside_rth=bool(order.outsideRth))
        return ExitOrder("TRAIL", trail_amount=num(order.auxPrice), outside_rth=bool(order.outsideRth))
    limit = num(order.lmtPrice) if kind == "STP LMT" else None
    return ExitOrder(kind, limit_price=limit, outside_rth=bool(order.outsideRth))


def reprice_exit(order: Order, role: str, price: Decimal | None, terms: ExitOrder | None) -> None:
    """Set ``order`` (a working exit about to be modified) to ``price`` keeping its order type.

    * take-profit (LMT): the limit is ``price``;
    * STP: the stop is ``price``; STP LMT: the stop is ``price`` and the limit is ``terms``' limit,
      or (no terms) moved by as much as the stop, keeping the distance the plan chose;
    * TRAIL: only ``terms`` with ANOTHER trail re-trail it (new trail, starting at ``price``);
      otherwise the trail and its current stop are left to IB: ``trailStopPrice`` is sent unset,
      since sending the plan's initial stop again would undo the ratchet IB has made since.

    ``price`` None: a resize only (the TRAIL rule still applies)."""
    if role == "tp":
        if price is not None:
            order.lmtPrice = float(price)
        return
    if order.orderType == "TRAIL":
        working = exit_order_of(order)
        if (
            terms is not None
            and terms.order_type == "TRAIL"
            and not terms.same_trail(working.trail_amount, working.trail_percent)
        ):
            order.auxPrice = float(terms.trail_amount) if terms.trail_amount is not None else UNSET_DOUBLE
            order.trailingPercent = (
                float(terms.trail_percent) if terms.trail_percent is not None else UNSET_DOUBLE
            )
            order.trailStopPrice = float(price) if price is not None else UNSET_DOUBLE
        else:
            order.trailStopPrice = UNSET_DOUBLE
        return
    if price is None:
        return
    if order.orderType == "STP LMT":
        if terms is not None and terms.order_type == "STP LMT" and terms.limit_price is not None:
            order.lmtPrice = float(terms.limit_price)
        else:
            stop, limit = num(order.auxPrice), num(order.lmtPrice)
            if stop is not None and limit is not None:
                order.lmtPrice = float(limit + (price - stop))
    order.auxPrice = float(price)
