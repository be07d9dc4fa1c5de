"""The approval gate: runs before the executor on every alert job (core/approval.py tells the whole
life of an alert that waits for approval).

An opening of a strategy whose rules say ``require_approval`` (worker/risk/gate.py, its account's
section included) is not decided here: the alert moves to ``pending_approval`` until its
``approval_deadline``, with its audit row and its ``approval`` notice written in the same
transaction by the recorder (awaited), and the job ends. Everything else goes straight to the
executor: an exit or a flatten, an alert approved already (its second job), an alert the worker
has worked on before (a rerun resumes it), and every alert while no section of the risk file
requires approval (then nothing is read: the order path costs nothing more).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import events
from core.approval import PENDING, approval_draft, never_waits, span, timeout_of
from core.models import Alert, AlertEvent, AlertStatus, utcnow
from core.notices import NoticeDraft, enqueue_draft
from core.payload import AlertPayload, PayloadError
from core.risk_file import RiskFile
from worker.recording.recorder import Recorder
from worker.recording.unit import UnitOfWork
from worker.risk.gate import RiskGate

log = logging.getLogger(__name__)

# the states in which an alert has not been worked on yet (a rerun of a later state resumes it)
_FRESH = (AlertStatus.RECEIVED, AlertStatus.QUEUED)
WRITE_TIMEOUT = 30.0


def any_approval(risk_file: RiskFile) -> bool:
    """Some section of the risk file sets ``require_approval: true``."""
    sections = [risk_file.defaults, *risk_file.strategies.values(), *risk_file.accounts.values()]
    return any(section.get("require_approval") for section in sections)


class ApprovalGate:
    """Holds back the alerts that wait for approval; hands every other one to ``execute``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        recorder: Recorder,
        risk: RiskGate,
        account: Callable[[], str | None],
        simulator: Callable[[], bool],
        execute: Callable[[str], str],
    ) -> None:
        self.sessions = sessions
        self.recorder = recorder
        self.risk = risk
        self.account = account  # the account IB says this worker trades (None before it is known)
        self.simulator = simulator
        self.execute = execute

    def execute_alert(self, alert_id: str) -> str:
        """The job: the alert waits for approval (its state is returned), or it executes."""
        if any_approval(self.risk.risk_file):
            waiting = self._hold(alert_id)
            if waiting is not None:
                return waiting
        return self.execute(alert_id)

    def _hold(self, alert_id: str) -> str | None:
        """``pending_approval`` when the alert waits (now, or still: a rerun of the job that asked);
        None when it goes on to the executor."""
        with self.sessions() as session:
            row = session.execute(
                select(Alert.status, Alert.payload, Alert.approved_at, Alert.plan).where(Alert.id == alert_id)
            ).first()
        if row is None:
            return None
        status, stored, approved_at, plan = row
        if status == PENDING:
            log.info("alert %s still waits for approval; nothing to do", alert_id)
            return PENDING.value
        if approved_at is not None or plan or status not in _FRESH:
            return None
        try:
            payload = AlertPayload.from_json(stored or {})
        except PayloadError:
            return None  # the executor refuses it with the reason
        account = self.account() or payload.account or None
        rules = self.risk.rules_for(payload.strategy, account)
        # a worker without IB_ACCOUNT before IB's first connect does not know its account yet: an
        # account section that asks for approval is then asked for (fail closed)
        unknown = account is None and any(
            s.get("require_approval") for s in self.risk.risk_file.accounts.values()
        )
        if not (rules.require_approval or unknown) or never_waits(payload):
            return None
        timeout = timeout_of(rules)
        deadline = utcnow() + timedelta(seconds=float(timeout))
        source = rules.source_of("require_approval") if rules.require_approval else "an account section"
        message = (
            f"waiting for approval ({source} requires it) until {deadline:%H:%M:%S} UTC "
            f"(approval_timeout {span(timeout)}); nothing is decided before"
        )
        draft = approval_draft(alert_id, payload, deadline=deadline, timeout=timeout,
                               account=self.account() or payload.account)  # fmt: skip
        future = self.recorder.run(
            _wait, self.recorder.settings, alert_id, deadline, message, draft, self.simulator()
        )
        if not future.result(WRITE_TIMEOUT):
            return None  # it left its fresh state meanwhile: the executor reads what it is now
        log.info("alert %s: %s", alert_id, message)
        return PENDING.value


def _wait(
    uow: UnitOfWork,
    settings: Settings,
    alert_id: str,
    deadline: datetime,
    message: str,
    draft: NoticeDraft,
    simulator: bool,
) -> bool:
    """On the recorder thread: the alert to ``pending_approval``, its audit row, its notice and
    its event, in one transaction; False (nothing written) when it is no longer fresh."""
    session = uow.session
    alert = session.get(Alert, alert_id)
    if alert is None or alert.status not in _FRESH:
        return False
    now = utcnow()
    alert.status = PENDING
    alert.approval_deadline = deadline
    alert.reason = message
    alert.updated_at = now
    session.add(AlertEvent(alert_id=alert_id, status=PENDING.value, message=message, at=now))
    enqueue_draft(session, draft, settings, simulator=simulator)
    uow.emit(events.alert_status(alert_id, PENDING.value, message))
    return True
