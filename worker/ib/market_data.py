"""Reference prices from IB's market data, with the fall back to delayed data a real account needs.

IB answers a market-data request according to the connection's market data type
(``reqMarketDataType``: 1 live, 2 frozen, 3 delayed, 4 delayed frozen), which the worker sets from
``IB_MARKET_DATA_TYPE`` after every (re)connect (:meth:`IBConnection._supervise`). An account
without a live API subscription for the contract answers a live (or frozen) request with an error
and no ticks:

* 354 "Requested market data is not subscribed" (often followed by "Delayed market data is
  available"),
* 10089 "Requested market data requires additional subscription for API ... Delayed market data is
  available",
* 10167 "Requested market data is not subscribed. Displaying delayed market data." (a warning in
  ib_async and ib_insync: the delayed data then follows on its own).

On those the snapshot is asked again under the delayed type (3; 4 when frozen was asked) and the
connection is put back to the configured type right after, so no other request is affected. A
delayed answer carries the delayed tick types (66 bid, 67 ask, 68 last, 75 close ...), which
ib_async files under the same ``bid`` / ``ask`` / ``last`` / ``close`` fields, and IB's
``marketDataType`` message tells which type produced them (``Ticker.marketDataType``). The
:class:`Quote` says which type gave the price, which was asked, and why it differs; without any
price it says why (no subscription, no delayed data, no answer), for the refusal.

Runs on the IB loop (called from :class:`~worker.ib.trading.Trading`).
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract, Ticker

from worker.decision.quote import Quote

DATA_TYPES = {"live": 1, "frozen": 2, "delayed": 3, "delayed-frozen": 4}
TYPE_NAMES = {number: name for name, number in DATA_TYPES.items()}
# IB's answers meaning "no live subscription for this, delayed data exists": ask for delayed data
FALLBACK_CODES = frozenset({354, 10089, 10167})
# every market-data refusal worth naming in a reason (10168: delayed data not enabled either;
# 10090: part of the data not subscribed; 10197: no data during a competing live session)
MARKET_DATA_CODES = FALLBACK_CODES | {10090, 10168, 10186, 10197}


def forget_last_snapshot(ticker: Ticker | None) -> None:
    """ib_async keeps ONE Ticker per contract for the whole connection and a new snapshot fills
    the same object: a snapshot that IB refuses (354, 10168) or that times out would otherwise
    hand back the PREVIOUS snapshot's prices, possibly hours old, as if they were fresh. The
    prices read here are blanked before each request, so only what IB sends now counts."""
    if ticker is None:
        return
    for name in ("last", "bid", "ask", "close"):
        setattr(ticker, name, math.nan)
    ticker.marketDataType = 0


def fallback_type(requested: int) -> int | None:
    """The delayed type to ask for when ``requested`` is refused (None: already delayed)."""
    return {1: 3, 2: 4}.get(requested)


def price_of(ticker: Ticker | None) -> tuple[Decimal | None, str]:
    """Pure: last, else midpoint, else close (positive, not NaN), with its name."""
    if ticker is None:
        return None, ""
    for name, value in (("last", ticker.last), ("midpoint", ticker.midpoint()), ("close", ticker.close)):
        if value is not None and not math.isnan(value) and value > 0:
            return Decimal(str(value)), name
    return None, ""


def describe_errors(errors: list[tuple[int, str]]) -> str:
    """``IB error 10089 Requested market data requires ...`` (the first of each code)."""
    seen: dict[int, str] = {}
    for code, text in errors:
        seen.setdefault(code, " ".join(text.split()))
    return "; ".join(f"IB error {code} {text}" for code, text in seen.items())


class MarketData:
    """Snapshots for one IB connection under the configured data type, with the delayed fall back."""

    def __init__(self, ib: IB, requested: str = "live", timeout: float = 3.0) -> None:
        if requested not in DATA_TYPES:
            raise ValueError(f"unknown market data type {requested!r}")
        self.ib = ib
        self.requested = requested
        self.timeout = timeout

    async def quote(self, contract: Contract, timeout: float | None = None) -> Quote:
        """A reference price for ``contract`` (ConnectionError propagates: the job waits for IB)."""
        wait = self.timeout if timeout is None else timeout
        asked = DATA_TYPES[self.requested]
        ticker, errors, timed_out = await self._snapshot(contract, wait)
        price, name = price_of(ticker)
        if price is not None:
            return self._quote(price, name, ticker, asked, describe_errors(errors))
        delayed = fallback_type(asked)
        refused = [e for e in errors if e[0] in FALLBACK_CODES]
        if delayed is None or not refused:
            why = describe_errors(errors) or (
                f"no answer within {wait:g}s" if timed_out else "IB sent no price"
            )
            return Quote(None, f"no market data: {why}", "", self.requested, why)
        try:
            self.ib.reqMarketDataType(delayed)
            ticker, more, timed_out = await self._snapshot(contract, wait)
        finally:
            if self.ib.isConnected():
                self.ib.reqMarketDataType(asked)  # the connection keeps the configured type
        first = describe_errors(refused)
        price, name = price_of(ticker)
        if price is not None:
            return self._quote(price, name, ticker, delayed, f"{first}; {TYPE_NAMES[delayed]} data used")
        then = describe_errors(more) or (f"no answer within {wait:g}s" if timed_out else "no price either")
        why = f"{first}; {TYPE_NAMES[delayed]} data: {then}"
        return Quote(None, f"no market data: {why}", "", self.requested, why)

    def _quote(self, price: Decimal, name: str, ticker: Ticker | None, asked: int, why: str) -> Quote:
        # IB's marketDataType message says which type delivered the ticks (live data is sent
        # whatever was asked when the account has it)
        delivered = getattr(ticker, "marketDataType", None) or asked
        data_type = TYPE_NAMES.get(int(delivered), TYPE_NAMES[asked])
        suffix = "" if data_type == "live" else f" ({data_type})"
        return Quote(price, f"IB {name} price{suffix}", data_type, self.requested, why)

    async def _snapshot(
        self, contract: Contract, timeout: float
    ) -> tuple[Ticker | None, list[tuple[int, str]], bool]:
        """One snapshot: the ticker (None on timeout), IB's market-data errors for the contract, and
        whether it timed out. A refused request ends at once (ib_async ends it on the error)."""
        errors: list[tuple[int, str]] = []
        con_id = contract.conId
        forget_last_snapshot(self.ib.ticker(contract))

        def collect(req_id: int, code: int, text: str, about: Any = None) -> None:
            if code in MARKET_DATA_CODES and (about is None or not con_id or about.conId == con_id):
                errors.append((code, text))

        self.ib.errorEvent += collect
        try:
            tickers = await asyncio.wait_for(self.ib.reqTickersAsync(contract), timeout)
        except TimeoutError:
            return None, errors, True
        finally:
            self.ib.errorEvent -= collect
        return (tickers[0] if tickers else None), errors, False
