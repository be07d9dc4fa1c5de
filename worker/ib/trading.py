"""What a job asks of IB: contracts, prices, positions, placing legs exactly once, cancelling.

Every coroutine here runs on the connection's loop (:meth:`IBConnection.call`); none blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ib_async import Contract, MarketOrder, Order, Trade

from core.ids import order_ref as make_order_ref
from core.ids import parse_order_ref
from core.models import IB_DONE_STATUSES, IB_ENDED_UNFILLED_STATUSES, IB_WORKING_STATUSES
from worker.contracts.roll import Pick, next_midnight
from worker.contracts.tickers import ContractSpec
from worker.decision.ledger import PositionView
from worker.decision.order_types import ExitOrder
from worker.decision.planner import OCA_TYPE, Instrument, Leg, exit_leg
from worker.decision.positions import ExitChange, WorkingExit
from worker.errors import Refused, TemporaryError
from worker.ib.account import AccountFigures, figures_from_values
from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.exit_orders import exit_order_of, reprice_exit
from worker.ib.market_data import MarketData, Quote
from worker.ib.market_rules import MarketRules
from worker.ib.pacing import wait_drained
from worker.ib.position_reader import SETTLE_SECONDS, PositionReader
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
from worker.recording.snapshots import OrderSnapshot, PositionSnapshot

log = logging.getLogger(__name__)

FRONT_MONTH_CACHE_SECONDS = 3600.0
# protective legs: the bracket's tp / sl and their re-attached or re-placed variants (tp2, sl3...)
_EXIT_LEG = re.compile(r"(tp|sl)\d*")

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
    # a continuous future's pick holds until the exchange's next midnight (a roll happens on a
    # date at the exchange: a cached front month must not outlive its roll date)
    valid_until: datetime | None = None
    roll: Pick | None = None


@dataclass
class _Known:
    trade: Trade | None = None
    fills: list[Any] = field(default_factory=list)


class Trading:
    """The trading room of the IB connection: one instance per worker, used on the IB loop."""

    def __init__(self, conn: IBConnection, clock: Callable[[], datetime] | None = None) -> None:
        self.conn = conn
        self.ib = conn.ib
        self._contracts: dict[str, _Cached] = {}
        # wall clock for futures rolls (the exchange's date); tests set it to a day near a roll
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # reference prices under IB_MARKET_DATA_TYPE, with the delayed fall back (issue 11)
        self.market_data = MarketData(conn.ib, conn.market_data_type)
        self.market_rules = MarketRules(conn.ib)  # price bands per rule id, cached for the process
        # IB reports a position a moment after the fill that changed it: every decision reads IB's
        # last report plus our executions since (see position_view)
        self.positions = PositionReader(conn)

    @property
    def account(self) -> str | None:
        return self.conn.account

    def account_figures(self) -> AccountFigures:
        """The account's figures from ib_async's live account subscription (no round trip)."""
        account = self.account or ""
        return figures_from_values(account, list(self.ib.accountValues(account)))

    def portfolio(self) -> list[Any]:
        """The account's portfolio rows (position, market value) from ib_async's account
        subscription (no round trip); read by the risk gate (worker/risk/gate.py)."""
        return list(self.ib.portfolio(self.account or ""))

    def open_trades(self) -> list[Trade]:
        """Every order IB reports to this connection as not done yet (tv2ib's and others')."""
        return list(self.ib.openTrades())

    # ------------------------------------------------------------------ contracts and prices

    async def instrument(self, spec: ContractSpec) -> tuple[Contract, Instrument]:
        """The qualified contract for ``spec`` (cached; front months for an hour, and never past
        the exchange's midnight: the next day may be a roll date)."""
        cached = self._contracts.get(spec.cache_key)
        now = time.monotonic()
        wall = self.clock()
        if (
            cached is not None
            and cached.expires > now
            and (cached.valid_until is None or wall < cached.valid_until)
        ):
            return cached.contract, cached.instrument
        if spec.con_id:  # a contract pinned by conId (a decided alert's month): known already?
            for known in list(self._contracts.values()):
                if known.contract.conId == spec.con_id and known.expires > now:
                    self._contracts[spec.cache_key] = _Cached(known.contract, known.instrument, math.inf)
                    return known.contract, known.instrument
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
        details, roll = pick_details(details, spec, wall)
        if len(details) != 1:
            reason = errors[-1] if errors else f"{len(details)} matching contracts"
            if roll is not None and not errors:
                reason = (
                    f"no listed contract #{spec.front_index} left after the roll ({roll.to_json()['rule']})"
                )
            raise ContractNotFound(f"IB has no unique contract for {describe(spec)}: {reason}")
        contract, inst = instrument_of(details[0], spec)
        # prices on IB's market rule (price bands) for the order's exchange (worker/ib/market_rules.py)
        inst = replace(inst, price_bands=await self.market_rules.bands_for(details[0], contract.exchange))
        ttl = FRONT_MONTH_CACHE_SECONDS if spec.front_index else math.inf
        until = next_midnight(wall, ZoneInfo(roll.zone)) if roll is not None else None
        self._contracts[spec.cache_key] = _Cached(contract, inst, now + ttl, until, roll)
        return contract, inst

    def roll_of(self, spec: ContractSpec) -> Pick | None:
        """The roll facts of a continuous future's cached pick (for the plan), else None."""
        cached = self._contracts.get(spec.cache_key)
        return cached.roll if cached is not None else None

    async def market_price(self, contract: Contract, timeout: float = 3.0) -> Quote:
        """A reference price from a market-data snapshot (last, else midpoint, else close) under
        ``IB_MARKET_DATA_TYPE``, falling back to delayed data when IB refuses live data
        (worker/ib/market_data.py). The :class:`Quote` unpacks as ``(price, source)``."""
        self.conn.require_connected()
        return await self.market_data.quote(contract, timeout)

    def position_view(self, con_id: int) -> PositionView:
        """Our position in ``con_id`` as every decision reads it: IB's last position report plus
        our executions since (worker/ib/position_reader.py)."""
        return self.positions.view(con_id)

    def position_of(self, con_id: int) -> Decimal:
        """Our position in ``con_id`` now: :meth:`position_view`'s position (does not wait)."""
        return self.positions.view(con_id).position

    async def settled_view(self, con_id: int, wait: float = SETTLE_SECONDS) -> PositionView:
        """:meth:`position_view` once IB's report includes our executions and our market orders on
        the contract are done (waits up to ``wait``; past it, the view as it is)."""
        return await self.positions.settled(con_id, wait)

    async def settled_position(self, con_id: int, wait: float = SETTLE_SECONDS) -> Decimal:
        """The position of :meth:`settled_view` (what the executor decides on)."""
        return (await self.positions.settled(con_id, wait)).position

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
            order = self.order_for(leg, ref)
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

    def order_for(self, leg: Leg, ref: str) -> Order:
        """The IB order for ``leg`` (placement, exit changes and the margin check's what-if)."""
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
        # TRAIL: IB's auxPrice is the trail AMOUNT (not a stop); the stop it starts at is its own field
        if leg.trail_amount is not None:
            order.auxPrice = float(leg.trail_amount)
        if leg.trail_percent is not None:
            order.trailingPercent = float(leg.trail_percent)
        if leg.trail_stop_price is not None:
            order.trailStopPrice = float(leg.trail_stop_price)
        return order

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel our working orders (for ``con_id``, or all) and wait until IB confirms."""
        self.conn.require_connected()
        targets = [
            t
            for t in self.ib.openTrades()
            if (con_id is None or t.contract.conId == con_id)
            and t.order.clientId == self.conn.client_id
            and self._on_account(t)
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

    # ------------------------------------------------------------------ positions and their exits
    # The interface the protective-order guard (worker/execution/guard.py) and the executor's position
    # protocol share. Everything here runs on the IB loop.

    def _ours(self, trade: Trade, con_id: int | None) -> bool:
        """A working order of this worker (client id) on its account, with a tv2ib orderRef, on
        ``con_id``: what the guard and the jobs may change (one worker per account, worker/claims.py;
        the client id may have traded another account under an earlier IB_ACCOUNT)."""
        return (
            (con_id is None or trade.contract.conId == con_id)
            and trade.order.clientId == self.conn.client_id
            and self._on_account(trade)
            and (trade.order.orderRef or "").startswith("tv2ib:")
            and trade.orderStatus.status in IB_WORKING_STATUSES
        )

    def _on_account(self, trade: Trade) -> bool:
        return not self.account or trade.order.account in ("", self.account)

    def _trade_by_id(self, order_id: int) -> Trade | None:
        for trade in self.ib.trades():
            if trade.order.orderId == order_id and trade.order.clientId == self.conn.client_id:
                return trade
        return None

    def dormant(self, trade: Trade) -> bool:
        """A bracket child waiting under a parent that is not completely filled (not an exit yet:
        IB holds it ``PreSubmitted`` until the entry fills, and cancels it with the entry)."""
        parent_id = trade.order.parentId
        if not parent_id:
            return False
        parent = self._trade_by_id(parent_id)
        # a parent we do not know is done: after a reconnect IB reports completed orders with
        # orderId 0, and a parent still working is an open order we do know. Counting the child
        # as an exit then is the safe side (never a second stop beside it)
        return parent is not None and parent.orderStatus.status != "Filled"

    def working_exits(self, con_id: int) -> list[WorkingExit]:
        """tv2ib's ACTIVE take-profit / stop-loss orders on the contract (legs ``tp`` / ``sl`` and
        their re-attached variants ``tp2``, ``sl3``...), sized by what is left to fill. Orders being
        cancelled (PendingCancel) and dormant bracket children are not counted."""
        exits = []
        for trade in self.ib.openTrades():
            if not self._ours(trade, con_id) or trade.orderStatus.status == "PendingCancel":
                continue
            role = exit_role(trade.order.orderRef)
            if role is None or self.dormant(trade):
                continue
            remaining = _remaining(trade)
            if remaining > 0:
                exits.append(WorkingExit(trade.order.orderRef, role, trade.order.action, remaining))
        return exits

    def resting_entries(self, con_id: int | None) -> list[Trade]:
        """tv2ib's working entry orders on the contract (None: every contract; leg ``entry``, not
        completely filled)."""
        return [
            t
            for t in self.ib.openTrades()
            if self._ours(t, con_id) and leg_of(t.order.orderRef) == "entry" and _remaining(t) > 0
        ]

    def exit_prices(self, con_id: int) -> dict[str, Decimal]:
        """The prices of the working exits by role (tp: limit, sl: stop), to put them back as they
        were; dormant bracket children count here (their prices are what the plan asked for)."""
        prices: dict[str, Decimal] = {}
        for trade in self.ib.openTrades():
            role = exit_role(trade.order.orderRef) if self._ours(trade, con_id) else None
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
        for trade in self.ib.openTrades():
            role = exit_role(trade.order.orderRef) if self._ours(trade, con_id) else None
            if role is not None:
                terms.setdefault(role, exit_order_of(trade.order))
        return terms

    def exit_oca_group(self, con_id: int, alert_id: str) -> str:
        """The OCA group of the contract's protective set: the group of its working exits (one set
        per position), else a new one named after ``alert_id``."""
        for trade in self.ib.openTrades():
            if self._ours(trade, con_id) and exit_role(trade.order.orderRef) and trade.order.ocaGroup:
                return trade.order.ocaGroup
        return f"tv2ib:{alert_id}"

    async def cancel_and_wait(self, trades: list[Trade], wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel ``trades`` and wait (bounded) until IB confirms each is done (cancelled, or filled
        meanwhile). Raises :class:`TemporaryError` when IB has not confirmed them all in time."""
        self.conn.require_connected()
        for trade in trades:
            if (
                trade.orderStatus.status not in IB_DONE_STATUSES
                and trade.orderStatus.status != "PendingCancel"
            ):
                await self.conn.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        await self._until(lambda: all(t.orderStatus.status in IB_DONE_STATUSES for t in trades), wait,
                          f"IB did not confirm cancelling {[t.order.orderRef for t in trades]}")  # fmt: skip
        return [order_snapshot(t) for t in trades]

    async def apply_exit_changes(
        self,
        contract: Contract,
        changes: list[ExitChange],
        *,
        alert_id: str,
        prices: dict[str, Decimal],
        oca_group: str,
        wait: float = 5.0,
        orders: Mapping[str, ExitOrder] | None = None,
    ) -> list[OrderSnapshot]:
        """Apply :func:`worker.decision.positions.exit_changes` at IB, in the given order, awaiting IB's
        acknowledgement of each change before the next one (so a shrink is in force before the
        order that reduces the position goes out):

        * quantity 0: cancel the order (confirmed cancelled, or filled meanwhile);
        * a ref and a quantity: modify the same order id to leave ``quantity`` to fill (re-priced
          when ``prices`` has its role); a refused SHRINK falls back to cancelling (an exit larger
          than the position is worse than none for a moment; the guard re-attaches);
        * no ref: a new GTC exit for ``quantity`` at ``prices[role]`` (a limit for ``tp``; for
          ``sl`` the order type of ``orders["sl"]``: STP, STP LMT with its limit, TRAIL with its
          trail; STP without terms) in ``oca_group`` (type 2), orderRef ``tv2ib:<alert_id>:<role>[n]``
          (unique: the first free of ``tp``, ``tp2``, ``tp3``...). No price for the role: not placed.

        A modification never changes an exit's order type: a TRAIL keeps trailing (resized, its
        trail stop left where IB has ratcheted it; re-trailed only when ``orders`` asks for another
        trail), a STP LMT keeps its limit (re-priced: the limit given, else moved with the stop).

        Returns IB's view of every order touched. Raises :class:`TemporaryError` when IB does not
        acknowledge a change within ``wait`` seconds. Paced through ``conn.pacer``.
        """
        self.conn.require_connected()
        touched: list[OrderSnapshot] = []
        for change in changes:
            if change.ref is None:
                trade = await self._place_exit(contract, change, alert_id, prices, oca_group, orders)
                if trade is None:
                    log.warning("alert %s: no %s price known; %s exit not placed", alert_id, change.role,
                                change.role)  # fmt: skip
                    continue
                await self._until(lambda t=trade: t.orderStatus.status not in ("PendingSubmit", "ApiPending"),
                                  wait, f"IB did not acknowledge new exit {trade.order.orderRef}")  # fmt: skip
                touched.append(order_snapshot(trade))
                continue
            trade = self._working_by_ref(change.ref)
            if trade is None:  # gone meanwhile (filled or cancelled): nothing left to change
                continue
            if change.quantity <= 0:
                touched += await self.cancel_and_wait([trade], wait)
                continue
            shrink = change.quantity < _remaining(trade)
            if await self._modify_exit(trade, change, prices, wait, orders) or not shrink:
                touched.append(order_snapshot(trade))
            else:
                log.warning("IB refused shrinking %s; cancelling it instead", change.ref)
                touched += await self.cancel_and_wait([trade], wait)
        return touched

    def _working_by_ref(self, ref: str) -> Trade | None:
        for trade in self.ib.openTrades():
            if trade.order.orderRef == ref and self._ours(trade, None):
                return trade
        return None

    def free_ref(self, alert_id: str, leg: str) -> str:
        """``tv2ib:<alert_id>:<leg>``, or with the first free number (``tp2``, ``tp3``...) when IB
        already knows that ref (open, completed or executed)."""
        taken = {t.order.orderRef for t in self.ib.trades()} | {f.execution.orderRef for f in self.ib.fills()}
        ref, n = make_order_ref(alert_id, leg), 1
        while ref in taken:
            n += 1
            ref = make_order_ref(alert_id, f"{leg}{n}")
        return ref

    async def _place_exit(
        self,
        contract: Contract,
        change: ExitChange,
        alert_id: str,
        prices: dict[str, Decimal],
        oca_group: str,
        orders: Mapping[str, ExitOrder] | None = None,
    ) -> Trade | None:
        price = prices.get(change.role)
        if price is None:
            return None
        leg = exit_leg(change.role, change.action, change.quantity, price, (orders or {}).get(change.role))
        await self.conn.pacer.acquire(1)
        self.conn.require_connected()
        order = self.order_for(leg, self.free_ref(alert_id, change.role))
        order.ocaGroup, order.ocaType = oca_group, OCA_TYPE
        order.orderId = self.ib.client.getReqId()
        return self.ib.placeOrder(contract, order)

    async def _modify_exit(
        self,
        trade: Trade,
        change: ExitChange,
        prices: dict[str, Decimal],
        wait: float,
        orders: Mapping[str, ExitOrder] | None = None,
    ) -> bool:
        """Modify ``trade`` to leave ``change.quantity`` to fill, keeping its order type (see
        :meth:`apply_exit_changes`); True when IB acknowledged it."""
        await self.conn.pacer.acquire(1)
        self.conn.require_connected()
        order = trade.order
        was = (
            order.totalQuantity,
            order.lmtPrice,
            order.auxPrice,
            order.trailingPercent,
            order.trailStopPrice,
        )
        filled = num(trade.orderStatus.filled) or Decimal(0)
        order.totalQuantity = float(filled + change.quantity)
        reprice_exit(order, change.role, prices.get(change.role), (orders or {}).get(change.role))
        order.transmit = True
        acked: list[Trade] = []
        refused: list[int] = []

        def on_order(t: Trade) -> None:
            if t is trade:
                acked.append(t)

        def on_error(req_id: int, code: int, text: str, contract: Any = None) -> None:
            if req_id == order.orderId and code not in (399,) and not 2100 <= code < 2200:
                refused.append(code)

        # IB answers a modification with openOrder + orderStatus (ib_async emits openOrderEvent for
        # both new and known orders), or with an error for the order id
        self.ib.openOrderEvent += on_order
        self.ib.orderStatusEvent += on_order
        self.ib.errorEvent += on_error
        try:
            self.ib.placeOrder(trade.contract, order)
            await self._until(lambda: bool(acked or refused) or trade.orderStatus.status in IB_DONE_STATUSES,
                              wait, f"IB did not acknowledge modifying {order.orderRef}")  # fmt: skip
        finally:
            self.ib.openOrderEvent -= on_order
            self.ib.orderStatusEvent -= on_order
            self.ib.errorEvent -= on_error
        if refused:
            # ib_async marks the trade Cancelled on the error; IB restates the unchanged order right
            # after (ibsim does): wait for that, bounded, before anyone reads the order's state
            with contextlib.suppress(TemporaryError):
                await self._until(lambda: trade.orderStatus.status not in IB_ENDED_UNFILLED_STATUSES, wait,
                                  "restatement")  # fmt: skip
            # ib_async changed its copy of the order when sending; IB kept the old terms
            (order.totalQuantity, order.lmtPrice, order.auxPrice, order.trailingPercent,
             order.trailStopPrice) = was  # fmt: skip
            log.warning("IB refused modifying %s (error %s)", order.orderRef, refused[0])
        return not refused

    async def _until(self, done: Callable[[], bool], wait: float, what: str) -> None:
        deadline = time.monotonic() + wait
        while not done():
            if time.monotonic() > deadline:
                raise TemporaryError(what)
            if not self.ib.isConnected():
                raise IBUnavailable(what + ": connection lost")
            await asyncio.sleep(0.01)

    async def our_positions(self) -> list[PositionSnapshot]:
        """Every non-zero position of our account as IB last reported it (the API's list)."""
        self.conn.require_connected()
        return [position_snapshot(p) for p in self.ib.positions(self.account or "") if p.position]

    async def positions_to_close(self) -> dict[int, Decimal]:
        """Every non-zero position of our account, each as a decision reads it (IB's report plus
        our executions since, once settled): a flatten right after a fill closes what the fill
        made, not what the report before it said."""
        self.conn.require_connected()
        reported = {p.contract.conId for p in self.ib.positions(self.account or "") if p.position}
        con_ids = reported | self.positions.ledger.con_ids(self.account or "")
        sizes = {con_id: (await self.settled_view(con_id)).position for con_id in sorted(con_ids)}
        return {con_id: qty for con_id, qty in sizes.items() if qty}

    async def flatten(self) -> str:
        """Cancel all our working orders, wait for IB, then close every position at market."""
        self.conn.require_connected()
        cancelled = await self.cancel_working(None)
        closing = []
        stamp = int(time.time())
        for con_id, qty in (await self.positions_to_close()).items():
            contract = self.contract_for(con_id)
            order = MarketOrder("SELL" if qty > 0 else "BUY", float(abs(qty)))
            order.orderRef = f"tv2ib-flatten:{stamp}:{con_id}"
            order.account = self.account or ""
            await self.conn.pacer.acquire(1)
            self.ib.placeOrder(contract, order)
            closing.append(f"{contract.localSymbol or contract.symbol} {format(qty.normalize(), 'f')}")
        await wait_drained(self.ib.client)
        return f"cancelled {len(cancelled)} order(s); closing {', '.join(closing) or 'nothing'}"

    def contract_for(self, con_id: int) -> Contract:
        """The contract of a position (for closing or protecting it): from IB's position report,
        else from one of our orders on it (a position only our executions show yet)."""
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id:
                return closing_contract(pos.contract)
        for trade in self.ib.trades():
            if trade.contract.conId == con_id and trade.order.clientId == self.conn.client_id:
                return closing_contract(trade.contract)
        raise ContractNotFound(f"no position with conId {con_id}")


def leg_of(ref: str | None) -> str | None:
    """The leg of a tv2ib orderRef (``entry``, ``tp``, ``sl2``...), else None."""
    parsed = parse_order_ref(ref)
    return parsed[1] if parsed else None


def exit_role(ref: str | None) -> Literal["tp", "sl"] | None:
    """``tp`` / ``sl`` for a protective leg (``tp``, ``sl``, re-attached ``tp2``...), else None."""
    match = _EXIT_LEG.fullmatch(leg_of(ref) or "")
    return match.group(1) if match else None  # type: ignore[return-value]


def _remaining(trade: Trade) -> Decimal:
    total = num(trade.order.totalQuantity) or Decimal(0)
    filled = num(trade.orderStatus.filled) or Decimal(0)
    return max(Decimal(0), total - filled)
