"""IB's positions as tv2ib's decisions read them: the last report plus our executions since.

TWS reports an execution at once and the position it changed a moment later (on a busy gateway a
second or more). This reader feeds ib_async's live executions of our orders and IB's position
reports into the :class:`~worker.decision.ledger.ExecutionLedger` (pure), and answers with its view, so the
executor's plans and the guard's exits (worker/execution/guard.py) decide on one and the same position:
never a report that trails the fill. Runs on the IB loop; the ledger is cleared when the
connection drops (the snapshot after the reconnect is the whole truth).
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from core.models import IB_DONE_STATUSES
from worker.decision.ledger import ExecutionLedger, PositionView
from worker.ib.connection import IBConnection
from worker.ib.translate import num

log = logging.getLogger(__name__)

# how long a decision waits for IB's position to include tv2ib's own market orders and fills
SETTLE_SECONDS = 3.0


class PositionReader:
    """One per connection (``Trading.positions``, worker/ib/trading.py)."""

    def __init__(self, conn: IBConnection) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.ledger = ExecutionLedger()
        self.ib.execDetailsEvent += self._on_execution
        self.ib.positionEvent += self._on_report
        self.ib.disconnectedEvent += self.ledger.reset

    @property
    def account(self) -> str:
        return self.conn.account or ""

    def _on_execution(self, _trade: Any, fill: Any) -> None:
        # ib_async emits execDetailsEvent for live fills of known orders only (not for the
        # reqExecutions replay at connect: the position snapshot covers those)
        execution = fill.execution
        account = execution.acctNumber or self.account
        if self.account and account != self.account:
            return
        shares = num(execution.shares) or Decimal(0)
        signed = shares if execution.side == "BOT" else -shares
        self.ledger.execution(account, fill.contract.conId, execution.execId, signed)

    def _on_report(self, position: Any) -> None:
        if self.account and position.account != self.account:
            return
        self.ledger.report(position.account, position.contract.conId, num(position.position) or Decimal(0))

    def view(self, con_id: int) -> PositionView:
        """Our position in ``con_id``: IB's last position report plus the live executions of our
        orders that arrived after it. A report that trails the fill can then never show a
        position just opened as flat, nor one just closed as still open."""
        return self.ledger.view(self.account, con_id)

    def unsettled(self, con_id: int) -> str:
        """Why the position of ``con_id`` may still move under a decision ('' when it will not):
        one of our market orders on it still working, or executions IB has not reported yet."""
        for trade in self.conn.trade_index.working():
            order = trade.order
            if (trade.contract.conId == con_id and order.orderType == "MKT"
                    and order.orderRef.startswith("tv2ib:")
                    and (not self.account or order.account in ("", self.account))
                    and trade.orderStatus.status not in IB_DONE_STATUSES):  # fmt: skip
                return f"market order {order.orderRef} still working"
        view = self.view(con_id)
        if not view.settled:
            reported = format(view.reported.normalize(), "f")
            return f"IB's report ({reported}) does not show {len(view.unreported)} execution(s) yet"
        return ""

    async def settled(self, con_id: int, wait: float = SETTLE_SECONDS) -> PositionView:
        """:meth:`view` once settled: while one of our market orders on the contract still works,
        or an execution has come that no position report has followed yet, wait (up to ``wait``
        seconds). Alerts run back to back: the one after a market entry must decide on the
        position that entry made (a positionSize burst would otherwise overshoot its targets).
        Past ``wait``: the view as it is (IB's last report PLUS our executions since, never the
        report alone), and a warning."""
        deadline = time.monotonic() + wait
        why = self.unsettled(con_id)
        while why and time.monotonic() < deadline:
            self.conn.require_connected()
            await asyncio.sleep(0.002)
            why = self.unsettled(con_id)
        view = self.view(con_id)
        if why:
            log.warning("position of conId %s not settled after %.1fs (%s): deciding on %s", con_id, wait,
                        why, view)  # fmt: skip
        return view
