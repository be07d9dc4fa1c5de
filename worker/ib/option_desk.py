"""Options at IB (IB loop): an underlying's chain, an option's contract, its quote and model delta,
and the options held on an underlying.

The rest of the worker reads the pure shapes of worker/decision/option_choice.py
(:class:`OptionChain`, :class:`OptionQuote`) and worker/decision/option_target.py
(:class:`HeldOption`); the ib_async objects stay here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ib_async import Contract

from worker.contracts.tickers import ContractSpec
from worker.decision.model import Instrument
from worker.decision.option_choice import OptionChain, OptionQuote, strike_text
from worker.decision.option_expiry import OptionPosition
from worker.decision.option_target import HeldOption
from worker.errors import Refused
from worker.ib.connection import IBConnection
from worker.ib.contracts import ContractBook
from worker.ib.position_reader import PositionReader
from worker.ib.translate import num

#: a chain is listed again after this long (IB adds weeklies and strikes during the day)
CHAIN_CACHE_SECONDS = 3600.0
CHAIN_TIMEOUT = 10.0
QUOTE_TIMEOUT = 3.0
_POLL = 0.01


def _expiry(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()


class OptionDesk:
    """One per connection; every method runs on the IB loop."""

    def __init__(self, conn: IBConnection, contracts: ContractBook, positions: PositionReader) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.contracts = contracts
        self.positions = positions
        self._chains: dict[int, tuple[float, OptionChain, str]] = {}

    async def chain(self, underlying: Instrument) -> tuple[OptionChain, str]:
        """The underlying's chain as IB lists it on SMART (expiries and strikes), and its trading
        class (kept :data:`CHAIN_CACHE_SECONDS`)."""
        cached = self._chains.get(underlying.con_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        self.conn.require_connected()
        answers = await asyncio.wait_for(
            self.ib.reqSecDefOptParamsAsync(underlying.symbol, "", underlying.sec_type, underlying.con_id),
            CHAIN_TIMEOUT,
        )
        smart = [a for a in answers if a.exchange == "SMART"] or list(answers)
        if not smart or not smart[0].expirations:
            raise Refused(f"IB lists no options on {underlying.symbol}")
        listed = smart[0]
        strikes = tuple(sorted({_strike(s) for s in listed.strikes}))
        # IB lists every strike of every expiry together; the chosen one is confirmed by its
        # contract details (a strike an expiry lacks is refused with IB's reason)
        chain = OptionChain(underlying.symbol, {_expiry(e): strikes for e in sorted(listed.expirations)})
        self._chains[underlying.con_id] = (time.monotonic() + CHAIN_CACHE_SECONDS, chain, listed.tradingClass)
        return chain, listed.tradingClass

    async def contract(
        self, symbol: str, expiry: date, strike: Decimal, right: str, trading_class: str = ""
    ) -> Instrument:
        """The option's qualified contract (cached by the contract book)."""
        spec = ContractSpec("OPT", symbol, "SMART", "USD", contract_month=expiry.strftime("%Y%m%d"),
                            strike=strike_text(strike), right=right, trading_class=trading_class)  # fmt: skip
        return (await self.contracts.qualify(spec))[1]

    async def quote(self, con_id: int, greeks: bool = False, timeout: float = QUOTE_TIMEOUT) -> OptionQuote:
        """The option's bid and ask (and model delta when ``greeks``), from a short subscription:
        waits for both sides (and the delta) up to ``timeout``, then returns what came."""
        self.conn.require_connected()
        contract = self.contracts.orderable(con_id)
        old = self.ib.ticker(contract)
        if old is not None and old in self.ib.wrapper.ticker2ReqId["mktData"]:
            return await self._read(old, greeks, timeout)  # a stream is open already (a kept quote line)
        if old is not None:  # ib_async keeps a cancelled subscription's last quote: never read it again
            old.bid = old.ask = math.nan
            old.modelGreeks = None
        ticker = self.ib.reqMktData(contract, "", False, False)
        try:
            return await self._read(ticker, greeks, timeout)
        finally:
            self.ib.cancelMktData(contract)

    @staticmethod
    async def _read(ticker: Any, greeks: bool, timeout: float) -> OptionQuote:
        """The ticker's bid and ask (and delta) once both came, or what came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bid, ask = _side(ticker.bid), _side(ticker.ask)
            if bid is not None and ask is not None and (not greeks or _delta(ticker) is not None):
                break
            await asyncio.sleep(_POLL)
        return OptionQuote(_side(ticker.bid), _side(ticker.ask), _delta(ticker))

    async def quotes(self, contracts: Sequence[Instrument], greeks: bool) -> list[OptionQuote]:
        """:meth:`quote` for several options at once."""
        return list(await asyncio.gather(*(self.quote(c.con_id, greeks) for c in contracts)))

    def held(self, symbol: str) -> list[HeldOption]:
        """The options on ``symbol`` our account holds: IB's report plus our executions since."""
        return [p.held for p in self.positions_held(symbol)]

    def positions_held(self, symbol: str | None = None) -> list[OptionPosition]:
        """The options our account holds (on ``symbol``, or on every underlying), each with its
        underlying's symbol: IB's report plus our executions since."""
        account = self.conn.account or ""
        found: dict[int, Contract] = {}
        for pos in self.ib.positions(account):
            if pos.contract.secType == "OPT" and symbol in (None, pos.contract.symbol):
                found[pos.contract.conId] = pos.contract
        for con_id in self.positions.ledger.con_ids(account):
            contract = self.contracts.qualified(con_id)
            if contract is not None and contract.secType == "OPT" and symbol in (None, contract.symbol):
                found.setdefault(con_id, contract)
        held = []
        for con_id, contract in sorted(found.items()):
            position = self.positions.view(con_id).position
            if position:
                option = HeldOption(con_id, "C" if contract.right.upper().startswith("C") else "P",
                                    _expiry(contract.lastTradeDateOrContractMonth),
                                    _strike(contract.strike), position, contract.localSymbol or "")  # fmt: skip
                held.append(OptionPosition(contract.symbol, option))
        return held


def _strike(value: float) -> Decimal:
    """IB's strike (a float) as the Decimal it names: 190.0 is 190, 187.5 is 187.5."""
    number = Decimal(str(value))
    return number.to_integral_value() if number == number.to_integral_value() else number.normalize()


def _side(value: float | None) -> Decimal | None:
    """A bid or ask IB sent (-1 and unset: none)."""
    number = num(value)
    return number if number is not None and number >= 0 else None


def _delta(ticker: object) -> Decimal | None:
    greeks = getattr(ticker, "modelGreeks", None)
    return None if greeks is None else num(greeks.delta)
