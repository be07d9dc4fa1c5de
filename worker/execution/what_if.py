"""The margin check's round trip: IB's what-if for the order the decision names, judged (pure,
worker/decision/margin.py). The job asks from its own thread; the what-if runs on the IB loop
(``Trading.what_if``). Issue 18's cached per-unit margins replace this round trip on the hot path.
"""

from __future__ import annotations

from worker.decision.margin import MarginAsk, MarginCheck, judge, what_if_failed
from worker.ib.connection import IBConnection
from worker.ib.trading import Trading


class MarginAsker:
    """Asks IB's what-if for the opening part of a decision (MARGIN_CHECK, its timeout)."""

    def __init__(
        self, conn: IBConnection, trading: Trading, *, enabled: bool = True, timeout: float = 5.0
    ) -> None:
        self.conn = conn
        self.trading = trading
        self.enabled = enabled  # MARGIN_CHECK
        self.timeout = timeout  # MARGIN_CHECK_TIMEOUT_SECONDS

    def ask(self, con_id: int, ask: MarginAsk) -> MarginCheck:
        """IB's figures for ``ask`` judged against the account's AvailableFunds; a what-if that
        fails or times out is a refusal with IB's reason (not knowing the margin is not a yes)."""
        try:
            reply = self.conn.call(
                self.trading.what_if(con_id, ask.order, self.timeout), timeout=self.timeout + 5
            )
        except TimeoutError:
            return what_if_failed(ask.described, f"no answer within {self.timeout:g}s")
        if reply.answer is None:
            why = "; ".join(f"IB error {code} {text}" for code, text in reply.errors)
            return what_if_failed(ask.described, why or f"no answer within {self.timeout:g}s")
        return judge(reply.answer, reply.figures, ask.described)
