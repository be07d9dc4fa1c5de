"""The margin check of one decision: a cached per-unit figure when one may decide (no round trip),
else IB's what-if for the order the decision names, judged (pure: worker/decision/margin.py,
worker/decision/margin_book.py). The job asks from its own thread; the what-if runs on the IB loop
(``Trading.what_if``) and its answer of a plain opening is learned for the next alert
(worker/execution/margin_cache.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from worker.decision.look import Look
from worker.decision.margin import MarginAsk, MarginCheck, judge, what_if_failed
from worker.decision.margin_book import MarginPolicy, from_cache
from worker.execution.margin_cache import MarginBook
from worker.ib.connection import IBConnection
from worker.ib.trading import Trading
from worker.recording.snapshots import AccountFigures

WHAT_IF_NOW = "what-if now"


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

    def ask(self, look: Look, ask: MarginAsk) -> MarginCheck:
        """The check: approved by a fresh cached figure, else IB's figures for ``ask`` judged
        against the account's AvailableFunds (a what-if that fails or times out is a refusal with
        IB's reason: not knowing the margin is not a yes)."""
        account, con_id = look.account, look.inst.con_id
        figures = look.figures if look.figures is not None else AccountFigures(account=account)
        why = ask.why or "cached figures are off (MARGIN_MAX_AGE_SECONDS=0)"
        if self.book is not None and ask.cached is not None:
            unit = self.book.figure(account, con_id, ask.cached.action)
            held = self.book.reserved(account, figures.available_funds)
            settled = from_cache(ask, unit, figures, held, self.clock(), self.policy)
            if isinstance(settled, MarginCheck):
                self._reserve(account, settled, figures)
                return settled
            why = settled
        check = replace(self._what_if(account, con_id, ask), source=WHAT_IF_NOW, why=why)
        if self.book is not None and not check.refused:
            self._reserve(account, check, figures)
        return check

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
