"""The look: what IB and the database say, gathered before the decision (the I/O half of deciding).

One hop to the IB loop reads the contract (qualified, its roll, a held earlier month), IB's
settled position, a reference price when the alert needs one, the protection the position has,
the account's figures, and the views the risk rules compare (exposure, working orders: ib_async
keeps them current, no round trip). The risk counters, when a rule in force reads them, come
from memory (worker/risk/tally.py: no query; the job thread asks the database only before they
are built). What only some decisions need is
gathered when the decision asks for it (worker/risk/verdict.py ``missing_inputs``): one more quote
on the IB loop; a price-reading rule's quote comes with the look when a kept market-data stream has
it at once (no second hop). The pure decision (worker/decision/core.py) reads nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from core.ids import parse_order_ref
from core.payload import AlertPayload
from worker.contracts.tickers import ContractSpec
from worker.decision.exits import kept_terms
from worker.decision.intent import needs_market_reference
from worker.decision.look import Look
from worker.decision.model import Instrument
from worker.decision.quote import Quote
from worker.ib.connection import IBConnection
from worker.ib.trading import Trading
from worker.recording.protection import ProtectionRegistry, ProtectionSpec
from worker.recording.snapshots import AccountFigures
from worker.risk.gate import RiskGate
from worker.risk.verdict import COUNTERS, QUOTE, QUOTE_RULES, AccountView, RiskInputs, reads_counters

# the rules whose check reads IB's account views (exposure, working orders, PnL, a quote)
_VIEW_RULES = ("max_gross_exposure", "max_open_orders", "daily_loss_limit", "max_price_deviation_percent",
               "max_order_notional", "max_position_notional")  # fmt: skip


class Gatherer:
    """Gathers the look for the executor (one per worker)."""

    def __init__(
        self,
        conn: IBConnection,
        trading: Trading,
        *,
        protection: ProtectionRegistry | None = None,
        risk: RiskGate | None = None,
        timeout: float = 30.0,
        prefetch: Callable[[str, AlertPayload, Instrument], None] | None = None,
    ) -> None:
        self.conn = conn
        self.trading = trading
        self.protection = protection  # the guard's specs (None: no guard, unit tests)
        self.risk = risk  # the risk gate (None: no limits, unit tests)
        self.timeout = timeout
        self.prefetch = prefetch  # a cold contract's what-if beside its quote (worker/execution/what_if.py)

    async def look_on_loop(self, alert_id: str, payload: AlertPayload, spec: ContractSpec) -> Look:
        """IB's view before deciding: contract, position, the protection it has, a reference price."""
        trading = self.trading
        inst = await trading.instrument(spec)
        roll = trading.roll_of(spec)
        # contracts (worker/contracts/held_month.py): a position held in the month before a roll is decided there
        inst, held = await trading.held_month(spec, inst)
        if self.prefetch is not None:
            self.prefetch(alert_id, payload, inst)
        # a reference price when the alert needs one (live, else delayed: worker/ib/market_data.py),
        # asked while the position settles: at once from a kept subscription, else one round trip
        asking = (
            asyncio.ensure_future(trading.market_price(inst.con_id))
            if needs_market_reference(payload)
            else None
        )
        try:
            # the position including the previous alert's market order and fills (IB reports a
            # position a moment after the fill; a decision must not read the report before it)
            position = await trading.settled_position(inst.con_id)
            quote = None if asking is None else await asking
        finally:
            _settle(asking)
        account = trading.account or ""
        # sizing (issue 11): IB's account figures as last reported (no round trip), read once per alert
        figures = trading.account_figures()
        return Look(alert_id, inst, position, account, quote, self.protection_now(inst, position), figures, spec,
                    roll, held, self._risk_inputs(payload, account, inst, figures))  # fmt: skip

    def _with_counters(self, look: Look) -> Look:
        """The risk counters when a rule in force reads them (memory: worker/risk/tally.py), at
        the look's instant, so that the decision needs no second pass for them."""
        risk, gate = look.risk, self.risk
        if risk is None or gate is None or not reads_counters(risk.rules):
            return look
        return look.with_risk(counters=gate.counters(risk.account, risk.now))

    def counted_on_loop(self, look: Look) -> Look | None:
        """:meth:`_with_counters` without a query (the express path, on the IB loop): None when the
        rules read counters memory does not have yet (the job thread's path then asks)."""
        risk, gate = look.risk, self.risk
        if risk is None or gate is None or not reads_counters(risk.rules):
            return look
        counters = gate.counters_in_memory(risk.account, risk.now)
        return None if counters is None else look.with_risk(counters=counters)

    def with_counters(self, look: Look) -> Look:
        """The express path's look, continued on the job thread: its counters, unless it has them."""
        return look if look.risk is None or look.risk.counters is not None else self._with_counters(look)

    def more(self, look: Look, payload: AlertPayload, missing: frozenset[str]) -> Look:
        """The look with what the risk rules asked for (job thread): the counters (when the look
        had none), another quote (a hop to the IB loop)."""
        risk, gate = look.risk, self.risk
        assert risk is not None and gate is not None
        counters = gate.counters(risk.account, risk.now) if COUNTERS in missing else None
        quote = None
        if QUOTE in missing:
            quote = self.conn.call(self.trading.market_price(look.inst.con_id), timeout=self.timeout)
        return look.with_risk(counters=counters, quote=quote)

    def protection_now(self, inst: Instrument, position: Decimal) -> ProtectionSpec | None:
        """The protection the position has now (to put back if the order that changes it fails):
        the guard's spec when it has one for this side, else the prices of the working exits."""
        if position == 0:
            return None
        account = self.trading.account or ""
        if self.protection is not None:
            current = self.protection.get(account, inst.con_id)
            if current is not None and current.protects(position):
                return current
        owner = None
        for ex in self.trading.working_exits(inst.con_id):
            owner = owner or (parse_order_ref(ex.ref) or ("", ""))[0]
        prices = self.trading.exit_prices(inst.con_id) if owner else {}
        if not owner or not prices:
            return None
        orders = kept_terms(self.trading.exit_orders(inst.con_id), prices)  # a TRAIL is put back as one
        return ProtectionSpec(account, inst.con_id, owner, 1 if position > 0 else -1, prices,
                              inst.local_symbol or inst.symbol, orders)  # fmt: skip

    def _risk_inputs(
        self, payload: AlertPayload, account: str, inst: Instrument, figures: AccountFigures
    ) -> RiskInputs | None:
        """What the risk rules in force compare that the IB loop knows (no round trip)."""
        gate = self.risk
        if gate is None:
            return None
        account = account or payload.account or ""
        rules = gate.rules_for(payload.strategy, account or None)
        view = AccountView()
        if any(getattr(rules, name) is not None for name in _VIEW_RULES):
            working, tv2ib = self.trading.working_order_counts()
            view = AccountView(self.trading.other_exposure(inst.con_id), working, tv2ib, figures.unrealized_pnl,
                               figures.currency)  # fmt: skip
        # a price-reading rule's quote, when a kept stream has it at once: the decision then needs
        # no second hop to the IB loop for it (more() asks IB otherwise, when the rule wants one)
        quote = self.trading.quote_at_hand(inst.con_id) if any(
            getattr(rules, name) is not None for name in QUOTE_RULES) else None  # fmt: skip
        return RiskInputs(rules, account, gate.clock(), view, quote=quote,
                          primary_exchange=self.trading.primary_exchange(inst.con_id))  # fmt: skip


def _settle(task: asyncio.Task[Quote] | None) -> None:
    """The look's quote once the look is over: cancelled when the look failed first (it is not
    wanted), its failure read when both failed (asyncio would report it as never retrieved)."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
