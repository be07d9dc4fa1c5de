"""The stream book: market-data subscriptions kept open for the contracts the worker trades, so a
warm contract's reference price is read at once instead of asked of IB on every entry.

* A subscription (``reqMktData`` without snapshot) is opened at a contract's first quote
  (worker/ib/market_data.py) and kept; at most ``lines`` are open (``MARKET_DATA_LINES``: IB
  accounts have 100 market-data lines by default, shared with TWS and other tools), the least
  recently used one is cancelled to make room.
* A stream's price is used only while :func:`unusable` finds nothing against it: the subscription
  is open at IB (no error ended it, the connection did not drop), no outage since it was opened
  (IB's 1100, or 2103 "market data farm connection is broken"), it was opened under the
  ``IB_MARKET_DATA_TYPE`` in force, it has a price, and its last update from IB is at most
  ``max_age`` seconds old (``MARKET_DATA_MAX_AGE_SECONDS``). IB sends only changes, so a quiet
  market sends nothing for a while on a healthy subscription: the limit is a backstop against a
  subscription that stopped without IB saying so, not a measure of the market. Anything else asks
  IB afresh (a new subscription whose first round of ticks is IB's snapshot of the moment).
* After a reconnect (ib_async starts afresh: every subscription is gone) and after IB's 1101
  ("restored, data lost") and 1102 ("restored, data maintained": the prices of the outage were
  never sent) every stream is opened again, in the background; after 2104 ("market data farm
  connection is OK") the streams an outage interrupted are.

Runs on the IB loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ib_async import IB, Contract, Ticker

from worker.decision.quote import Quote
from worker.ib.market_ticks import MarketRequest, price_of

log = logging.getLogger(__name__)

# IB's notices (request id -1) that concern every stream
CONNECTIVITY_LOST, RESTORED_DATA_LOST, RESTORED_DATA_KEPT = 1100, 1101, 1102
FARM_BROKEN, FARM_OK = 2103, 2104
DEFAULT_MAX_AGE = 300.0  # MARKET_DATA_MAX_AGE_SECONDS

Renew = Callable[[Contract], Coroutine[Any, Any, Quote]]


@dataclass(frozen=True)
class StreamView:
    """What decides whether a stream's price may be used (plain values, for :func:`unusable`)."""

    alive: bool  # open at IB
    ended_why: str  # IB's error that ended it ("" when none)
    interrupted: str  # the outage notice since it was opened ("" when none)
    requested: int  # IB_MARKET_DATA_TYPE it was opened under
    priced: bool  # the Ticker has a usable price
    last_update: float | None  # clock time of its last update from IB (None: none yet)


def unusable(view: StreamView, now: float, max_age: float, requested: int) -> str:
    """Pure: why the stream's price may NOT be used now ("" when it may)."""
    if not view.alive:
        return f"ended ({view.ended_why})" if view.ended_why else "not open at IB"
    if view.interrupted:
        return f"interrupted ({view.interrupted})"
    if view.requested != requested:
        return f"opened under market data type {view.requested}, {requested} is asked"
    if not view.priced or view.last_update is None:
        return "no price yet"
    age = now - view.last_update
    if age > max_age:
        return f"last update {age:.0f}s ago (limit {max_age:g}s)"
    return ""


class Stream:
    """One subscription of the book: its request, when IB last updated it, and any outage."""

    def __init__(self, request: MarketRequest, requested: int, clock: Callable[[], float]) -> None:
        self.request = request
        self.requested = requested
        self.clock = clock
        self.interrupted = ""
        self.why = ""  # the fall back that gave its data type (Quote.why)
        self.last_update: float | None = None
        request.ticker.updateEvent += self._updated

    def _updated(self, ticker: Ticker) -> None:
        if self.request.alive:
            self.last_update = self.clock()

    def view(self) -> StreamView:
        errors = "; ".join(f"IB error {code} {text}" for code, text in self.request.errors)
        return StreamView(self.request.alive, errors, self.interrupted, self.requested,
                          price_of(self.request.ticker)[0] is not None, self.last_update)  # fmt: skip

    def close(self, cancel: bool) -> None:
        self.request.ticker.updateEvent -= self._updated
        self.request.close(cancel)


class QuoteStreams:
    """At most ``lines`` market-data subscriptions, least recently used first, for one connection."""

    def __init__(self, ib: IB, lines: int, max_age: float = DEFAULT_MAX_AGE, *, renew: Renew,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if lines < 1:
            raise ValueError("a stream book needs at least one line")
        self.ib, self.lines, self.max_age = ib, lines, max_age
        self.renew = renew  # opens a contract's stream again (with the delayed fall back)
        self.clock = clock
        self.streams: OrderedDict[int, Stream] = OrderedDict()  # conId -> stream, least recent first
        self._opening: dict[int, asyncio.Task[Quote]] = {}  # conId -> the quote opening its stream
        self._lost: list[Contract] = []  # the streams a dropped connection took, to open again
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.connectedEvent += self._on_connected

    # ------------------------------------------------------------------ the hot path

    def read(self, con_id: int, requested: int) -> tuple[Stream, float] | None:
        """The stream and the age of its last update (seconds), when :func:`unusable` finds nothing
        against it; None otherwise (the caller asks IB afresh)."""
        stream = self.streams.get(con_id)
        if stream is None:
            return None
        now = self.clock()
        why = unusable(stream.view(), now, self.max_age, requested)
        if why:
            log.info("market data: the stream of conId %s is not used: %s", con_id, why)
            return None
        self.streams.move_to_end(con_id)
        return stream, now - (stream.last_update or now)

    def opening(self, con_id: int, ask: Callable[[], Coroutine[Any, Any, Quote]]) -> asyncio.Task[Quote]:
        """The task opening ``con_id``'s stream: the one under way, else a new one running ``ask()``
        (a quote on the hot path and a re-subscription share one request)."""
        task = self._opening.get(con_id)
        if task is None or task.done():
            task = asyncio.ensure_future(ask())
            self._opening[con_id] = task
            task.add_done_callback(lambda done: self._opened(con_id, done))
        return task

    def _opened(self, con_id: int, task: asyncio.Task[Quote]) -> None:
        if self._opening.get(con_id) is task:
            del self._opening[con_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.info("market data: opening the stream of conId %s failed: %r", con_id, exc)

    # ------------------------------------------------------------------ opening and closing

    def open(self, contract: Contract, data_type: int, configured: int) -> Stream:
        """A new subscription for ``contract`` under ``data_type`` (its old one cancelled; the least
        recently used cancelled while the book is full). The caller waits for its first price and
        then :meth:`drop`s it when none came."""
        old = self.streams.pop(contract.conId, None)
        if old is not None:
            old.close(cancel=True)
        for con_id in [c for c, s in self.streams.items() if not s.request.alive]:
            self.streams.pop(con_id).close(cancel=False)
        while len(self.streams) >= self.lines:
            con_id, evicted = self.streams.popitem(last=False)
            log.info("market data: %d lines in use (MARKET_DATA_LINES): cancelling the stream of conId %s, "
                     "the least recently used", self.lines, con_id)  # fmt: skip
            evicted.close(cancel=True)
        request = MarketRequest(self.ib, contract, data_type, configured, snapshot=False)
        stream = Stream(request, configured, self.clock)
        self.streams[contract.conId] = stream
        return stream

    def kept(self, stream: Stream, why: str) -> None:
        """The stream had its first price (its last update is now); ``why``: how it came to its data
        type (the delayed fall back), said again with every price read from it."""
        stream.last_update = self.clock()
        stream.why = why

    def drop(self, stream: Stream) -> None:
        """Close ``stream`` (cancelled at IB when still open) and forget it."""
        con_id = stream.request.contract.conId
        if self.streams.get(con_id) is stream:
            del self.streams[con_id]
        stream.close(cancel=True)

    # ------------------------------------------------------------------ IB's events

    def _on_error(self, req_id: int, code: int, text: str, about: Any = None) -> None:
        if req_id not in (-1, 0, None):
            return  # a request's own error: its MarketRequest hears it
        if code in (CONNECTIVITY_LOST, FARM_BROKEN):
            for stream in self.streams.values():
                stream.interrupted = stream.interrupted or f"IB {code} {' '.join(text.split())}"
        elif code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            self._reopen(list(self.streams.values()), cancel=code == RESTORED_DATA_KEPT, why=f"IB {code}")
        elif code == FARM_OK:
            self._reopen([s for s in self.streams.values() if s.interrupted], cancel=True, why=f"IB {code}")

    def _reopen(self, streams: list[Stream], cancel: bool, why: str) -> None:
        if not streams:
            return
        log.info("market data: opening %d stream(s) again (%s)", len(streams), why)
        for stream in streams:
            contract = stream.request.contract
            if self.streams.get(contract.conId) is stream:
                del self.streams[contract.conId]
            stream.close(cancel)
            self.opening(contract.conId, lambda contract=contract: self.renew(contract))

    def _on_disconnected(self) -> None:
        """ib_async forgets every subscription with the connection: so does the book, and keeps
        the contracts to subscribe again once connected."""
        for stream in self.streams.values():
            stream.request.end(lost=True)
            stream.close(cancel=False)
            self._lost.append(stream.request.contract)
        self.streams.clear()

    def _on_connected(self) -> None:
        lost, self._lost = self._lost, []
        contracts = list({c.conId: c for c in lost}.values())
        if contracts:
            log.info("market data: subscribing again to %d stream(s) after the reconnect", len(contracts))
        for contract in contracts[-self.lines :]:
            self.opening(contract.conId, lambda contract=contract: self.renew(contract))
