"""What a job asks of IB: contracts, prices, positions, placing legs exactly once, cancelling.

Every coroutine here runs on the connection's loop (:meth:`IBConnection.call`); none blocks it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ib_async import Contract, MarketOrder, Order, Trade

from core.ids import order_ref as make_order_ref
from core.models import IB_DONE_STATUSES, IB_WORKING_STATUSES
from worker.errors import Refused
from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.translate import (
    closing_contract,
    describe,
    instrument_of,
    num,
    order_snapshot,
    pick_details,
    position_snapshot,
    request_contract,
)
from worker.pacing import wait_drained
from worker.planner import Instrument, Leg
from worker.snapshots import OrderSnapshot, PositionSnapshot
from worker.symbols import ContractSpec

log = logging.getLogger(__name__)

FRONT_MONTH_CACHE_SECONDS = 3600.0

LegHook = Callable[[str], None]
RecordPlacement = Callable[[list[OrderSnapshot], list[OrderSnapshot]], "Future[Any] | None"]


class ContractNotFound(Refused):
    """IB does not know the contract; the message carries IB's reason."""


@dataclass
class Placement:
    """What happened to one alert's legs at IB (returned to the job thread)."""

    placed: list[OrderSnapshot] = field(default_factory=list)  # legs sent now
    adopted: list[OrderSnapshot] = field(default_factory=list)  # legs IB already knew
    recorded: Future[Any] | None = None  # the recorder's write of ``placed``/``adopted``


@dataclass
class _Cached:
    contract: Contract
    instrument: Instrument
    expires: float


@dataclass
class _Known:
    trade: Trade | None = None
    fills: list[Any] = field(default_factory=list)


class Trading:
    """The trading room of the IB connection: one instance per worker, used on the IB loop."""

    def __init__(self, conn: IBConnection) -> None:
        self.conn = conn
        self.ib = conn.ib
        self._contracts: dict[str, _Cached] = {}

    @property
    def account(self) -> str | None:
        return self.conn.account

    # ------------------------------------------------------------------ contracts and prices

    async def instrument(self, spec: ContractSpec) -> tuple[Contract, Instrument]:
        """The qualified contract for ``spec`` (cached; front months for an hour)."""
        cached = self._contracts.get(spec.cache_key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.contract, cached.instrument
        self.conn.require_connected()
        errors: list[str] = []

        def collect(req_id: int, code: int, text: str, contract: Any = None) -> None:
            if code in (200, 321):
                errors.append(f"{code} {text}")

        self.ib.errorEvent += collect
        try:
            details = await asyncio.wait_for(self.ib.reqContractDetailsAsync(request_contract(spec)), 10)
        finally:
            self.ib.errorEvent -= collect
        details = pick_details(details, spec, date.today().strftime("%Y%m%d"))
        if len(details) != 1:
            reason = errors[-1] if errors else f"{len(details)} matching contracts"
            raise ContractNotFound(f"IB has no unique contract for {describe(spec)}: {reason}")
        contract, inst = instrument_of(details[0], spec)
        ttl = FRONT_MONTH_CACHE_SECONDS if spec.front_index else math.inf
        self._contracts[spec.cache_key] = _Cached(contract, inst, now + ttl)
        return contract, inst

    async def market_price(self, contract: Contract, timeout: float = 3.0) -> tuple[Decimal | None, str]:
        """A reference price from a market-data snapshot: last, else midpoint, else close."""
        self.conn.require_connected()
        try:
            tickers = await asyncio.wait_for(self.ib.reqTickersAsync(contract), timeout)
        except (TimeoutError, ConnectionError):
            return None, "no market data"
        if not tickers:
            return None, "no market data"
        ticker = tickers[0]
        for name, value in (("last", ticker.last), ("midpoint", ticker.midpoint()), ("close", ticker.close)):
            if value is not None and not math.isnan(value) and value > 0:
                return Decimal(str(value)), f"IB {name} price"
        return None, "no market data"

    def position_of(self, con_id: int) -> Decimal:
        """Our position in ``con_id`` as IB last reported it."""
        total = Decimal(0)
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id:
                total += num(pos.position) or Decimal(0)
        return total

    # ------------------------------------------------------------------ exactly-once placement

    def known_refs(self, refs: list[str]) -> dict[str, _Known]:
        """What IB reports for each ref: its order (open or completed) and its executions."""
        wanted = set(refs)
        known: dict[str, _Known] = {}
        for trade in self.ib.trades():
            ref = trade.order.orderRef
            if ref in wanted:
                entry = known.setdefault(ref, _Known())
                # prefer the live (working / latest) order object for a ref
                if entry.trade is None or trade.orderStatus.status not in IB_DONE_STATUSES:
                    entry.trade = trade
        for fill in self.ib.fills():
            ref = fill.execution.orderRef
            if ref in wanted:
                known.setdefault(ref, _Known()).fills.append(fill)
        return known

    async def place_legs(
        self,
        alert_id: str,
        contract: Contract,
        legs: list[Leg],
        oca_type: int,
        on_leg_sent: LegHook,
        record: RecordPlacement,
    ) -> Placement:
        """Send ``legs`` unless IB already has them; runs on the loop without awaiting between the
        check and the sends, so no IB event interleaves with the decision.

        Exactly once: the last leg is the one that transmits the bracket. If IB knows it (open,
        completed or executed), the bracket was sent: adopt, send nothing. Otherwise nothing was
        transmitted; legs IB still holds staged (transmit=False) are re-sent under their own order
        ids (a modification, which transmits them with the last leg) and the rest get new ids. A
        staged leg IB no longer reports (real TWS drops a dead client's untransmitted orders) is
        simply placed anew; its lost twin can never transmit.
        """
        self.conn.require_connected()
        await self.conn.pacer.acquire(len(legs))
        # from here to the last send nothing awaits: no IB event can interleave with the decision
        self.conn.require_connected()
        refs = [make_order_ref(alert_id, leg.leg) for leg in legs]
        known = self.known_refs(refs)
        result = Placement()
        if refs[-1] in known:
            for ref in refs:
                item = known.get(ref)
                if item is not None and item.trade is not None:
                    result.adopted.append(order_snapshot(item.trade))
            log.info("alert %s: IB already has %s; nothing sent", alert_id, sorted(known))
            result.recorded = record([], result.adopted)
            return result
        ids: dict[str, int] = {}
        oca_group = f"tv2ib:{alert_id}" if len(legs) > 1 else ""
        for leg, ref in zip(legs, refs, strict=True):
            item = known.get(ref)
            staged = item.trade if item is not None else None
            reuse = staged is not None and staged.orderStatus.status in IB_WORKING_STATUSES
            order = self._order_for(leg, ref)
            if leg.parent_leg:
                order.parentId = ids[leg.parent_leg]
                order.ocaGroup = oca_group
                order.ocaType = oca_type
            order.orderId = staged.order.orderId if reuse and staged else self.ib.client.getReqId()
            ids[leg.leg] = order.orderId
            trade = self.ib.placeOrder(contract, order)
            result.placed.append(order_snapshot(trade))
            on_leg_sent(leg.leg)
        # recorded only once the messages are on the wire: a disconnect drops ib_async's queue,
        # and a rerun must then find the alert unplaced (IB does not know the refs either)
        if not await wait_drained(self.ib.client) or not self.ib.isConnected():
            raise IBUnavailable(f"alert {alert_id}: connection lost before the orders were sent")
        result.recorded = record(result.placed, [])
        return result

    def _order_for(self, leg: Leg, ref: str) -> Order:
        order = Order(
            action=leg.action,
            totalQuantity=float(leg.quantity),
            orderType=leg.order_type,
            tif=leg.tif,
            outsideRth=leg.outside_rth,
            transmit=leg.transmit,
            orderRef=ref,
            account=self.account or "",
        )
        if leg.limit_price is not None:
            order.lmtPrice = float(leg.limit_price)
        if leg.stop_price is not None:
            order.auxPrice = float(leg.stop_price)
        return order

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel our working orders (for ``con_id``, or all) and wait until IB confirms."""
        self.conn.require_connected()
        targets = [
            t
            for t in self.ib.openTrades()
            if (con_id is None or t.contract.conId == con_id)
            and t.order.clientId == self.conn.client_id
            and (t.order.orderRef or "").startswith("tv2ib")
            and t.orderStatus.status in IB_WORKING_STATUSES
        ]
        for trade in targets:
            if trade.orderStatus.status != "PendingCancel":
                await self.conn.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
            t.orderStatus.status not in IB_DONE_STATUSES for t in targets
        ):
            await asyncio.sleep(0.02)
        return [order_snapshot(t) for t in targets]

    async def our_positions(self) -> list[PositionSnapshot]:
        """Every non-zero position of our account."""
        self.conn.require_connected()
        return [position_snapshot(p) for p in self.ib.positions(self.account or "") if p.position]

    async def flatten(self) -> str:
        """Cancel all our working orders, wait for IB, then close every position at market."""
        self.conn.require_connected()
        cancelled = await self.cancel_working(None)
        closing = []
        stamp = int(time.time())
        for pos in await self.our_positions():
            contract = self.contract_for(pos.con_id)
            qty = pos.quantity
            order = MarketOrder("SELL" if qty > 0 else "BUY", float(abs(qty)))
            order.orderRef = f"tv2ib-flatten:{stamp}:{pos.con_id}"
            order.account = self.account or ""
            await self.conn.pacer.acquire(1)
            self.ib.placeOrder(contract, order)
            closing.append(f"{pos.local_symbol or pos.symbol} {qty}")
        await wait_drained(self.ib.client)
        return f"cancelled {len(cancelled)} order(s); closing {', '.join(closing) or 'nothing'}"

    def contract_for(self, con_id: int) -> Contract:
        """The contract of a position (for closing it)."""
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id:
                return closing_contract(pos.contract)
        raise ContractNotFound(f"no position with conId {con_id}")
