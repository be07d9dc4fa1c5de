"""Placing an alert's legs exactly once, and asking IB's what-if (runs on the IB loop).

Exactly once (design invariant 2): every leg carries ``orderRef`` = ``tv2ib:<alert>:<leg>``, and
the check of IB's own view of those refs (open orders, completed orders, executions, all fetched
on connect and kept current from events) happens in the same step that sends, with no await in
between, so no IB event can interleave with the decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ib_async import Contract, Order
from ib_async.util import UNSET_DOUBLE

from core.ids import exit_leg_parts
from core.ids import order_ref as make_order_ref
from core.models import IB_WORKING_STATUSES
from worker.decision.margin import WhatIf
from worker.decision.model import Leg
from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.orders import OrderBook
from worker.ib.paced import Batch, PacedOrders
from worker.ib.pacing import wait_drained
from worker.ib.translate import order_snapshot, what_if_of
from worker.recording.snapshots import AccountFigures, OrderSnapshot

log = logging.getLogger(__name__)

LegHook = Callable[[str], None]
RecordPlacement = Callable[[list[OrderSnapshot], list[OrderSnapshot]], "Future[Any] | None"]


@dataclass
class Placement:
    """What happened to one alert's legs at IB (returned to the job thread)."""

    placed: list[OrderSnapshot] = field(default_factory=list)  # legs sent now
    adopted: list[OrderSnapshot] = field(default_factory=list)  # legs IB already knew
    recorded: Future[Any] | None = None  # the recorder's write of ``placed``/``adopted``


@dataclass(frozen=True)
class WhatIfAnswer:
    """IB's answer to a what-if (None: IB gave no figures; ``errors`` say why) and the account's
    figures at the same moment."""

    answer: WhatIf | None
    errors: list[tuple[int, str]]
    figures: AccountFigures


def order_for(leg: Leg, ref: str, account: str) -> Order:
    """The IB order for ``leg`` (placement, exit changes and the margin check's what-if)."""
    order = Order(
        action=leg.action,
        totalQuantity=float(leg.quantity),
        orderType=leg.order_type,
        tif=leg.tif,
        outsideRth=leg.outside_rth,
        transmit=leg.transmit,
        orderRef=ref,
        account=account,
    )
    if leg.limit_price is not None:
        order.lmtPrice = float(leg.limit_price)
    if leg.stop_price is not None:
        order.auxPrice = float(leg.stop_price)
    # TRAIL: IB's auxPrice is the trail AMOUNT (not a stop); the stop it starts at is its own field
    if leg.trail_amount is not None:
        order.auxPrice = float(leg.trail_amount)
    if leg.trail_percent is not None:
        order.trailingPercent = float(leg.trail_percent)
    if leg.trail_stop_price is not None:
        order.trailStopPrice = float(leg.trail_stop_price)
    return order


def broken_what_if(order: Any, state: Any) -> bool:
    """A what-if answer ib_async would drop: its initMarginChange unset (ib_async waits for a
    second answer with figures) while IB's ``warningText`` says why (erdewit/ib_insync#380)."""
    if not getattr(order, "whatIf", False) or not str(getattr(state, "warningText", "") or "").strip():
        return False
    try:
        return float(state.initMarginChange) == UNSET_DOUBLE
    except (TypeError, ValueError):
        return True  # not a number at all: as unusable as unset


def end_broken_what_ifs(wrapper: Any) -> None:
    """Make ib_async end a what-if on a broken answer (:func:`broken_what_if`) with that answer, so
    the margin check refuses at once with IB's text instead of timing out without it."""
    original = wrapper.openOrder

    def open_order(order_id: int, contract: Any, order: Any, state: Any) -> None:
        if broken_what_if(order, state):
            wrapper._endReq(order.orderId, state)
            return
        original(order_id, contract, order, state)

    wrapper.openOrder = open_order


class Placer:
    """Sends legs (and what-ifs) for one connection."""

    def __init__(self, conn: IBConnection, orders: OrderBook) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.orders = orders
        end_broken_what_ifs(self.ib.wrapper)
        self.paced = PacedOrders(conn, self._send_again, self.orders.known_refs)

    async def place_legs(
        self,
        alert_id: str,
        contract: Contract,
        legs: list[Leg],
        oca_type: int,
        on_leg_sent: LegHook,
        record: RecordPlacement,
    ) -> Placement:
        """Send ``legs`` unless IB already has them (see the module docstring).

        The last leg is the one that transmits the bracket. If IB knows it (open, completed or
        executed), the bracket was sent: adopt, send nothing. Otherwise nothing was transmitted;
        legs IB still holds staged (transmit=False) are re-sent under their own order ids (a
        modification, which transmits them with the last leg) and the rest get new ids. A staged leg
        IB no longer reports (real TWS drops a dead client's untransmitted orders) is simply placed
        anew; its lost twin can never transmit.
        """
        self.conn.require_connected()
        await self.conn.pacer.acquire(len(legs))
        # from here to the last send nothing awaits: no IB event can interleave with the decision
        self.conn.require_connected()
        result = Placement()
        sent = self.send_once(alert_id, contract, legs, oca_type, on_leg_sent, result)
        if not sent:
            result.recorded = record([], result.adopted)
            return result
        # IB may answer error 100 (pacing) to some legs: they are placed again (worker/ib/paced.py)
        self.paced.watch(Batch(alert_id, contract, legs, oca_type, record, sent))
        # recorded only once the messages are on the wire: a disconnect drops ib_async's queue,
        # and a rerun must then find the alert unplaced (IB does not know the refs either)
        if not await wait_drained(self.ib.client) or not self.ib.isConnected():
            raise IBUnavailable(f"alert {alert_id}: connection lost before the orders were sent")
        result.recorded = record(result.placed, [])
        return result

    def send_once(
        self, alert_id: str, contract: Contract, legs: list[Leg], oca_type: int, on_leg_sent: LegHook,
        result: Placement,
    ) -> list[Any]:  # fmt: skip
        """One idempotent step, without awaits (see :meth:`place_legs`): adopt what IB has, else
        send the legs IB does not hold; returns the trades sent (empty: adopted)."""
        refs = [make_order_ref(alert_id, leg.leg) for leg in legs]
        known = self.orders.known(refs)
        if refs[-1] in known:
            for ref in refs:
                item = known.get(ref)
                if item is not None and item.trade is not None:
                    result.adopted.append(order_snapshot(item.trade))
            log.info("alert %s: IB already has %s; nothing sent", alert_id, sorted(known))
            return []
        ids: dict[str, int] = {}
        sent = []
        oca_group = f"tv2ib:{alert_id}" if len(legs) > 1 else ""
        for leg, ref in zip(legs, refs, strict=True):
            item = known.get(ref)
            staged = item.trade if item is not None else None
            reuse = staged is not None and staged.orderStatus.status in IB_WORKING_STATUSES
            order = order_for(leg, ref, self.conn.account or "")
            if leg.parent_leg:
                parent = known.get(make_order_ref(alert_id, leg.parent_leg))
                order.parentId = ids.get(leg.parent_leg) or (
                    parent.trade.order.orderId if parent and parent.trade else 0
                )
                level = exit_leg_parts(leg.leg)
                # a take-profit in levels: each level's tp and sl in their own group (worker/decision/levels.py)
                order.ocaGroup = (
                    f"tv2ib:{alert_id}:{level[1]}" if level and level[1] else oca_group or f"tv2ib:{alert_id}"
                )
                order.ocaType = oca_type
            order.orderId = staged.order.orderId if reuse and staged else self.ib.client.getReqId()
            ids[leg.leg] = order.orderId
            trade = self.ib.placeOrder(contract, order)
            sent.append(trade)
            result.placed.append(order_snapshot(trade))
            on_leg_sent(leg.leg)
        return sent

    def _send_again(
        self, alert_id: str, contract: Contract, legs: list[Leg], oca_type: int
    ) -> tuple[list[Any], list[OrderSnapshot]]:
        """:meth:`send_once` for a re-send after IB's error 100 (worker/ib/paced.py)."""
        result = Placement()
        sent = self.send_once(alert_id, contract, legs, oca_type, lambda leg: None, result)
        return sent, result.placed

    async def what_if(
        self, contract: Contract, leg: Leg, timeout: float, figures: Callable[[], AccountFigures]
    ) -> WhatIfAnswer:
        """IB's what-if for ``leg`` (IB's figures, or None with IB's errors) and the account's
        figures at the same moment. A what-if is a placeOrder message: paced like one."""
        self.conn.require_connected()
        await self.conn.pacer.acquire(1)
        account = figures()
        order = order_for(leg, "", self.conn.account or "")  # as it would be sent, trail included
        errors: list[tuple[int, str]] = []

        def collect(req_id: int, code: int, text: str, about: Any = None) -> None:
            if about is not None and about.conId == contract.conId and not (2100 <= code < 2200):
                errors.append((code, " ".join(text.split())))

        self.ib.errorEvent += collect
        try:
            state = await asyncio.wait_for(self.ib.whatIfOrderAsync(contract, order), timeout)
        except TimeoutError:
            state = None
        finally:
            self.ib.errorEvent -= collect
        if state is None or isinstance(state, list):  # an error ends the request with no OrderState
            return WhatIfAnswer(None, errors, account)
        return WhatIfAnswer(what_if_of(state), errors, account)
