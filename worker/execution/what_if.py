"""The margin check of one decision: a cached per-unit figure when one may decide (no round trip),
else IB's what-if for the order the decision names, judged (pure: worker/decision/margin.py,
worker/decision/margin_book.py). The job asks from its own thread; the what-if runs on the IB loop
(``Trading.what_if``) and its answer of a plain opening is learned for the next alert
(worker/execution/margin_cache.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from core.payload import AlertPayload
from worker.decision.look import Look
from worker.decision.margin import MarginAsk, MarginCheck, describe_order, judge, what_if_failed
from worker.decision.margin_book import LINEAR, MarginPolicy, from_cache
from worker.decision.model import Instrument, Leg
from worker.decision.positions import is_exit
from worker.execution.margin_cache import Key, MarginBook
from worker.ib.connection import IBConnection
from worker.ib.placement import WhatIfAnswer
from worker.ib.trading import Trading
from worker.recording.snapshots import AccountFigures

log = logging.getLogger(__name__)

WHAT_IF_NOW = "what-if now"
WHAT_IF_BESIDE = "what-if beside the quote"
FIRST_SIGHT = "first sight of the contract: IB's what-if asked beside the quote"
_SIDE = {"buy": "BUY", "sell": "SELL"}
Learned = tuple[Leg, WhatIfAnswer]  # the order a what-if beside the quote asked about, and IB's answer
Prefetch = asyncio.Task[Learned | None]


class MarginAsker:
    """The margin check for the opening part of a decision (MARGIN_CHECK, its timeout, the cache)."""

    def __init__(
        self,
        conn: IBConnection,
        trading: Trading,
        *,
        enabled: bool = True,
        timeout: float = 5.0,
        book: MarginBook | None = None,
        policy: MarginPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conn = conn
        self.trading = trading
        self.enabled = enabled  # MARGIN_CHECK
        self.timeout = timeout  # MARGIN_CHECK_TIMEOUT_SECONDS
        self.book = book  # None: every check asks IB
        self.policy = policy or MarginPolicy()  # MARGIN_SAFETY_FACTOR, MARGIN_MAX_AGE_SECONDS
        self.clock = clock
        # alert id -> the what-if asked beside its first quote: (account, conId, side), the IB loop's task
        self._learning: dict[str, tuple[Key, Prefetch]] = {}

    def prefetch(self, alert_id: str, payload: AlertPayload, inst: Instrument) -> None:
        """On the IB loop, as the look begins: a stock or future the book has no figure for on the
        alert's side gets its what-if at once, beside the quote. A cold entry then waits for the
        slower of the two instead of one after the other; :meth:`ask` waits for it and decides from
        the figure it learned (exactly as from the background refresh's). Not for an exit, nor for
        a side the position is against (IB would net the what-if with it). Its answer serves only
        this alert: one job runs at a time, so an earlier alert's that no check took is dropped."""
        self._learning = {a: entry for a, entry in self._learning.items() if a == alert_id}
        side, account = _SIDE.get(payload.action), self.trading.account or ""
        if not self.enabled or self.book is None or side is None or is_exit(payload):
            return
        key = (account, inst.con_id, side)
        if inst.sec_type not in LINEAR:
            return
        position = self.trading.position_of(inst.con_id)
        if self.book.figure(*key) is not None or (position < 0 if side == "BUY" else position > 0):
            return
        explicit = payload.quantity if payload.quantity_type in (None, "fixed_quantity") else None
        leg = Leg("entry", side, "MKT", explicit or max(Decimal(1), inst.min_size))
        self._learning[alert_id] = (
            key,
            asyncio.ensure_future(self._learn(key, leg, inst.local_symbol or inst.symbol)),
        )

    async def _learn(self, key: Key, leg: Leg, symbol: str) -> Learned | None:
        account, con_id, _side = key
        try:
            reply = await self.trading.what_if(con_id, leg, self.timeout)
        except Exception as exc:  # noqa: BLE001 - the check asks IB itself, as without it
            log.info("margin: the what-if beside %s's first quote failed (%s)", symbol, exc)
            return None
        assert self.book is not None
        self.book.want(account, con_id, symbol, leg.quantity, now=False)
        self.book.take(account, con_id, leg, reply, describe_order(leg, symbol))
        return leg, reply

    def _await_learning(self, alert_id: str, key: Key) -> tuple[bool, Learned | None]:
        """The job thread waits for the what-if :meth:`prefetch` started for this alert on ``key``:
        whether one was started, and its order and IB's answer (None: it failed or did not answer
        in time)."""
        entry = self._learning.pop(alert_id, None)
        if entry is None or entry[0] != key:
            return False, None
        task = entry[1]

        async def learned() -> Learned | None:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            return task.result() if done else None

        try:
            return True, self.conn.call(learned(), timeout=self.timeout + 5)
        except TimeoutError:
            return True, None

    def ask(self, look: Look, ask: MarginAsk) -> MarginCheck:
        """The check: IB's answer to the what-if asked beside the quote when it was for this very
        order, else approved by a fresh cached figure, else IB's figures for ``ask`` judged against
        the account's AvailableFunds (a what-if that fails or times out is a refusal with IB's
        reason: not knowing the margin is not a yes)."""
        account, con_id = look.account, look.inst.con_id
        figures = _figures(look)
        why = ask.why or "cached figures are off (MARGIN_MAX_AGE_SECONDS=0)"
        if self.book is not None and ask.cached is not None:
            beside, learned = self._await_learning(look.alert_id, (account, con_id, ask.cached.action))
            if learned is not None and _same_order(learned[0], ask.order):
                check = replace(self._judged(learned[1], ask), source=WHAT_IF_BESIDE, why=FIRST_SIGHT)
                if not check.refused:
                    self._reserve(account, check, figures)
                return check
            settled = self._from_book(look, ask, figures)
            if isinstance(settled, MarginCheck):
                self._reserve(account, settled, figures)
                return replace(settled, why=FIRST_SIGHT) if beside else settled
            why = settled
        check = replace(self._what_if(account, con_id, ask), source=WHAT_IF_NOW, why=why)
        if self.book is not None and not check.refused:
            self._reserve(account, check, figures)
        return check

    def at_hand(self, look: Look, ask: MarginAsk) -> MarginCheck | None:
        """The check as :meth:`ask` would settle it from the book alone, without reserving: a fresh
        cached figure that approves. None when IB must be asked or awaited (no figure, an old one,
        a what-if beside this alert's look) or when the figure refuses (:meth:`ask` words that):
        the express path (worker/decision/express.py) then leaves the check to the job thread."""
        if self.book is None or ask.cached is None or look.alert_id in self._learning:
            return None
        settled = self._from_book(look, ask, _figures(look))
        return settled if isinstance(settled, MarginCheck) and not settled.refused else None

    def reserve(self, look: Look, check: MarginCheck) -> None:
        """What :meth:`at_hand` approved, held against AvailableFunds as :meth:`ask` holds it."""
        self._reserve(look.account, check, _figures(look))

    def _from_book(self, look: Look, ask: MarginAsk, figures: AccountFigures) -> MarginCheck | str:
        """The check the cached per-unit figure settles (net of what is held for alerts on their
        way), or why it cannot (worker/decision/margin_book.py ``from_cache``)."""
        assert self.book is not None and ask.cached is not None
        unit = self.book.figure(look.account, look.inst.con_id, ask.cached.action)
        held = self.book.reserved(look.account, figures.available_funds)
        return from_cache(ask, unit, figures, held, self.clock(), self.policy)

    def _what_if(self, account: str, con_id: int, ask: MarginAsk) -> MarginCheck:
        """IB's what-if for ``ask.order`` (one round trip), judged; a plain opening's answer is learned."""
        try:
            reply = self.conn.call(
                self.trading.what_if(con_id, ask.order, self.timeout), timeout=self.timeout + 5
            )
        except TimeoutError:
            return what_if_failed(ask.described, f"no answer within {self.timeout:g}s")
        if self.book is not None and ask.learnable:
            self.book.want(account, con_id, ask.symbol, ask.order.quantity, now=False)
            self.book.take(account, con_id, ask.order, reply, ask.described)
        return self._judged(reply, ask)

    def _judged(self, reply: WhatIfAnswer, ask: MarginAsk) -> MarginCheck:
        if reply.answer is None:
            why = "; ".join(f"IB error {code} {text}" for code, text in reply.errors)
            return what_if_failed(ask.described, why or f"no answer within {self.timeout:g}s")
        return judge(reply.answer, reply.figures, ask.described)

    def _reserve(self, account: str, check: MarginCheck, figures: AccountFigures) -> None:
        """What this check approved counts against AvailableFunds until IB reports it again."""
        assert self.book is not None
        shown = check.figures
        needs = (
            check.per_unit.needs
            if check.per_unit is not None
            else shown.init_margin_change
            if shown
            else None
        )
        if needs is not None:
            self.book.reserve(account, Decimal(needs), figures.available_funds)


def _figures(look: Look) -> AccountFigures:
    """The account's figures the look carries (none yet: an empty set for the account)."""
    return look.figures if look.figures is not None else AccountFigures(account=look.account)


def _same_order(asked: Leg, order: Leg) -> bool:
    """The what-if beside the quote was for this very order (a market order of that side and size)."""
    return (asked.action, asked.quantity, asked.order_type) == (
        order.action,
        order.quantity,
        order.order_type,
    )
