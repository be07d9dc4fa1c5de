"""Per-unit margin figures kept warm in the background, on the IB loop (issue 18).

A task on the IB loop, never in an alert's way. Once IB is ready it:

* learns, at start-up, both sides of every stock and future the files name (the risk file's
  ``allow`` lists and the symbol map's tickers; names added by a SIGHUP reload are learned at the
  next tick);
* asks again a few seconds after a fill on a contract it knows (at most once per
  :data:`AFTER_FILL_GAP` seconds per contract and side);
* asks again every figure last asked MARGIN_REFRESH_SECONDS ago.

Each ask is one what-if of a plain opening (``BUY 1 AAPL MKT``, or the quantity the figure was
last learned from), learned by worker/execution/margin_cache.py. It waits while a job runs or the
order pacer is half full, so it never takes an alert's place in IB's message budget, and it skips
a side the position is against (IB would net the what-if with the position: no per-unit figure).
A figure whose refresh fails or comes back broken is forgotten: the next alert asks IB itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal

from config.settings import Settings
from core.risk_file import RiskFile
from worker.contracts.symbol_map import SymbolMap, SymbolResolver
from worker.contracts.tickers import ContractSpec
from worker.decision.margin import describe_order
from worker.decision.margin_book import LINEAR, MarginPolicy
from worker.decision.model import Leg
from worker.execution.margin_cache import Key, MarginBook
from worker.execution.what_if import MarginAsker
from worker.ib.connection import IBConnection, Watcher
from worker.ib.trading import Trading

log = logging.getLogger(__name__)

AFTER_FILL_SETTLE = 2.0  # seconds without a fill on the contract before it is asked again
AFTER_FILL_GAP = 30.0  # at most one after-fill refresh per contract and side this often
TICK = 1.0


def margin_parts(settings: Settings, conn: IBConnection, trading: Trading, symbols: SymbolResolver,
                 risk_file: Callable[[], RiskFile], *, busy: Callable[[], bool]) -> tuple[MarginAsker, MarginRefresher]:  # fmt: skip
    """The margin check and its background refresh, sharing one book (MARGIN_MAX_AGE_SECONDS=0:
    no book, every entry asks IB as before issue 18)."""
    book = MarginBook()
    policy = MarginPolicy(Decimal(str(settings.margin_safety_factor)), settings.margin_max_age_seconds)
    asker = MarginAsker(conn, trading, enabled=settings.margin_check, timeout=settings.margin_check_timeout_seconds,
                        book=book if settings.margin_max_age_seconds > 0 else None, policy=policy)  # fmt: skip
    refresher = MarginRefresher(conn, trading, book, names=lambda: named_tickers(risk_file(), symbols.map),
                                resolve=symbols.resolve, every=settings.margin_refresh_seconds,
                                timeout=settings.margin_check_timeout_seconds, busy=busy)  # fmt: skip
    return asker, refresher


def named_tickers(risk_file: RiskFile, symbol_map: SymbolMap) -> list[str]:
    """The tickers the files name: every ``allow`` list of the risk file, the symbol map's keys."""
    sections = [risk_file.defaults, *risk_file.strategies.values(), *risk_file.accounts.values()]
    allowed = [symbol for section in sections for symbol in section.get("allow") or ()]
    return list(dict.fromkeys([*allowed, *symbol_map.overrides]))


class MarginRefresher:
    """The background refresh of the margin book (start it once the worker serves)."""

    def __init__(
        self,
        conn: IBConnection,
        trading: Trading,
        book: MarginBook,
        *,
        names: Callable[[], Iterable[str]],
        resolve: Callable[[str], ContractSpec],
        every: float,
        timeout: float,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.conn = conn
        self.trading = trading
        self.book = book
        self.names = names  # the tickers the files name now (read at every tick)
        self.resolve = resolve  # ticker -> contract (the symbol map's resolver)
        self.every = every  # MARGIN_REFRESH_SECONDS
        self.timeout = timeout  # MARGIN_CHECK_TIMEOUT_SECONDS
        self.busy = busy  # a job is running: wait
        self._named: set[str] = set()
        self._filled: dict[int, float] = {}  # conId -> its last fill (the book's clock)
        self._task: asyncio.Task[None] | None = None
        self.asked = 0  # what-ifs sent (logs, tests)

    def start(self) -> None:
        self.conn.call_soon(self._spawn)

    def _spawn(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def on_fill(self, con_id: int) -> None:
        """A fill on ``con_id`` (on the IB loop): ask again once the contract is quiet."""
        self._filled[con_id] = self.book.clock()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if not self.conn.ready or not self.trading.account:
                continue
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - the refresh is an optimisation: it never stops the worker
                log.exception("margin refresh failed; trying again")

    async def tick(self) -> None:
        """One round: new names learned, contracts quiet after a fill asked again, then what is due."""
        if not await self._learn_names():
            return
        now = self.book.clock()
        quiet = {con_id: at for con_id, at in self._filled.items() if now - at >= AFTER_FILL_SETTLE}
        if quiet:
            if not await self._ask_all(self.book.due(AFTER_FILL_GAP, set(quiet))):
                return
            for con_id, at in quiet.items():
                if self._filled.get(con_id) == at:
                    del self._filled[con_id]
        await self._ask_all(self.book.due(self.every))

    async def _learn_names(self) -> bool:
        """The contracts of names not seen yet into the book (their figures are then due)."""
        account = self.trading.account or ""
        for ticker in self.names():
            if ticker in self._named:
                continue
            if not self._free():
                return False
            self._named.add(ticker)
            try:
                inst = await self.trading.instrument(self.resolve(ticker))
            except Exception as exc:  # noqa: BLE001 - an unknown name is the alert's refusal, not ours
                log.info("margin: %s not learned ahead (%s)", ticker, exc)
                continue
            if inst.sec_type in LINEAR:
                symbol = inst.local_symbol or inst.symbol
                self.book.want(account, inst.con_id, symbol, max(Decimal(1), inst.min_size), now=True)
        return True

    async def _ask_all(self, due: list[tuple[Key, Decimal, str]]) -> bool:
        for key, quantity, symbol in due:
            if not self._free():
                return False
            await self._ask(key, quantity, symbol)
        return True

    async def _ask(self, key: Key, quantity: Decimal, symbol: str) -> None:
        """One what-if of a plain opening, learned (or the figure forgotten)."""
        account, con_id, side = key
        if account != (self.trading.account or "") or _against(self.trading.position_of(con_id), side):
            self.book.asked(key)  # another account's, or IB would net it with the position
            return
        leg = Leg("entry", side, "MKT", quantity)
        self.asked += 1
        try:
            reply = await self.trading.what_if(con_id, leg, self.timeout)
        except Exception as exc:  # noqa: BLE001 - IB went away: the figure ages, the alerts ask
            log.info("margin: refresh of %s %s not asked (%s)", side, symbol or con_id, exc)
            self.book.asked(key)
            return
        if _against(self.trading.position_of(con_id), side):  # a fill came in between
            self.book.asked(key)
            return
        unit = self.book.take(account, con_id, leg, reply, describe_order(leg, symbol or str(con_id)))
        log.debug("margin: %s %s per unit %s", side, symbol or con_id, unit.initial if unit else "forgotten")

    def _free(self) -> bool:
        """IB ready, no job running, the order pacer under half full: an ask takes nobody's turn."""
        pacer = self.conn.pacer
        return self.conn.ready and not self.busy() and pacer.recent() < pacer.limit // 2


def _against(position: Decimal, side: str) -> bool:
    return position < 0 if side == "BUY" else position > 0


class FillTap:
    """The connection's watcher (the guard) with the margin refresh hearing fills too."""

    def __init__(self, inner: Watcher, refresher: MarginRefresher) -> None:
        self.inner = inner
        self.refresher = refresher

    def on_fill(self, con_id: int) -> None:
        self.inner.on_fill(con_id)
        self.refresher.on_fill(con_id)

    def on_position(self, con_id: int) -> None:
        self.inner.on_position(con_id)

    def on_order_ended(self, con_id: int, order_ref: str, status: str) -> None:
        self.inner.on_order_ended(con_id, order_ref, status)

    def on_reconciled(self) -> None:
        self.inner.on_reconciled()
