"""Whether a job may go: IB ready, the alert not stale, a decided alert's legs at IB (the executor's
first step on every run, worker/execution/executor.py), and the signals a job raises to leave."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from core.ids import order_ref
from worker.decision.connectivity import job_wait
from worker.decision.positions import is_exit
from worker.execution.alert_job import AlertJob
from worker.execution.job_writes import JobWrites
from worker.ib import IBConnection, Trading

log = logging.getLogger(__name__)


class Requeue(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Put the job back on the queue (the worker is stopping before the alert could be placed)."""


class RetryLater(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Orders went out but could not be recorded (database trouble): run the job again later; the
    rerun finds the orders at IB by orderRef and records them without sending anything."""


class Stale(Exception):  # noqa: N818 - a control-flow signal: the executor rejects the alert
    def __init__(self, age: float) -> None:
        super().__init__(age)
        self.age = age


@dataclass(frozen=True)
class JobLimits:
    """How long a job waits: the alert's age before it is stale (STALE_ALERT_SECONDS), one request
    on the IB loop, and a reversal's close to fill before nothing opens (REVERSAL_FILL_TIMEOUT_SECONDS)."""

    stale_after: float
    ib_call: float = 30.0
    reversal_fill: float = 30.0


@dataclass(frozen=True)
class Readiness:
    """The job's wait for IB and its staleness checks (one per executor)."""

    conn: IBConnection
    trading: Trading
    writes: JobWrites
    limits: JobLimits
    stopping: threading.Event  # the worker's warm stop: a job still waiting for IB goes back on the queue

    def wait_for_ib(self, job: AlertJob) -> None:
        announced = False
        exit_only = is_exit(job.payload)
        while True:
            age = (datetime.now(UTC) - job.received_at).total_seconds()
            # once a leg went out, only adopting is left; a stored decision may have sent legs that
            # were never recorded (a crash between send and record): IB is asked first (below).
            # An exit never goes stale: it waits for IB (worker/decision/connectivity.py)
            verdict = job_wait(ready=self.conn.ready, age=age, stale_after=self.limits.stale_after,
                               exit_only=exit_only, sent=job.sent, decided=job.decided is not None)  # fmt: skip
            if verdict == "stale":
                raise Stale(age)
            if verdict == "go":
                return
            if self.stopping.is_set():
                raise Requeue(job.alert_id)
            if not announced:
                announced = True
                self.writes.waiting_for_ib(job.alert_id)
            self.conn.wait_ready(min(0.5, max(0.05, self.limits.stale_after - age)))

    def check_stale_decision(self, job: AlertJob) -> None:
        """A decided alert past the stale limit: stale only if IB has none of its legs. A worker
        killed between sending a leg and recording it leaves ``processing`` + a decision; its rerun
        may come long after (the worker was down), and the legs at IB must then be adopted and
        followed, never abandoned as "stale"."""
        if job.sent or job.decision is None or job.decided is None or is_exit(job.payload):
            return  # an exit is followed whatever its age (its target is flat, never more)
        age = (datetime.now(UTC) - job.received_at).total_seconds()
        if age <= self.limits.stale_after:
            return
        refs = [order_ref(job.alert_id, leg.leg) for leg in job.decision.legs]

        async def at_ib() -> bool:  # IB's view is read on its loop, like every other reading
            return bool(self.trading.known_refs(refs))

        if refs and self.conn.call(at_ib(), timeout=self.limits.ib_call):
            log.info("alert %s: %.0fs old, but IB has its orders: resuming", job.alert_id, age)
            job.sent = True
            return
        raise Stale(age)
