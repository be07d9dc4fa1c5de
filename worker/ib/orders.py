"""IB's orders as tv2ib reads them: which are ours, which are exits, which rest, what IB knows by
orderRef. Read-only views over ib_async's trades, handed out as snapshots; used on the IB loop.

Whose orders: tv2ib changes only its own orders, of its own connection (client id: IB reports an
order only to the client that placed it, and only that client can modify it) on its account
(the client id may have traded another account under an earlier IB_ACCOUNT, docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ib_async import Trade

from core.ids import exit_leg_parts, parse_order_ref
from core.ids import order_ref as make_order_ref
from core.models import IB_DONE_STATUSES, IB_WORKING_STATUSES
from worker.decision.order_types import ExitOrder
from worker.decision.positions import WorkingExit
from worker.errors import TemporaryError
from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.exit_orders import exit_order_of
from worker.ib.translate import num, order_snapshot
from worker.recording.snapshots import OrderSnapshot, OrderState

_WORKING_AT_IB = ("PendingSubmit", "PreSubmitted", "Submitted", "ApiPending")


def leg_of(ref: str | None) -> str | None:
    """The leg of a tv2ib orderRef (``entry``, ``tp``, ``sl2``...), else None."""
    parsed = parse_order_ref(ref)
    return parsed[1] if parsed else None


def exit_role(ref: str | None) -> Literal["tp", "sl"] | None:
    """``tp`` / ``sl`` for a protective leg (``tp``, ``sl``, re-attached ``tp2``..., a level's
    ``tp.1`` / ``sl.1`` / ``sl.1r2``: core/ids.py), else None."""
    parts = exit_leg_parts(leg_of(ref))
    return parts[0] if parts else None  # type: ignore[return-value]


def exit_slice(ref: str | None) -> str:
    """The level of a sliced exit (``"1"`` for ``tp.1`` / ``sl.1r2``); ``""`` for a plain one."""
    parts = exit_leg_parts(leg_of(ref))
    return parts[1] if parts else ""


def remaining(trade: Trade) -> Decimal:
    total = num(trade.order.totalQuantity) or Decimal(0)
    filled = num(trade.orderStatus.filled) or Decimal(0)
    return max(Decimal(0), total - filled)


def ib_error(trade: Trade) -> str:
    """IB's refusal text from the trade's log (``201 Order rejected - ...``), else empty."""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return f"{entry.errorCode} {(entry.message or '').split(': ', 1)[-1]}"
    return ""


@dataclass
class Known:
    """What IB reports for one orderRef: its order (open or completed) and its executions."""

    trade: Trade | None = None
    fills: list[Any] = field(default_factory=list)


class OrderBook:
    """The views of one connection's orders (worker/ib/trading.py hands them out)."""

    def __init__(self, conn: IBConnection) -> None:
        self.conn = conn
        self.ib = conn.ib

    @property
    def account(self) -> str | None:
        return self.conn.account

    # ------------------------------------------------------------------ whose

    def ours(self, trade: Trade, con_id: int | None) -> bool:
        """A working order of this worker (client id) on its account, with a tv2ib orderRef, on
        ``con_id``: what the guard and the jobs may change (one worker per account, worker/claims.py)."""
        return (
            (con_id is None or trade.contract.conId == con_id)
            and trade.order.clientId == self.conn.client_id
            and self.on_account(trade)
            and (trade.order.orderRef or "").startswith("tv2ib:")
            and trade.orderStatus.status in IB_WORKING_STATUSES
        )

    def on_account(self, trade: Trade) -> bool:
        return not self.account or trade.order.account in ("", self.account)

    def trade_by_id(self, order_id: int) -> Trade | None:
        # ib_async keys an order with an id by (clientId, orderId): no scan
        return self.ib.wrapper.trades.get((self.conn.client_id, order_id)) if order_id > 0 else None

    def trades_of(self, orders: Iterable[OrderSnapshot | OrderState]) -> list[Trade]:
        """The trades of this connection behind ``orders`` (by IB order id)."""
        found = (self.trade_by_id(o.ib_order_id) for o in orders if o.ib_order_id)
        return [trade for trade in found if trade is not None]

    def working_by_ref(self, ref: str) -> Trade | None:
        for trade in self.conn.trade_index.working():
            if trade.order.orderRef == ref and self.ours(trade, None):
                return trade
        return None

    # ------------------------------------------------------------------ by orderRef (exactly once)

    def known(self, refs: Iterable[str]) -> dict[str, Known]:
        """What IB reports for each ref: its order (open or completed) and its executions."""
        index = self.conn.trade_index  # worker/ib/trade_index.py: what a scan of every trade would find
        known: dict[str, Known] = {}
        for ref in dict.fromkeys(refs):
            for trade in index.trades(ref):
                entry = known.setdefault(ref, Known())
                # prefer the live (working / latest) order object for a ref
                if entry.trade is None or trade.orderStatus.status not in IB_DONE_STATUSES:
                    entry.trade = trade
            fills = index.fills(ref)
            if fills:
                known.setdefault(ref, Known()).fills.extend(fills)
        return known

    def known_refs(self, refs: Iterable[str]) -> set[str]:
        """The refs IB knows (an order open or completed, or an execution)."""
        return set(self.known(refs))

    def order_state(self, ref: str) -> OrderState | None:
        """The order IB reports for ``ref`` now (None: no order object, maybe only executions)."""
        trade = self.known([ref]).get(ref, Known()).trade
        if trade is None:
            return None
        return OrderState(ref, trade.order.orderId or None, trade.orderStatus.status, trade.order.orderType,
                          num(trade.order.totalQuantity), num(trade.orderStatus.filled), ib_error(trade))  # fmt: skip

    def free_ref(self, alert_id: str, leg: str) -> str:
        """``tv2ib:<alert_id>:<leg>``, or with the first free number (``tp2``, ``tp3``...) when IB
        already knows that ref (open, completed or executed)."""
        taken = self.conn.trade_index.refs()
        ref, n = make_order_ref(alert_id, leg), 1
        # a level's exit is numbered apart from its level: sl.1 -> sl.1r2 (never sl.12)
        glue = "r" if "." in leg else ""
        while ref in taken:
            n += 1
            ref = make_order_ref(alert_id, f"{leg}{glue}{n}")
        return ref

    # ------------------------------------------------------------------ a position's exits and entries

    def dormant(self, trade: Trade) -> bool:
        """A bracket child waiting under a parent that is not completely filled (not an exit yet:
        IB holds it ``PreSubmitted`` until the entry fills, and cancels it with the entry)."""
        parent_id = trade.order.parentId
        if not parent_id:
            return False
        parent = self.trade_by_id(parent_id)
        # a parent we do not know is done: after a reconnect IB reports completed orders with
        # orderId 0, and a parent still working is an open order we do know. Counting the child
        # as an exit then is the safe side (never a second stop beside it)
        return parent is not None and parent.orderStatus.status != "Filled"

    def working_exits(self, con_id: int) -> list[WorkingExit]:
        """tv2ib's ACTIVE take-profit / stop-loss orders on the contract (legs ``tp`` / ``sl`` and
        their re-attached variants ``tp2``, ``sl3``...), sized by what is left to fill. Orders being
        cancelled (PendingCancel) and dormant bracket children are not counted."""
        exits = []
        for trade in self.conn.trade_index.working():
            if not self.ours(trade, con_id) or trade.orderStatus.status == "PendingCancel":
                continue
            role = exit_role(trade.order.orderRef)
            if role is None or self.dormant(trade):
                continue
            left = remaining(trade)
            if left > 0:
                ref = trade.order.orderRef
                exits.append(WorkingExit(ref, role, trade.order.action, left, exit_slice(ref)))
        return exits

    def resting_entry_trades(self, con_id: int | None) -> list[Trade]:
        return [
            t
            for t in self.conn.trade_index.working()
            if self.ours(t, con_id) and leg_of(t.order.orderRef) == "entry" and remaining(t) > 0
        ]

    def resting_entries(self, con_id: int | None) -> list[OrderSnapshot]:
        """tv2ib's working entry orders on the contract (None: every contract; leg ``entry``, not
        completely filled)."""
        return [order_snapshot(t) for t in self.resting_entry_trades(con_id)]

    def has_dormant_bracket(self, con_id: int) -> bool:
        """An entry of ours rests on the contract with its bracket children waiting under it."""
        ids = {t.order.orderId for t in self.resting_entry_trades(con_id)}
        return bool(ids) and any(
            t.order.parentId in ids and exit_role(t.order.orderRef) is not None
            for t in self.conn.trade_index.working()
        )

    def exit_prices(self, con_id: int) -> dict[str, Decimal]:
        """The prices of the working exits by role (tp: limit, sl: stop), to put them back as they
        were; dormant bracket children count here (their prices are what the plan asked for)."""
        prices: dict[str, Decimal] = {}
        for trade in self.conn.trade_index.working():
            role = exit_role(trade.order.orderRef) if self.ours(trade, con_id) else None
            if role is None:
                continue
            order = trade.order
            # a TRAIL's auxPrice is its trail amount; its stop is trailStopPrice (as last sent / reported)
            stop = order.trailStopPrice if order.orderType == "TRAIL" else order.auxPrice
            price = num(order.lmtPrice if role == "tp" else stop)
            if price is not None and price > 0:
                prices.setdefault(role, price)
        return prices

    def exit_orders(self, con_id: int) -> dict[str, ExitOrder]:
        """The IB terms of the working exits by role (order type, a STP LMT's limit, a TRAIL's
        trail), read from IB's orders: what a position's protection is when no spec says it."""
        terms: dict[str, ExitOrder] = {}
        for trade in self.conn.trade_index.working():
            role = exit_role(trade.order.orderRef) if self.ours(trade, con_id) else None
            if role is not None:
                terms.setdefault(role, exit_order_of(trade.order))
        return terms

    def exit_oca_group(self, con_id: int, alert_id: str, level: str = "") -> str:
        """The OCA group of the contract's protective set: the group of its working exits (one set
        per position), else a new one named after ``alert_id``. ``level``: the group of that slice
        of a take-profit in levels (its tp and sl), else ``tv2ib:<alert>:<level>``."""
        for trade in self.conn.trade_index.working():
            ref = trade.order.orderRef
            if (
                self.ours(trade, con_id)
                and exit_role(ref)
                and trade.order.ocaGroup
                and exit_slice(ref) == level
            ):
                return trade.order.ocaGroup
        return f"tv2ib:{alert_id}:{level}" if level else f"tv2ib:{alert_id}"

    def exit_con_ids(self) -> set[int]:
        """The contracts with a working exit order (any client's orderRef of an exit leg)."""
        return {t.contract.conId for t in self.conn.trade_index.working() if exit_role(t.order.orderRef)}

    def exit_trades(self, con_id: int) -> list[Trade]:
        """This connection's open exit orders on the contract (whatever their state)."""
        return [t for t in self.conn.trade_index.working()
                if t.contract.conId == con_id and exit_role(t.order.orderRef)
                and t.order.clientId == self.conn.client_id]  # fmt: skip

    def working_order_counts(self) -> tuple[int, int]:
        """The account's working orders at IB (all clients'), and how many of them are tv2ib's."""
        account = self.account or ""
        working = tv2ib = 0
        for trade in self.conn.trade_index.working():
            if account and trade.order.account and trade.order.account != account:
                continue
            if trade.orderStatus.status in _WORKING_AT_IB:
                working += 1
                if (trade.order.orderRef or "").startswith("tv2ib"):
                    tv2ib += 1
        return working, tv2ib

    # ------------------------------------------------------------------ waiting for IB

    async def until(self, done: Callable[[], bool], wait: float, what: str) -> None:
        """Until ``done()``; :class:`TemporaryError` after ``wait`` seconds, IBUnavailable when
        the connection drops meanwhile."""
        deadline = time.monotonic() + wait
        while not done():
            if time.monotonic() > deadline:
                raise TemporaryError(what)
            if not self.ib.isConnected():
                raise IBUnavailable(what + ": connection lost")
            await asyncio.sleep(0.01)
