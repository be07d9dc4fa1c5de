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

On those the request is made again under the delayed type (3; 4 when frozen was asked), the
connection switched to it for that one request and put back at once, so no other request is
affected. A delayed answer carries the delayed tick types (66 bid, 67 ask, 68 last, 75 close ...),
which ib_async files under the same ``bid`` / ``ask`` / ``last`` / ``close`` fields, and IB's
``marketDataType`` message tells which type produced them (``Ticker.marketDataType``). The
:class:`Quote` says which type gave the price, which was asked, and why it differs; without any
price it says why (no subscription, no delayed data, no answer), for the refusal.

Where the price comes from (``MARKET_DATA_LINES``): with lines, a contract's first quote opens a
subscription that stays open (worker/ib/quote_streams.py) and later quotes read it at once
(``origin`` ``stream``); without, every quote is a one-off snapshot. Either way a request is
answered by its first usable price (worker/ib/market_ticks.py), never after IB's snapshot end.

Runs on the IB loop (called from :class:`~worker.ib.trading.Trading`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ib_async import IB, Contract, Ticker

from worker.decision.connectivity import classify
from worker.decision.quote import Quote
from worker.ib.market_ticks import FALLBACK_CODES, MarketRequest, price_of
from worker.ib.quote_streams import DEFAULT_MAX_AGE, QuoteStreams, Stream

DATA_TYPES = {"live": 1, "frozen": 2, "delayed": 3, "delayed-frozen": 4}
TYPE_NAMES = {number: name for name, number in DATA_TYPES.items()}


def fallback_type(requested: int) -> int | None:
    """The delayed type to ask for when ``requested`` is refused (None: already delayed)."""
    return {1: 3, 2: 4}.get(requested)


def describe_errors(errors: list[tuple[int, str]]) -> str:
    """``IB error 10089 Requested market data requires ...`` (the first of each code)."""
    seen: dict[int, str] = {}
    for code, text in errors:
        seen.setdefault(code, " ".join(text.split()))
    return "; ".join(f"IB error {code} {text}" for code, text in seen.items())


class FarmWatch:
    """Which of IB's data farms said they are broken (2103 / 2105 / 2157) and not yet OK again
    (2104 / 2106 / 2158). Data only: the connection stays ready; a price that does not come while
    the market-data farm is down is refused naming it."""

    def __init__(self, ib: IB) -> None:
        self.broken: dict[str, str] = {}  # farm name -> IB's message
        ib.errorEvent += self._on_error

    def _on_error(self, req_id: int, code: int, text: str, about: object = None) -> None:
        notice = classify(code, text)
        if notice.kind == "farm_broken":
            self.broken[notice.farm] = f"IB {code} {' '.join(text.split())}"
        elif notice.kind == "farm_ok":
            self.broken.pop(notice.farm, None)

    def market_data_down(self) -> str:
        """IB's message while the market-data farm is broken, else ""."""
        return self.broken.get("market data", "")


@dataclass
class Answer:
    """What one request got: its Ticker, IB's market-data errors, whether it timed out, and the
    stream it opened (None: a snapshot)."""

    ticker: Ticker
    errors: list[tuple[int, str]]
    timed_out: bool
    stream: Stream | None = None


class MarketData:
    """Reference prices for one IB connection under the configured data type, with the delayed
    fall back; from kept subscriptions when ``lines`` > 0, else from snapshots."""

    def __init__(self, ib: IB, requested: str = "live", timeout: float = 3.0, *, lines: int = 0,
                 max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if requested not in DATA_TYPES:
            raise ValueError(f"unknown market data type {requested!r}")
        self.ib = ib
        self.requested = requested
        self.timeout = timeout
        self.farms = FarmWatch(ib)
        self.streams = (
            None if lines <= 0 else QuoteStreams(ib, lines, max_age, renew=self._renew, clock=clock)
        )

    async def quote(self, contract: Contract, timeout: float | None = None) -> Quote:
        """A reference price for ``contract`` (ConnectionError propagates: the job waits for IB)."""
        wait = self.timeout if timeout is None else timeout
        streams = self.streams
        if streams is None:
            return await self._ask(contract, wait)
        kept = self.kept_quote(contract.conId)
        if kept is not None:
            return kept
        # a new subscription (or the one being opened, e.g. after a reconnect), its first price awaited
        return await asyncio.shield(streams.opening(contract.conId, lambda: self._ask(contract, wait)))

    def kept_quote(self, con_id: int) -> Quote | None:
        """What :meth:`quote` gives at once from ``con_id``'s kept stream (open, fresh, with a usable
        price); None when it would have to ask IB."""
        streams = self.streams
        if streams is None:
            return None
        asked = DATA_TYPES[self.requested]
        read = streams.read(con_id, asked)
        if read is None:
            return None
        stream, age = read
        price, name = price_of(stream.request.ticker)
        assert price is not None  # read() returns only a stream with a usable price
        return self._quote(price, name, stream.request.ticker, asked, stream.why, "stream", age)

    def at_hand(self, symbol: str, sec_type: str = "STK") -> Decimal | None:
        """``symbol``'s price from its kept stream when that stream's price may be used now
        (:func:`~worker.ib.quote_streams.unusable`), without asking IB; None otherwise."""
        streams = self.streams
        if streams is None:
            return None
        for con_id, stream in list(streams.streams.items()):
            contract = stream.request.contract
            if contract.secType == sec_type and contract.symbol == symbol:
                read = streams.read(con_id, DATA_TYPES[self.requested])
                return None if read is None else price_of(read[0].request.ticker)[0]
        return None

    async def _renew(self, contract: Contract) -> Quote:
        """Open ``contract``'s stream again (after a reconnect or an outage; the stream book's)."""
        return await self._ask(contract, self.timeout)

    async def _ask(self, contract: Contract, wait: float) -> Quote:
        """Ask IB under the configured type, and under the delayed type when that is refused."""
        asked = DATA_TYPES[self.requested]
        first = await self._request(contract, asked, wait)
        price, name = price_of(first.ticker)
        if price is not None:
            return self._kept(
                first, self._quote(price, name, first.ticker, asked, describe_errors(first.errors))
            )
        self._dropped(first)
        delayed = fallback_type(asked)
        refused = [e for e in first.errors if e[0] in FALLBACK_CODES]
        if delayed is None or not refused:
            why = describe_errors(first.errors) or (
                f"no answer within {wait:g}s" if first.timed_out else "IB sent no price"
            )
            if farm := self.farms.market_data_down():
                why = f"the market data farm is down ({farm}); {why}"
            return Quote(None, f"no market data: {why}", "", self.requested, why)
        then = await self._request(contract, delayed, wait)
        reason = describe_errors(refused)
        price, name = price_of(then.ticker)
        if price is not None:
            why = f"{reason}; {TYPE_NAMES[delayed]} data used"
            return self._kept(then, self._quote(price, name, then.ticker, delayed, why))
        self._dropped(then)
        more = describe_errors(then.errors) or (
            f"no answer within {wait:g}s" if then.timed_out else "no price either"
        )
        why = f"{reason}; {TYPE_NAMES[delayed]} data: {more}"
        return Quote(None, f"no market data: {why}", "", self.requested, why)

    def _quote(self, price: Decimal, name: str, ticker: Ticker, asked: int, why: str,
               origin: str = "snapshot", age: float = 0.0) -> Quote:  # fmt: skip
        # IB's marketDataType message says which type delivered the ticks (live data is sent
        # whatever was asked when the account has it)
        delivered = getattr(ticker, "marketDataType", None) or asked
        data_type = TYPE_NAMES.get(int(delivered), TYPE_NAMES[asked])
        suffix = "" if data_type == "live" else f" ({data_type})"
        return Quote(price, f"IB {name} price{suffix}", data_type, self.requested, why, origin, age)

    async def _request(self, contract: Contract, data_type: int, wait: float) -> Answer:
        """One request under ``data_type``, answered by its first usable price (a stream stays open
        until :meth:`_kept` or :meth:`_dropped`)."""
        configured = DATA_TYPES[self.requested]
        if self.streams is None:
            request = MarketRequest(self.ib, contract, data_type, configured, snapshot=True)
            try:
                timed_out = await request.first_price(wait)
            finally:
                request.close(cancel=False)
            return Answer(request.ticker, list(request.errors), timed_out)
        stream = self.streams.open(contract, data_type, configured)
        try:
            timed_out = await stream.request.first_price(wait)
        except BaseException:
            self.streams.drop(stream)
            raise
        return Answer(stream.request.ticker, list(stream.request.errors), timed_out, stream)

    def _kept(self, answer: Answer, quote: Quote) -> Quote:
        if answer.stream is not None and self.streams is not None:
            self.streams.kept(answer.stream, quote.why)
        return quote

    def _dropped(self, answer: Answer) -> None:
        if answer.stream is not None and self.streams is not None:
            self.streams.drop(answer.stream)
