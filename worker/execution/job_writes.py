"""What a job writes about its alert, each on the recorder thread and awaited: the decision before
any order goes out, the end of an alert that sends nothing (or no more), a refusal, a failure.

The state only moves forward (worker/recording/recorder.py ``advance``); each write marks the
alert ``processing`` first, so its audit trail reads in order.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine

from core.events import Event
from core.models import Alert, AlertStatus
from worker.decision.stored import StoredDecision
from worker.recording.alert_state import store_decision
from worker.recording.decision_row import write_decision
from worker.recording.protection import ProtectionSpec, save_spec, spec_key
from worker.recording.recorder import Direct, Recorder, UnitOfWork

WRITE_TIMEOUT_SECONDS = 30.0


def opening_protection(decision: StoredDecision) -> ProtectionSpec | None:
    """The protection record of a position opened from flat, written WITH the decision: the guard's
    own write of it (through the registry) comes after the orders are sent, and a worker killed
    between the two would restart without the record: the exits at IB still match (the guard sees
    to it), but nothing would re-attach a lost one, and its break-even rule would be gone. Only
    from flat: a reversal's or a reduce's new record must not be in force before its close is."""
    move = decision.position
    if move is None or move.before != 0 or move.protection_after is None or not move.protection_after.prices:
        return None
    return move.protection_after


class JobWrites:
    """The job's writes through the single recorder thread (one per executor)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def decided(self, alert_id: str, decision: StoredDecision, reason: str) -> Future[Any]:
        """The decision, written down BEFORE any order goes out: the caller waits for the returned
        write (the executor on the IB loop, where the orders then go out: one thread hop fewer)."""

        message = f"decided: {reason}"

        def write(uow: UnitOfWork) -> None:
            if not store_decision(uow, alert_id, decision.to_json(), message):  # not the first write
                self._set_plan(uow, alert_id, decision)
                self.recorder.note(uow, alert_id, message)
            spec = opening_protection(decision)
            if spec is not None:  # durable with the decision, before the bracket goes out
                save_spec(uow.session, spec_key(spec.account, spec.con_id), spec)

        def first_write(engine: Engine) -> list[Event] | None:  # the same rows, without the unit of work
            return write_decision(engine, alert_id, decision.to_json(), message, opening_protection(decision))

        return self.recorder.run_direct(Direct(first_write, write))

    def ended(self, alert_id: str, status: AlertStatus, reason: str, decision: StoredDecision | None,
              message: str | None = None) -> None:  # fmt: skip
        """The alert ends ``status`` with ``reason`` (its plan stored with it when given)."""

        def write(uow: UnitOfWork) -> None:
            self._set_plan(uow, alert_id, decision)
            self.recorder.advance(
                uow, alert_id, status, message or f"{status.value}: {reason}", reason=reason
            )

        self._wait(write)

    def without_order(self, alert_id: str, decision: StoredDecision, message: str) -> None:
        """Nothing to send (already there, an exit while flat, a cancel, a dry run): ``cancelled``."""
        self.ended(alert_id, AlertStatus.CANCELLED, message, decision, message)

    def failed(self, alert_id: str, exc: BaseException) -> None:
        """A bug or an outage of our own parts before anything was sent."""
        self._wait(lambda uow: self.recorder.advance(uow, alert_id, AlertStatus.FAILED, f"worker error: {exc}",
                                                     reason=f"worker error: {type(exc).__name__}: {exc}"))  # fmt: skip

    def waiting_for_ib(self, alert_id: str) -> None:
        """The job waits for the IB connection (not awaited: the job goes on waiting)."""

        def write(uow: UnitOfWork) -> None:
            self.processing(uow, alert_id)
            self.recorder.note(uow, alert_id, "waiting for the IB connection")

        self.recorder.run(write)

    def processing(self, uow: UnitOfWork, alert_id: str) -> None:
        self.recorder.advance(uow, alert_id, AlertStatus.PROCESSING, "picked up by the worker")

    def _set_plan(self, uow: UnitOfWork, alert_id: str, decision: StoredDecision | None) -> None:
        """Store ``decision`` as the alert's plan (None: keep it) and mark the alert processing."""
        if decision is not None and (alert := uow.session.get(Alert, alert_id)) is not None:
            alert.plan = decision.to_json()
        self.processing(uow, alert_id)

    def _wait(self, write: Any) -> None:
        self.recorder.run(write).result(WRITE_TIMEOUT_SECONDS)
