"""What a job and the guard ask of IB, in typed requests and snapshots: the IB boundary.

Every coroutine here runs on the connection's loop (:meth:`IBConnection.call`); none blocks it.
The rooms behind it, one concept each: contracts (worker/ib/contracts.py), orders as read
(worker/ib/orders.py), placement exactly once and the what-if (worker/ib/placement.py), exit
changes (worker/ib/exit_changes.py), cancelling and closing (worker/ib/cancelling.py), positions
(worker/ib/position_reader.py) and reference prices (worker/ib/market_data.py). Outside
worker/ib/ a contract is its conId and an order is an :class:`OrderSnapshot`: nothing of
ib_async leaves this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from worker.contracts.held_month import HeldMonth
from worker.contracts.roll import Pick
from worker.contracts.tickers import ContractSpec
from worker.decision.ledger import PositionView
from worker.decision.model import Instrument, Leg
from worker.decision.order_types import ExitOrder
from worker.decision.positions import ExitChange, WorkingExit
from worker.decision.quote import Quote
from worker.ib.account import figures_from_values
from worker.ib.cancelling import Canceller
from worker.ib.connection import IBConnection
from worker.ib.contracts import ContractBook, ContractNotFound
from worker.ib.exit_changes import ExitDesk
from worker.ib.market_data import MarketData
from worker.ib.market_rules import MarketRules
from worker.ib.option_desk import OptionDesk
from worker.ib.orders import OrderBook, leg_of
from worker.ib.placement import LegHook, Placement, Placer, RecordPlacement, WhatIfAnswer
from worker.ib.position_reader import SETTLE_SECONDS, PositionReader
from worker.ib.quote_streams import DEFAULT_MAX_AGE
from worker.ib.translate import num, position_snapshot
from worker.recording.snapshots import AccountFigures, OrderSnapshot, OrderState, PositionSnapshot, Venue

__all__ = ["ContractNotFound", "Placement", "Trading"]


class Trading:
    """The trading room of the IB connection: one instance per worker, used on the IB loop."""

    def __init__(self, conn: IBConnection, clock: Callable[[], datetime] | None = None, *,
                 market_data_lines: int = 0, market_data_max_age: float = DEFAULT_MAX_AGE) -> None:  # fmt: skip
        self.conn = conn
        ib = conn.ib
        self.ib = ib
        # wall clock for futures rolls (the exchange's date); tests set it to a day near a roll
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # reference prices under IB_MARKET_DATA_TYPE, with the delayed fall back (issue 11), read from
        # up to MARKET_DATA_LINES kept subscriptions (issue 18; 0, the default here: snapshots)
        self.market_data = MarketData(
            ib, conn.market_data_type, lines=market_data_lines, max_age=market_data_max_age
        )
        self.contracts = ContractBook(conn, lambda: self.clock(), MarketRules(ib))
        # IB reports a position a moment after the fill that changed it: every decision reads IB's
        # last report plus our executions since (see position_view)
        self.positions = PositionReader(conn)
        self.orders = OrderBook(conn)
        self.cancels = Canceller(conn, self.orders)
        self.placer = Placer(conn, self.orders)
        self.exits = ExitDesk(conn, self.orders, self.cancels)
        # an underlying's option chain, an option's quote and greeks, the options held (issue 20)
        self.options = OptionDesk(conn, self.contracts, self.positions)

    @property
    def account(self) -> str | None:
        return self.conn.account

    @property
    def ready(self) -> bool:
        """Connected, reconciled and IB's servers reachable."""
        return self.conn.ready

    def require_connected(self) -> None:
        """Raise :class:`IBUnavailable` unless ready (on the loop, before an IB request)."""
        self.conn.require_connected()

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the IB loop soon (thread-safe)."""
        self.conn.call_soon(fn, *args)

    # ------------------------------------------------------------------ the account

    def account_figures(self) -> AccountFigures:
        """The account's figures from ib_async's live account subscription (no round trip)."""
        account = self.account or ""
        return figures_from_values(account, list(self.ib.accountValues(account)))

    def other_exposure(self, con_id: int) -> Decimal | None:
        """The sum of |market value| of the account's positions in OTHER contracts (portfolio
        rows, no round trip); None while IB has not sent a value for some position."""
        account = self.account or ""
        items = list(self.ib.portfolio(account))
        if not items and any(p.position for p in self.ib.positions(account)):
            return None  # positions without portfolio rows: IB has not sent the values yet
        exposure = Decimal(0)
        for item in items:
            if item.contract.conId == con_id or not item.position:
                continue
            value = num(item.marketValue)
            if value is None:
                return None
            exposure += abs(value)
        return exposure

    def working_order_counts(self) -> tuple[int, int]:
        """The account's working orders at IB (all clients'), and how many are tv2ib's."""
        return self.orders.working_order_counts()

    # ------------------------------------------------------------------ contracts and prices

    async def instrument(self, spec: ContractSpec) -> Instrument:
        """The qualified contract for ``spec`` (cached; see :meth:`ContractBook.qualify`)."""
        return (await self.contracts.qualify(spec))[1]

    def roll_of(self, spec: ContractSpec) -> Pick | None:
        return self.contracts.roll_of(spec)

    async def held_month(self, spec: ContractSpec, inst: Instrument) -> tuple[Instrument, HeldMonth | None]:
        return await self.contracts.held_month(spec, inst)

    def primary_exchange(self, con_id: int) -> str:
        return self.contracts.primary_exchange(con_id)

    async def market_price(self, con_id: int, timeout: float = 3.0) -> Quote:
        """A reference price (last, else midpoint, else close) under ``IB_MARKET_DATA_TYPE``, falling
        back to delayed data when IB refuses live data: read at once from the contract's kept
        subscription when it is open and fresh, else IB's first answer to a new request, within
        ``timeout`` (worker/ib/market_data.py, worker/ib/quote_streams.py)."""
        self.conn.require_connected()
        return await self.market_data.quote(self.contracts.orderable(con_id), timeout)

    def quote_at_hand(self, con_id: int) -> Quote | None:
        """:meth:`market_price` when its kept stream answers at once (no round trip); else None."""
        return self.market_data.kept_quote(con_id)

    def price_at_hand(self, symbol: str) -> Decimal | None:
        """A stock's reference price from its kept market-data stream, without asking IB (None:
        no usable stream; e.g. ``MARKET_DATA_LINES`` 0, or the stock not quoted lately)."""
        return self.market_data.at_hand(symbol)

    # ------------------------------------------------------------------ positions

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

    def entry_price(self, alert_id: str, con_id: int) -> Decimal | None:
        """The average price the alert's entry filled at (our executions, volume-weighted); else
        the position's average cost from IB's report (per unit); None when neither is known."""
        ref = f"tv2ib:{alert_id}:entry"
        fills = [f for f in self.conn.trade_index.fills(ref) if f.contract.conId == con_id]
        shares = sum((Decimal(str(f.execution.shares)) for f in fills), Decimal(0))
        if shares > 0:
            paid = sum(
                (Decimal(str(f.execution.shares)) * Decimal(str(f.execution.price)) for f in fills),
                Decimal(0),
            )
            return paid / shares
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id and pos.position and pos.avgCost:
                multiplier = Decimal(str(pos.contract.multiplier or 1) or 1)
                return Decimal(str(pos.avgCost)) / multiplier
        return None

    # ------------------------------------------------------------------ orders by orderRef

    def known_refs(self, refs: Sequence[str]) -> set[str]:
        """The refs IB knows: an order open or completed, or an execution."""
        return self.orders.known_refs(refs)

    def order_state(self, ref: str) -> OrderState | None:
        """The order IB reports for ``ref`` now (None: none, maybe only executions)."""
        return self.orders.order_state(ref)

    async def see_other_clients(self, timeout: float = 5.0) -> None:
        """Ask IB for the open orders of EVERY client (reqAllOpenOrders), so :meth:`known_refs` sees
        the legs another client id placed. A connection is sent only its own open orders, while
        completed orders and executions are everyone's; a job rerun after its worker died and was
        replaced under another client id (worker/consumer.py ``reclaim``) must still find a working
        bracket the dead worker sent, or it would send it again. Those orders stay in ib_async's
        list without updates (IB does not keep another client's orders in sync) until the next
        connect starts it afresh."""
        self.conn.require_connected()
        await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), timeout)

    async def place_legs(self, alert_id: str, con_id: int, legs: list[Leg], oca_type: int,
                         on_leg_sent: LegHook, record: RecordPlacement) -> Placement:  # fmt: skip
        """Send ``legs`` on ``con_id``'s contract unless IB already has them (exactly once:
        worker/ib/placement.py)."""
        return await self.placer.place_legs(alert_id, self.contracts.orderable(con_id), legs, oca_type,
                                            on_leg_sent, record)  # fmt: skip

    async def what_if(self, con_id: int, leg: Leg, timeout: float) -> WhatIfAnswer:
        """IB's what-if for ``leg`` on ``con_id``'s contract, with the account's figures."""
        return await self.placer.what_if(self.contracts.orderable(con_id), leg, timeout, self.account_figures)

    def free_ref(self, alert_id: str, leg: str) -> str:
        return self.orders.free_ref(alert_id, leg)

    # ------------------------------------------------------------------ a position's exits and entries
    # The interface the protective-order guard (worker/execution/guard.py) and the execution protocol
    # (worker/execution/protocol.py) share. Everything here runs on the IB loop.

    def working_exits(self, con_id: int) -> list[WorkingExit]:
        return self.orders.working_exits(con_id)

    def resting_entries(self, con_id: int | None) -> list[OrderSnapshot]:
        return self.orders.resting_entries(con_id)

    async def entries_to_cancel(self, spec: ContractSpec, options: bool = False) -> list[OrderSnapshot]:
        """A ``cancel``'s orders: tv2ib's resting entries on the contract; with ``options``, on every
        option of the underlying; for a continuous future (ES1!), also those left in a month it
        rolled away from (placed on ES1! before the roll: the strategy's too)."""
        inst = await self.instrument(spec)
        if options:
            return [s for s in self.resting_entries(None) if s.sec_type == "OPT" and s.symbol == inst.symbol]
        resting = self.resting_entries(inst.con_id)
        if spec.front_index and inst.sec_type == "FUT":
            resting += [s for s in self.resting_entries(None)
                        if s.sec_type == "FUT" and s.symbol == inst.symbol and s.con_id != inst.con_id]  # fmt: skip
        return resting

    def has_dormant_bracket(self, con_id: int) -> bool:
        return self.orders.has_dormant_bracket(con_id)

    def exit_prices(self, con_id: int) -> dict[str, Decimal]:
        return self.orders.exit_prices(con_id)

    def exit_orders(self, con_id: int) -> dict[str, ExitOrder]:
        return self.orders.exit_orders(con_id)

    def exit_oca_group(self, con_id: int, alert_id: str, level: str = "") -> str:
        return self.orders.exit_oca_group(con_id, alert_id, level)

    def exit_con_ids(self) -> set[int]:
        return self.orders.exit_con_ids()

    async def apply_exit_changes(
        self,
        con_id: int,
        changes: list[ExitChange],
        *,
        alert_id: str,
        prices: Mapping[str, Decimal],
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

        When the position shrinks while the changes are applied (an exit's fill), the rest is not
        sent: they were computed for the larger position before it (the caller or the guard fits
        the exits anew).

        Returns IB's view of every order touched. Raises :class:`TemporaryError` when IB does not
        acknowledge a change within ``wait`` seconds. Paced through ``conn.pacer``.
        """
        contract_of = lambda: self.contracts.orderable(con_id)  # noqa: E731 - only a new exit needs it
        return await self.exits.apply(contract_of, changes, alert_id, prices, oca_group, wait, orders,
                                      lambda: self.position_of(con_id))  # fmt: skip

    # ------------------------------------------------------------------ cancelling and closing

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[OrderSnapshot]:
        """Cancel our working orders (for ``con_id``, or all) and wait until IB confirms."""
        return await self.cancels.cancel_working(con_id, wait)

    async def cancel_and_wait(self, orders: Sequence[OrderSnapshot | OrderState], wait: float = 5.0) -> list[OrderSnapshot]:  # fmt: skip
        """Cancel ``orders`` (ours, by IB order id) and wait (bounded) until IB confirms each is done
        (cancelled, or filled meanwhile). Raises :class:`TemporaryError` when IB has not confirmed
        them all in time."""
        return await self.cancels.cancel_trades(self.orders.trades_of(orders), wait)

    async def close_unprotected(self, con_id: int, alert_id: str) -> Decimal:
        """Cancel our exits on the contract, then close the position at market (leg ``flatten``,
        DAY); returns the position closed (0: it was flat by then)."""
        exits = self.orders.exit_trades(con_id)
        if exits:
            await self.cancels.cancel_trades(exits)
        position = self.position_of(con_id)
        if position == 0:
            return position
        contract = self.contracts.contract_for(con_id)
        await self.cancels.close_at_market(contract, position, self.free_ref(alert_id, "flatten"), tif="DAY")
        return position

    async def flatten(self) -> str:
        """Cancel all our working orders, wait for IB, then close every position at market."""
        self.conn.require_connected()
        cancelled = await self.cancels.cancel_working(None)
        closing = await self.cancels.close_all(await self.positions_to_close(), self.contracts.contract_for)
        return f"cancelled {len(cancelled)} order(s); closing {', '.join(closing) or 'nothing'}"

    # ------------------------------------------------------------------ one position at the session's end

    async def venue(self, con_id: int) -> Venue:
        """Where the contract trades (its calendar): as qualified (once by conId when this run has
        not yet: a position's report may lack its primary exchange), else as IB reports the position."""
        contract = self.contracts.qualified(con_id)
        if contract is None:
            held = self.contracts.contract_for(con_id)
            spec = ContractSpec(held.secType, held.symbol, held.exchange, held.currency, con_id=con_id)
            try:
                contract = (await self.contracts.qualify(spec))[0]
            except Exception:  # noqa: BLE001 - the position's own contract still names its exchange
                contract = held
        return Venue(contract.conId or con_id, contract.secType, contract.exchange,
                     getattr(contract, "primaryExchange", "") or "", contract.currency, contract.symbol,
                     contract.localSymbol)  # fmt: skip

    def closing_refs(self, con_id: int) -> list[str]:
        """Our working ``flatten`` orders on the contract (a close already under way)."""
        return [t.order.orderRef for t in self.conn.trade_index.working()
                if self.orders.ours(t, con_id) and (leg_of(t.order.orderRef) or "").startswith("flatten")]  # fmt: skip

    async def close_position(self, con_id: int, alert_id: str) -> tuple[Decimal, str]:
        """Cancel our working orders on the contract (entries and exits; IB confirms each, else
        :class:`TemporaryError`), then close the position at market (leg ``flatten``, DAY).
        Returns the position closed and the order's ref; ``(0, "")``: it was flat by then."""
        working = [t for t in self.conn.trade_index.working() if self.orders.ours(t, con_id)]
        if working:
            await self.cancels.cancel_trades(working)
        position = await self.settled_position(con_id)
        if position == 0:
            return position, ""
        ref = self.free_ref(alert_id, "flatten")
        await self.cancels.close_at_market(self.contracts.orderable(con_id), position, ref, tif="DAY")
        return position, ref
