"""A reversal from one option right to the other: the option held is closed first, by an exit
alert of its own, and only once it is flat is the new right chosen and opened.

Why a child alert: a decision acts on one contract (its plan, its legs, its exits). Closing calls
and opening puts are two contracts, so the close is an ``exit`` alert of its own (``parent_id``:
the alert that reverses), run at once on this worker through the usual path (the exits cancelled,
the close sent, followed and recorded, invariant 7 kept by the protocol and the guard), and shown
on the dashboard and in the notices like any alert. The reversing alert then waits until IB (its
report plus our executions) shows the option flat, up to REVERSAL_FILL_TIMEOUT_SECONDS.

Across a crash: a rerun of the reversing alert finds its child by ``parent_id`` and runs it again
(a finished alert only re-reads; a submitted one resumes), or finds the option already flat and
goes straight to the opening.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.ids import new_alert_id
from core.keys import queue_name
from core.models import Alert, AlertStatus, utcnow
from core.payload import AlertPayload
from worker.decision.option_target import HeldOption
from worker.execution.alert_job import AlertJob
from worker.ib import IBConnection, Trading

_POLL = 0.02


class OptionReversal:
    """Closes the option held before a reversal opens the other right (see the module)."""

    def __init__(self, sessions: sessionmaker[Session], conn: IBConnection, trading: Trading,
                 execute: Callable[[str], str], fill_timeout: float) -> None:  # fmt: skip
        self.sessions = sessions
        self.conn = conn
        self.trading = trading
        self.execute = execute  # Executor.execute_alert: the child runs the usual path, on this thread
        self.fill_timeout = fill_timeout

    def close(self, job: AlertJob, held: HeldOption) -> tuple[str, str | None]:
        """Close ``held`` by the child exit alert; ``(child id, None)`` once flat, else the reason
        the reversal stops there (nothing is opened)."""
        child = self._child(job, held)
        status = self.execute(child)
        flat = self.conn.call(self._flat(held.con_id), timeout=self.fill_timeout + 5)
        if flat:
            return child, None
        return child, (
            f"the close of {held.describe()} (alert {child}, {status}) did not leave it flat within "
            f"{self.fill_timeout:g}s: the reversal opened nothing"
        )

    def _child(self, job: AlertJob, held: HeldOption) -> str:
        """The exit alert that closes ``held`` for ``job``: the one a previous run made, else a new
        one (stored queued and run at once here; the relay's grace covers the moment between)."""
        # the option's own (OCC) ticker: the child closes exactly that contract
        ticker = held.local_symbol or job.payload.ticker
        with self.sessions.begin() as session:
            found = session.scalar(
                select(Alert.id)
                .where(Alert.parent_id == job.alert_id, Alert.action == "exit", Alert.ticker == ticker)
                .limit(1)
            )
            if found is not None:
                return found
            payload = AlertPayload(
                ticker=ticker, action="exit", strategy=job.payload.strategy, account=job.payload.account,
                option_type=None if held.local_symbol else ("call" if held.right == "C" else "put"),
            )  # fmt: skip
            now = utcnow()
            child = Alert(id=new_alert_id(), status=AlertStatus.QUEUED.value, received_at=now,
                          payload=payload.to_json(), strategy=payload.strategy, account=payload.account,
                          ticker=payload.ticker, action="exit", queue_name=queue_name(payload.account),
                          enqueued_at=now, parent_id=job.alert_id)  # fmt: skip
            session.add(child)
            return child.id

    async def _flat(self, con_id: int) -> bool:
        """Whether the option is flat, waiting up to the fill timeout (IB loop)."""
        deadline = time.monotonic() + self.fill_timeout
        while self.trading.position_of(con_id):
            if time.monotonic() > deadline:
                return False
            self.trading.require_connected()
            await asyncio.sleep(_POLL)
        return True
