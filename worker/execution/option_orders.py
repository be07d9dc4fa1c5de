"""An option alert made into an alert on one option contract, before the usual decision (IB loop).

Two kinds of alert trade options:

* an option ticker (``AAPL250117C00150000``, ``SPY 250624C596``): that contract, the action as
  for shares;
* an alert on the underlying with ``optionType``: the contract the options held on the underlying
  or IB's chain give (worker/decision/option_target.py, worker/decision/option_choice.py), the
  action from the direction table.

Either way an entry is priced at the option's own quote: the spread filter, a marketable limit
and the exits on the premium (worker/decision/option_prices.py). What comes out is an ordinary
alert on an ``OPT`` contract pinned by conId; the decision core, the protocol and the guard then
treat it like any other contract (positions, sizing in contracts with the multiplier, IB's
what-if, invariant 7). The choice is written into the plan (``plan["option"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from config.settings import Settings
from core.payload import AlertPayload
from worker.contracts.tickers import ContractSpec
from worker.decision.model import Instrument
from worker.decision.option_choice import (
    DELTA_STRIKE_COUNT,
    OptionChain,
    OptionChoice,
    OptionRefusal,
    atm_strike,
    choose,
    pick_expiry,
    scan_window,
)
from worker.decision.option_prices import marketable_limit, premium_exits, spread_refusal
from worker.decision.option_target import (
    ChooseNew,
    CloseAll,
    HeldOption,
    NothingHeld,
    Reverse,
    UseHeld,
    expiry_refusal,
    option_payload,
    plan_doc,
    target_of,
)
from worker.decision.options import NEW_YORK, OptionRequest, Side
from worker.errors import Refused
from worker.execution.alert_job import AlertJob
from worker.ib import IBConnection, Trading

#: closes the option held before a reversal: (the closing alert's id, why it stopped, or None)
CloseFirst = Callable[[AlertJob, HeldOption], tuple[str, str | None]]


@dataclass(frozen=True)
class OptionRules:
    """The settings of option entries (OPTION_ENTRY_TICKS, OPTION_MAX_SPREAD_PERCENT, OPTION_LAST_ENTRY_TIME)."""

    entry_ticks: int = 1
    max_spread_percent: Decimal = Decimal(10)
    last_entry: time = time(15, 0)

    @classmethod
    def of(cls, settings: Settings) -> OptionRules:
        hours, minutes = settings.option_last_entry_time.split(":")
        return cls(settings.option_entry_ticks, Decimal(str(settings.option_max_spread_percent)),
                   time(int(hours), int(minutes)))  # fmt: skip


@dataclass(frozen=True)
class OptionOrder:
    """The alert as an order on one option (``spec`` pinned by conId), and the plan's record;
    ``ended``: nothing to send (an exit with no option held), with the reason."""

    spec: ContractSpec | None
    payload: AlertPayload
    plan: dict[str, Any] | None = None
    ended: str | None = None
    close_first: HeldOption | None = None  # a reversal: this option is closed before anything opens
    close_all: tuple[HeldOption, ...] = ()  # an exit of several options: each closed by its own alert


def is_option_alert(payload: AlertPayload, spec: ContractSpec) -> bool:
    """An alert that trades options: an option ticker, or ``optionType`` on the underlying."""
    return spec.sec_type == "OPT" or payload.option_type is not None


def pinned(symbol: str, con_id: int, currency: str = "USD") -> ContractSpec:
    """An option's spec by conId (what the decision, the protocol and a rerun use)."""
    return ContractSpec("OPT", symbol, "SMART", currency or "USD", con_id=con_id)


class OptionOrders:
    """Makes an option alert an alert on one option contract; its coroutines run on the IB loop."""

    def __init__(self, trading: Trading, rules: OptionRules) -> None:
        self.trading = trading
        self.rules = rules

    def for_job(
        self, job: AlertJob, spec: ContractSpec, conn: IBConnection, timeout: float,
        close: CloseFirst, rehearsal: str | None = None,
    ) -> ContractSpec | str:  # fmt: skip
        """The option ``job`` acts on, its payload made the order on it (once per job: a retry
        after IB dropped reuses it); a rerun of a decided alert acts on the option decided. The
        reason instead when nothing is to be sent (an exit with no option held). A reversal has
        ``close`` close the option held first (worker/execution/option_reversal.py)."""
        if job.option_spec is not None:
            return job.option_spec
        if job.decision is not None and job.decision.con_id:
            job.option_spec = pinned(spec.symbol, job.decision.con_id, spec.currency)
            return job.option_spec
        order = conn.call(self.order(job.payload, spec), timeout=timeout)
        if order.close_all:
            return self._close_all(job, order.close_all, close, rehearsal)
        closed = None
        if order.close_first is not None:
            held = order.close_first
            if rehearsal:
                return f"would close {held.describe()} first (a reversal), then open the other right"
            child, stopped = close(job, held)
            if stopped:
                raise Refused(stopped)
            closed = {"alert": child, "contract": held.describe()}
            order = conn.call(self.order(job.payload, spec), timeout=timeout)
            if order.close_first is not None:
                raise Refused(f"{order.close_first.describe()} is still held after its close (alert {child})")
        if order.ended is not None or order.spec is None:
            return order.ended or "nothing to send"
        plan = order.plan if closed is None else {**(order.plan or {}), "closed_first": closed}
        job.payload, job.option_plan, job.option_spec = order.payload, plan, order.spec
        return order.spec

    @staticmethod
    def _close_all(
        job: AlertJob, held: tuple[HeldOption, ...], close: CloseFirst, rehearsal: str | None
    ) -> str:
        """An exit of several options: each closed by an exit alert of its own; what was done."""
        names = ", ".join(h.describe() for h in held)
        if rehearsal:
            return f"would close the {len(held)} option positions held: {names}"
        closed = [close(job, h) for h in held]
        stopped = [why for _, why in closed if why]
        if stopped:
            raise Refused("; ".join(stopped))
        return f"exit: closed {names}, by alerts {', '.join(child for child, _ in closed)}"

    def _now(self) -> datetime:
        return self.trading.clock().astimezone(NEW_YORK)

    async def order(self, payload: AlertPayload, spec: ContractSpec) -> OptionOrder:
        """The option order for ``payload`` (raises :class:`Refused` with the reason)."""
        if spec.sec_type == "OPT":  # the ticker names the contract: the action as for shares
            inst = await self.trading.instrument(spec)
            size, held = payload.position_size, self.trading.position_of(inst.con_id)
            closes = size is not None and (size == 0 or (size * held >= 0 and abs(size) <= abs(held)))
            if payload.action in ("exit", "cancel") or payload.sentiment == "flat" or closes:
                return OptionOrder(
                    pinned(inst.symbol, inst.con_id, inst.currency),
                    payload,
                    {"rule": "the ticker names the option"},
                )
            # a positionSize trades toward its target: the entry's side is that of the difference
            action = payload.action if size is None else ("buy" if size > held else "sell")
            return await self._priced(payload, inst, action, "the ticker names the option", None)
        request = payload.option_request()
        assert request is not None
        underlying = await self.trading.instrument(spec)
        held = self.trading.options.held(underlying.symbol)
        target = target_of(payload, request, underlying.symbol, held)
        if isinstance(target, OptionRefusal):
            raise Refused(target.reason)
        if isinstance(target, NothingHeld):
            return OptionOrder(None, payload, ended=target.reason)
        if isinstance(target, Reverse):
            return OptionOrder(None, payload, close_first=target.held)
        if isinstance(target, CloseAll):
            return OptionOrder(None, payload, close_all=target.held)
        if isinstance(target, UseHeld):
            inst = await self.trading.instrument(pinned(underlying.symbol, target.held.con_id))
            if not _opens(target):  # a close goes out as the stock rules send it
                plan = plan_doc(target, None, None, None)
                order = option_payload(payload, target.action, None, None, target.position_size)
                return OptionOrder(pinned(inst.symbol, inst.con_id, inst.currency), order, plan)
            return await self._priced(payload, inst, target.action, target.why, None, target)
        choice, trading_class = await self._choose(request, underlying, target, target.signal)
        refusal = expiry_refusal(choice.expiry, self._now(), self.rules.last_entry)
        if refusal is not None:
            raise Refused(f"{choice.describe()}: {refusal.reason}")
        inst = await self.trading.options.contract(underlying.symbol, choice.expiry, choice.strike, choice.right,
                                                   trading_class)  # fmt: skip
        return await self._priced(payload, inst, target.action, target.why, choice, target)

    async def _choose(
        self, request: OptionRequest, underlying: Instrument, target: ChooseNew, signal: str
    ) -> tuple[OptionChoice, str]:
        """The contract from IB's chain, the underlying's price and (for ``delta``) the model
        greeks; and the chain's trading class."""
        chain, trading_class = await self.trading.options.chain(underlying)
        quote = await self.trading.market_price(underlying.con_id)
        today = self._now().date()
        if request.delta is not None and quote.price is not None:
            chain = await self._with_deltas(request, chain, quote.price, today, target, trading_class)
        choice = choose(request, chain, quote.price, today, signal)  # type: ignore[arg-type]
        if isinstance(choice, OptionRefusal):
            raise Refused(choice.reason)
        return choice, trading_class

    async def _with_deltas(self, request: OptionRequest, chain: OptionChain, price: Decimal, today: date,
                           target: ChooseNew, trading_class: str) -> OptionChain:  # fmt: skip
        """The chain with the model delta of each strike a delta target scans."""
        picked = pick_expiry(request, chain.symbol, [e for e, s in chain.strikes.items() if s], today)
        if isinstance(picked, OptionRefusal):
            return chain  # choose() refuses with the same reason
        expiry = picked[0]
        strikes = sorted(chain.strikes[expiry])
        window = scan_window(strikes, atm_strike(strikes, price), request.strike_count or DELTA_STRIKE_COUNT)
        right = target.direction.right
        desk = self.trading.options
        contracts = [await desk.contract(chain.symbol, expiry, s, right, trading_class) for s in window]
        quotes = await desk.quotes(contracts, greeks=True)
        known = {(expiry, s, right): q for s, q in zip(window, quotes, strict=True)}
        return OptionChain(chain.symbol, chain.strikes, chain.rights, {**chain.quotes, **known})

    async def _priced(self, payload: AlertPayload, inst: Instrument, action: str, why: str,
                      choice: OptionChoice | None, target: UseHeld | ChooseNew | None = None) -> OptionOrder:  # fmt: skip
        """An entry at the option's quote: the spread filter, the marketable limit, the exits on the premium."""
        # add grows the position held, whichever side it is
        long = action == "buy" or (
            action == "add" and isinstance(target, UseHeld) and target.held.position > 0
        )
        side: Side = "BUY" if long else "SELL"
        what = inst.local_symbol or (choice.describe() if choice else inst.symbol)
        quote = await self.trading.options.quote(inst.con_id)
        refusal = spread_refusal(quote.bid, quote.ask, self.rules.max_spread_percent, what)
        if refusal is not None:
            raise Refused(refusal.reason)
        entry = marketable_limit(quote.bid, quote.ask, side, self.rules.entry_ticks, inst.grid, what)
        if isinstance(entry, OptionRefusal):
            raise Refused(entry.reason)
        exits = premium_exits(entry.price, side, payload.take_profit, payload.stop_loss, inst.grid)
        if isinstance(exits, OptionRefusal):
            raise Refused(exits.reason)
        if target is not None:
            plan = plan_doc(target, choice, entry, exits)
        else:
            plan = {"rule": why, "action": action, "entry": {"limit": str(entry.price), "why": entry.why}}
        size = target.position_size if target is not None else payload.position_size
        return OptionOrder(
            pinned(inst.symbol, inst.con_id, inst.currency),
            option_payload(payload, action, entry, exits, size),
            plan,
        )


def _opens(target: UseHeld) -> bool:
    """Whether acting on the option held opens (grows it, or crosses to the other side): priced as
    an entry. A reduce or a close goes out as the stock rules send it."""
    held = target.held.position
    if target.action == "exit":
        return False
    if target.position_size is not None:
        return target.position_size * held < 0 or abs(target.position_size) > abs(held)
    return target.action == "add" or (target.action == "buy") == (held > 0)


def _side(action: str, target: UseHeld | ChooseNew | None) -> Side:
    """The entry's side: ``buy`` buys, ``sell`` sells, ``add`` grows the side held; a positionSize
    trades toward its target."""
    if isinstance(target, UseHeld) and target.position_size is not None:
        return "BUY" if target.position_size > target.held.position else "SELL"
    if isinstance(target, ChooseNew) and target.position_size is not None:
        return "BUY" if target.position_size > 0 else "SELL"
    if action == "add" and isinstance(target, UseHeld):
        return "BUY" if target.held.position > 0 else "SELL"
    return "BUY" if action == "buy" else "SELL"
