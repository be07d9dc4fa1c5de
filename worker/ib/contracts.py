"""Contracts at IB: a ticker's spec qualified into a contract (cached), a continuous future's roll
facts, the contract of a position, and an earlier month still held after a roll (IB loop).

The rest of the worker names a contract by its conId and reads an
:class:`~worker.decision.model.Instrument`; the ib_async ``Contract`` stays here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ib_async import Contract

from worker.contracts.held_month import HeldMonth
from worker.contracts.roll import Pick, next_midnight
from worker.contracts.tickers import ContractSpec
from worker.decision.model import Instrument
from worker.errors import Refused
from worker.ib.connection import IBConnection
from worker.ib.market_rules import MarketRules
from worker.ib.translate import closing_contract, describe, instrument_of, pick_details, request_contract

FRONT_MONTH_CACHE_SECONDS = 3600.0


class ContractNotFound(Refused):
    """IB does not know the contract; the message carries IB's reason."""


@dataclass
class _Cached:
    contract: Contract
    instrument: Instrument
    expires: float
    # a continuous future's pick holds until the exchange's next midnight (a roll happens on a
    # date at the exchange: a cached front month must not outlive its roll date)
    valid_until: datetime | None = None
    roll: Pick | None = None


class ContractBook:
    """One per connection; every method runs on the IB loop."""

    def __init__(self, conn: IBConnection, clock: Callable[[], datetime], market_rules: MarketRules) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.clock = clock
        self.market_rules = market_rules
        self._by_spec: dict[str, _Cached] = {}
        self._by_con_id: dict[int, Contract] = {}  # every contract qualified (a conId never changes)

    async def qualify(self, spec: ContractSpec) -> tuple[Contract, Instrument]:
        """The qualified contract for ``spec`` (cached; front months for an hour, and never past
        the exchange's midnight: the next day may be a roll date)."""
        cached = self._by_spec.get(spec.cache_key)
        now = time.monotonic()
        wall = self.clock()
        if (
            cached is not None
            and cached.expires > now
            and (cached.valid_until is None or wall < cached.valid_until)
        ):
            return cached.contract, cached.instrument
        if spec.con_id:  # a contract pinned by conId (a decided alert's month): known already?
            for known in list(self._by_spec.values()):
                if known.contract.conId == spec.con_id and known.expires > now:
                    self._by_spec[spec.cache_key] = _Cached(known.contract, known.instrument, math.inf)
                    return known.contract, known.instrument
        self.conn.require_connected()
        details, errors = await self._details(spec)
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
        self._by_spec[spec.cache_key] = _Cached(contract, inst, now + ttl, until, roll)
        self._by_con_id[contract.conId] = contract
        return contract, inst

    async def _details(self, spec: ContractSpec) -> tuple[list[Any], list[str]]:
        """IB's contract details for ``spec``, and IB's reasons when it has none (200, 321)."""
        errors: list[str] = []

        def collect(req_id: int, code: int, text: str, contract: Any = None) -> None:
            if code in (200, 321):
                errors.append(f"{code} {text}")

        self.ib.errorEvent += collect
        try:
            details = await asyncio.wait_for(self.ib.reqContractDetailsAsync(request_contract(spec)), 10)
        finally:
            self.ib.errorEvent -= collect
        return details, errors

    def roll_of(self, spec: ContractSpec) -> Pick | None:
        """The roll facts of a continuous future's cached pick (for the plan), else None."""
        cached = self._by_spec.get(spec.cache_key)
        return cached.roll if cached is not None else None

    def qualified(self, con_id: int) -> Contract | None:
        return self._by_con_id.get(con_id)

    def primary_exchange(self, con_id: int) -> str:
        """The qualified contract's primary exchange (its calendar, for trading hours)."""
        contract = self._by_con_id.get(con_id)
        return (getattr(contract, "primaryExchange", "") or "") if contract is not None else ""

    def orderable(self, con_id: int) -> Contract:
        """The contract to send an order for ``con_id`` on: as qualified, else the position's."""
        return self._by_con_id.get(con_id) or self.contract_for(con_id)

    def contract_for(self, con_id: int) -> Contract:
        """The contract of a position (for closing or protecting it): from IB's position report,
        else from one of our orders on it (a position only our executions show yet)."""
        for pos in self.ib.positions(self.conn.account or ""):
            if pos.contract.conId == con_id:
                return closing_contract(pos.contract)
        for trade in self.ib.trades():
            if trade.contract.conId == con_id and trade.order.clientId == self.conn.client_id:
                return closing_contract(trade.contract)
        raise ContractNotFound(f"no position with conId {con_id}")

    async def held_month(self, spec: ContractSpec, inst: Instrument) -> tuple[Instrument, HeldMonth | None]:
        """The contract to decide on: the held earlier month when there is one
        (worker/contracts/held_month.py), else the one the ticker resolves to."""
        if not spec.follows_front:
            return inst, None
        front = self._by_con_id.get(inst.con_id)
        if front is None:
            return inst, None
        held = earlier_months_held(list(self.ib.positions(self.conn.account or "")), front)
        if not held:
            return inst, None
        old, qty = held[0]
        pinned = ContractSpec(
            "FUT", old.symbol, spec.exchange, old.currency or spec.currency, con_id=old.conId
        )
        _old_contract, old_inst = await self.qualify(pinned)
        others = tuple(str(c.localSymbol or c.conId) for c, _ in held[1:])
        info = HeldMonth(inst.symbol, old_inst.local_symbol or str(old.conId), old.conId, qty,
                         inst.local_symbol or inst.symbol, others)  # fmt: skip
        return old_inst, info


def _expiry(contract: Any) -> str:
    return str(getattr(contract, "lastTradeDateOrContractMonth", "") or "")[:8]


def _num(text: str) -> Decimal:
    try:
        return Decimal(str(text))
    except ArithmeticError:
        return Decimal(0)


def same_root(held: Any, front: Contract) -> bool:
    """Whether ``held`` (a position's contract) is another month of ``front``'s product: same
    symbol, currency and (when IB gives them) trading class and multiplier."""
    if held.secType != "FUT" or held.conId == front.conId or held.symbol != front.symbol:
        return False
    if held.currency and front.currency and held.currency != front.currency:
        return False
    if held.tradingClass and front.tradingClass and held.tradingClass != front.tradingClass:
        return False
    return not (held.multiplier and front.multiplier and _num(held.multiplier) != _num(front.multiplier))


def earlier_months_held(positions: list[Any], front: Contract) -> list[tuple[Any, Decimal]]:
    """(contract, signed quantity) of every earlier month of ``front``'s root with a position,
    nearest expiry first."""
    out: dict[int, tuple[Any, Decimal]] = {}
    for pos in positions:
        contract = pos.contract
        qty = Decimal(str(pos.position or 0))
        if qty and same_root(contract, front) and _expiry(contract) < _expiry(front):
            held = out.get(contract.conId)
            out[contract.conId] = (contract, qty + (held[1] if held else 0))
    return sorted(out.values(), key=lambda item: _expiry(item[0]))
