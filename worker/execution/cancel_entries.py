"""``action: cancel``: tv2ib's resting entry orders on the contract (their dormant bracket children
go with them; with ``optionType``, on every option of the underlying); working exits and the
position are left alone. The alert ends ``cancelled`` naming what was cancelled."""

from __future__ import annotations

from core.models import AlertStatus
from worker.contracts.tickers import ContractSpec
from worker.decision.stored import StoredDecision
from worker.execution.alert_job import AlertJob
from worker.execution.job_writes import JobWrites
from worker.ib import IBConnection, Trading
from worker.recording.snapshots import OrderSnapshot


class EntryCanceller:
    """Runs ``cancel`` alerts (one per worker)."""

    def __init__(self, conn: IBConnection, trading: Trading, writes: JobWrites, timeout: float) -> None:
        self.conn = conn
        self.trading = trading
        self.writes = writes
        self.timeout = timeout

    def run(self, job: AlertJob, spec: ContractSpec, rehearsal: str | None) -> str:
        """Cancel and await IB's confirmations; the final state."""
        if rehearsal:  # test (the alert) / dry_run (risk file): cancels nothing either
            message = f"{rehearsal}: would cancel tv2ib's working entry orders for {job.payload.ticker}"
            self.writes.without_order(job.alert_id, StoredDecision("cancel", dry_run=True), message)
            return AlertStatus.CANCELLED.value

        async def cancel() -> list[OrderSnapshot]:
            options = job.payload.option_type is not None  # the entries on the underlying's options
            return await self.trading.cancel_and_wait(await self.trading.entries_to_cancel(spec, options))

        cancelled = self.conn.call(cancel(), timeout=self.timeout)
        message = f"cancel: cancelled {len(cancelled)} working entry order(s) for {job.payload.ticker}"
        decision = StoredDecision("cancel", cancelled=tuple(c.order_ref for c in cancelled))
        self.writes.without_order(job.alert_id, decision, message)
        return AlertStatus.CANCELLED.value
