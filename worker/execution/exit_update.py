"""``action: update`` at IB: the position's working stop-loss / take-profit moved to the prices the
pure rules give (worker/decision/exit_update.py), the protection record changed with them so the
guard keeps (and re-attaches) the new prices, the alert ended with what moved.

It trades nothing and never waits on a fill: an update moves the exits of what is held. It runs
with the guard kept off the contract (like the protocol's own changes), and each change is
acknowledged by IB before the alert ends. A rerun (SIGKILL) decides again from what IB shows: an
exit already at its new price is not changed twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from decimal import Decimal

from core.models import AlertStatus
from worker.contracts.tickers import ContractSpec
from worker.decision.exit_update import ExitUpdate, plan_update
from worker.decision.model import Instrument
from worker.decision.positions import ExitChange, side_closing
from worker.decision.stored import StoredDecision
from worker.errors import Refused
from worker.execution.alert_job import AlertJob
from worker.execution.guard import Guard
from worker.execution.job_writes import JobWrites
from worker.ib import IBConnection, Trading
from worker.recording.protection import ProtectionSpec


class ExitUpdater:
    """Runs ``update`` alerts (one per worker)."""

    def __init__(self, conn: IBConnection, trading: Trading, guard: Guard | None, writes: JobWrites,
                 timeout: float) -> None:  # fmt: skip
        self.conn = conn
        self.trading = trading
        self.guard = guard
        self.writes = writes
        self.timeout = timeout

    def run(self, job: AlertJob, spec: ContractSpec, rehearsal: str | None) -> str:
        """Move the exits (raises :class:`~worker.errors.Refused` with the reason); the final state."""
        inst, update = self.conn.call(self._apply(job, spec, rehearsal), timeout=self.timeout)
        decision = StoredDecision("update", inst, notes=(update.message, *update.notes))
        message = update.message
        if rehearsal and update.prices:  # test (the alert) / dry_run (risk file): nothing moved
            message = f"{rehearsal}: would move the exits: {update.message.removeprefix('update: ')}"
        self.writes.without_order(job.alert_id, decision, message)
        return AlertStatus.CANCELLED.value

    async def _apply(
        self, job: AlertJob, spec: ContractSpec, rehearsal: str | None
    ) -> tuple[Instrument, ExitUpdate]:
        trading = self.trading
        inst = await trading.instrument(spec)
        position = (await trading.settled_view(inst.con_id)).position
        market = None
        if position:
            market = (await trading.market_price(inst.con_id)).price
        update = plan_update(job.payload, position, inst, market, trading.exit_prices(inst.con_id))
        exits = trading.working_exits(inst.con_id)
        if "tp" in update.prices and any(ex.slice for ex in exits):
            raise Refused("the position's take-profit is in levels (each with its own price): an update "
                          "moves its stop-loss only")  # fmt: skip
        if not update.prices or rehearsal:
            return inst, update
        closing = side_closing(position)
        # every working exit of the role moves: a take-profit in levels has one stop per level
        changes = [
            ExitChange(ex.ref, role, closing, ex.quantity) for role in sorted(update.prices)
            for ex in exits if ex.role == role
        ] + [
            ExitChange(None, role, closing, abs(position)) for role in sorted(update.prices)
            if not any(ex.role == role for ex in exits)
        ]  # fmt: skip
        record = self._record(job.alert_id, inst, position, update)
        with self.guard.busy(inst.con_id) if self.guard is not None else contextlib.nullcontext():
            if self.guard is not None and record is not None:
                self.guard.protect(record)  # the guard re-attaches at the new prices from now on
            prices = {**(record.prices if record is not None else {}), **update.prices}
            await trading.apply_exit_changes(inst.con_id, changes, alert_id=job.alert_id, prices=prices,
                                             oca_group=trading.exit_oca_group(inst.con_id, job.alert_id),
                                             orders=dict(record.orders) if record is not None else None)  # fmt: skip
        return inst, update

    def _record(
        self, alert_id: str, inst: Instrument, position: Decimal, update: ExitUpdate
    ) -> ProtectionSpec | None:
        """The position's protection record with the new prices (a new record when it had none)."""
        if self.guard is None:
            return None
        account = self.trading.account or ""
        side = 1 if position > 0 else -1
        old = self.guard.registry.get(account, inst.con_id)
        if old is None or old.side != side:
            return ProtectionSpec(account, inst.con_id, alert_id, side, dict(update.prices), inst.symbol)
        return replace(old, prices={**old.prices, **update.prices})
