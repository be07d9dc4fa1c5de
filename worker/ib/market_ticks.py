"""One market-data request (``reqMktData``) and what it gets back: the price a Ticker gives, IB's
errors for the request, and the wait for its first usable price.

Used by the reference prices (worker/ib/market_data.py: a one-off snapshot) and the stream book
(worker/ib/quote_streams.py: a subscription kept open). Both wait for the FIRST usable price, not for
IB's ``tickSnapshotEnd``: IB sends the end of a snapshot 11 seconds after the request when some tick
type never came (a stock without an open, a contract out of session), while the first round of
ticks (bid, ask, last, close) comes at once. ib_async's ``reqTickers`` awaits the end; the requests
here are made with ib_async's own request primitives so the first price ends the wait.

Runs on the IB loop.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract, Ticker

# IB's answers meaning "no live subscription for this, delayed data exists": ask for delayed data
FALLBACK_CODES = frozenset({354, 10089, 10167})
# every market-data refusal worth naming in a reason (10168: delayed data not enabled either;
# 10090: part of the data not subscribed; 10197: no data during a competing live session)
MARKET_DATA_CODES = FALLBACK_CODES | {10090, 10168, 10186, 10197}
# IB's warnings about a request whose data still follows (10167: delayed data shown instead;
# 10090: part of the data not subscribed): every other error for a request ends it
DATA_FOLLOWS = frozenset({10167, 10090})
# IB's first round of a request carries bid, ask and last in a few messages that may be read in
# separate batches: a price from bid/ask (or a close) waits this long for the round's last trade,
# so the reference price (last, else midpoint, else close) does not depend on how the socket split
# the round. A last trade ends the wait at once; a contract with no trade pays this once, when cold.
LAST_TRADE_GRACE_SECONDS = 0.05


def forget_last_snapshot(ticker: Ticker | None) -> None:
    """ib_async keeps ONE Ticker per contract for the whole connection and a new request fills
    the same object: a request that IB refuses (354, 10168) or that times out would otherwise
    hand back the PREVIOUS request's prices, possibly hours old, as if they were fresh. The
    prices read here are blanked before each request, so only what IB sends now counts."""
    if ticker is None:
        return
    for name in ("last", "bid", "ask", "close"):
        setattr(ticker, name, math.nan)
    ticker.marketDataType = 0


def price_of(ticker: Ticker | None) -> tuple[Decimal | None, str]:
    """Pure: last, else midpoint, else close (positive, not NaN), with its name."""
    if ticker is None:
        return None, ""
    for name, value in (("last", ticker.last), ("midpoint", ticker.midpoint()), ("close", ticker.close)):
        if value is not None and not math.isnan(value) and value > 0:
            return Decimal(str(value)), name
    return None, ""


def ends_request(code: int) -> bool:
    """Pure: whether IB's error ``code`` for a market-data request means no (more) data follows."""
    return code not in DATA_FOLLOWS and not 2100 <= code < 2200


class MarketRequest:
    """One ``reqMktData`` under ``data_type`` (the connection's type is switched for this one
    request and put back at once: IB applies the type in force when a request arrives), its
    Ticker, IB's market-data errors for it, and whether IB has ended it."""

    def __init__(self, ib: IB, contract: Contract, data_type: int, configured: int, snapshot: bool) -> None:
        self.ib, self.contract, self.data_type, self.snapshot = ib, contract, data_type, snapshot
        self.errors: list[tuple[int, str]] = []
        self.lost = False  # the connection dropped while it was open
        self.closed = False
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.req_id = ib.client.getReqId()
        # a snapshot is a request of ib_async's (its future ends at tickSnapshotEnd or an error)
        self.snapshot_end = ib.wrapper.startReq(self.req_id, contract) if snapshot else None
        if self.snapshot_end is not None:
            self.snapshot_end.add_done_callback(_retrieve)
        self.ticker = ib.wrapper.startTicker(self.req_id, contract, self._kind)
        forget_last_snapshot(self.ticker)
        ib.errorEvent += self._heard
        if data_type != configured:
            ib.reqMarketDataType(data_type)
        ib.client.reqMktData(self.req_id, contract, "", snapshot, False, [])
        if data_type != configured:
            ib.reqMarketDataType(configured)  # the connection keeps the configured type

    @property
    def _kind(self) -> str:
        return "snapshot" if self.snapshot else "mktData"

    @property
    def alive(self) -> bool:
        """Open at IB: not refused, not ended, not lost with the connection."""
        return not self.ended.done()

    def _heard(self, req_id: int, code: int, text: str, about: Any = None) -> None:
        if req_id != self.req_id:
            return
        if code in MARKET_DATA_CODES:
            self.errors.append((code, text))
        if ends_request(code):
            self.end()

    def end(self, lost: bool = False) -> None:
        """IB ended it (an error), or the connection dropped (``lost``)."""
        self.lost = self.lost or lost
        if not self.ended.done():
            self.ended.set_result(None)

    def close(self, cancel: bool) -> None:
        """Stop listening; ``cancel`` a subscription still open at IB (cancelMktData)."""
        if self.closed:
            return  # ib_async's ticker may serve a newer request for the contract by now
        self.closed = True
        self.ib.errorEvent -= self._heard
        self.ib.wrapper.endTicker(self.ticker, self._kind)
        if cancel and not self.snapshot and self.alive and self.ib.isConnected():
            self.ib.client.cancelMktData(self.req_id)
        self.end()

    async def first_price(self, timeout: float) -> bool:
        """Wait until the Ticker has a usable price (:func:`price_of`), IB ended the request or the
        snapshot, or ``timeout``; returns whether it timed out. ConnectionError when the
        connection dropped meanwhile (the job waits for IB)."""
        timed_out = False
        if price_of(self.ticker)[0] is None:
            timed_out = await self._wait(timeout)
        end = self.snapshot_end
        if self.lost or (end is not None and end.done() and not end.cancelled() and end.exception()):
            raise ConnectionError("IB disconnected during a market-data request")
        return timed_out

    async def _wait(self, timeout: float) -> bool:
        """Wait for a usable price, the request's end, or ``timeout`` (True)."""
        loop = asyncio.get_running_loop()
        priced: asyncio.Future[None] = loop.create_future()
        grace: list[asyncio.TimerHandle] = []

        def settle() -> None:
            if not priced.done():
                priced.set_result(None)

        def update(ticker: Ticker) -> None:
            price, name = price_of(ticker)
            if priced.done() or price is None:
                return
            if name == "last":
                settle()
            elif not grace:  # bid/ask (or a close) came first: the round's last trade is a tick away
                grace.append(loop.call_later(LAST_TRADE_GRACE_SECONDS, settle))

        waits: list[asyncio.Future[Any]] = [priced, self.ended]
        if self.snapshot_end is not None:
            waits.append(self.snapshot_end)
        self.ticker.updateEvent += update
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.ticker.updateEvent -= update
            priced.cancel()
            for handle in grace:
                handle.cancel()
        return not done


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A snapshot's end may fail after the wait (the connection drops before tickSnapshotEnd):
    its exception is read here so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()
