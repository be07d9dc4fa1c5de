"""Brackets lost with the connection: after every (re)connect, a ``submitted`` alert whose last
order IB does not know is run again, or ended stale.

The job records an alert ``submitted`` once its legs are written to the socket (worker/ib/
placement.py): waiting for IB's acknowledgement of every bracket would cost each job a round trip
to IB. A connection that dies in those milliseconds can take the bracket's later legs with it:
IB read the staged entry, never the leg that transmits it, and the alert would sit ``submitted``
forever with nothing working at IB (found by the chaos run, worker/ib's ``stall_sync`` dropping
the connection 4 ms after a bracket went out; ibsim's ``drop_mid_bracket`` fault replays it).

So, on the housekeeping thread, once per connection: when IB is ready again (its open orders of
every client, completed orders and executions read), every ``submitted`` alert of the queues this
worker serves (its account's queue, as the relay routes it), changed since the connection before
was last seen up, has the last leg of its stored plan (the leg that transmits; a reversal's
opening bracket comes after its close) looked up at IB, in one step on the IB loop that also
checks the connection is still the one that was synced. That leg may never have been sent: a
worker killed between a reversal's close and its open leaves the alert ``submitted``, and when
Redis restarted empty meanwhile its job is gone too (found by the chaos run). For one IB does not
know (the rules: worker/decision/connectivity.py ``whole_when`` and ``lost_placement``):

* still fresh (or an exit, which never goes stale): its job runs again (core/enqueue.py
  ``enqueue_rerun``); the rerun resumes as after a crash (every step adopts what IB has; the legs
  IB holds staged are sent again under their own ids, the rest anew);
* past the stale limit: it ends ``rejected`` as stale, saying IB does not know its last order
  (a late entry trades a signal the market has left; an order IB no longer reports, say a day
  order that expired while the worker was away, ends the same way rather than stay ``submitted``).

An alert whose job is still queued or running is left to that job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.enqueue import enqueue_rerun, job_pending
from core.keys import queue_name
from core.models import Alert, AlertStatus, Order
from core.payload import AlertPayload, PayloadError
from worker.decision.connectivity import lost_placement, whole_when
from worker.decision.intent import alert_kind
from worker.decision.positions import is_exit
from worker.ib.trading import Trading
from worker.recording.alert_state import advance, note
from worker.recording.recorder import Recorder, UnitOfWork

log = logging.getLogger(__name__)

#: how far back the first sweep after a start looks (a worker that died with brackets in flight)
FIRST_SWEEP_HORIZON = timedelta(days=1)
#: margin before the moment the previous connection was last seen up
HORIZON_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Candidate:
    """A ``submitted`` alert and its last recorded order."""

    alert_id: str
    queue: str
    last_ref: str
    received_at: datetime
    exit_only: bool
    sent: bool = True  # False: the plan's last leg was never sent (the worker stopped before it)


class LostPlacements:
    """:meth:`check` (housekeeping thread) sweeps once per connection, when IB is ready."""

    def __init__(self, trading: Trading, sessions: sessionmaker[Session], redis_client: redis.Redis,
                 recorder: Recorder, queues: Callable[[], Sequence[str]], stale_after: float,
                 serves_alone: Callable[[], bool], ib_call_timeout: float = 15.0) -> None:  # fmt: skip
        self.trading = trading
        self.sessions = sessions
        self.redis = redis_client
        self.recorder = recorder
        self.queues = queues
        self.stale_after = stale_after
        self.serves_alone = serves_alone
        self.ib_call_timeout = ib_call_timeout
        self._swept_connect = 0  # the connection (IBConnection.connects) last swept
        self._up_seen: datetime | None = None  # when a check last saw that connection ready

    def check(self) -> list[str]:
        """One sweep if the connection changed since the last; returns what was done."""
        conn = self.trading.conn
        now = datetime.now(UTC)
        if not self.trading.ready or not self.serves_alone():
            return []
        generation = conn.connects
        if generation == self._swept_connect:
            self._up_seen = now
            return []
        since = (self._up_seen - HORIZON_MARGIN) if self._up_seen else now - FIRST_SWEEP_HORIZON
        candidates = self._candidates(since)
        lost = (
            conn.call(self._unknown(candidates, generation), timeout=self.ib_call_timeout)
            if candidates
            else []
        )
        if lost is None:  # the connection changed while looking: the next check sweeps it
            return []
        self._swept_connect, self._up_seen = generation, now
        return [self._act(c, now) for c in lost]

    def _candidates(self, since: datetime) -> list[Candidate]:
        queues = list(self.queues())
        with self.sessions() as session:
            # the queue from the account, as the relay routes it: ``queue_name`` is written only when
            # intake's mark beats the worker's pick-up, so most alerts never have it
            rows = session.execute(
                select(Alert.id, Alert.account, Alert.received_at, Alert.payload, Alert.plan).where(
                    Alert.status == AlertStatus.SUBMITTED,
                    Alert.updated_at >= since,
                    Alert.plan.is_not(None),
                )  # fmt: skip
            ).all()
            routed = ((a, queue_name(account), at, payload, plan) for a, account, at, payload, plan in rows)
            alerts = [row for row in routed if row[1] in queues]
            if not alerts:
                return []
            recorded: dict[str, list[str]] = {}
            orders = session.execute(
                select(Order.alert_id, Order.order_ref)
                .where(Order.alert_id.in_([a[0] for a in alerts]))
                .order_by(Order.id)
            )
            for alert_id, ref in orders:
                recorded.setdefault(alert_id, []).append(ref)  # ordered by id: as sent
        found = []
        for alert_id, queue, received_at, payload, plan in alerts:
            whole = whole_when(alert_id, _planned_legs(plan), recorded.get(alert_id, []))
            if whole is not None:
                last_ref, sent = whole
                found.append(Candidate(alert_id, queue, last_ref, received_at, _exit_only(payload), sent))
        return found

    async def _unknown(self, candidates: list[Candidate], generation: int) -> list[Candidate] | None:
        """The candidates whose last order IB does not know (None: not the synced connection)."""
        await self.trading.see_other_clients()  # a previous worker's client id placed some of them
        conn = self.trading.conn
        if conn.connects != generation or not conn.ready:
            return None
        known = self.trading.known_refs([c.last_ref for c in candidates])
        return [c for c in candidates if lost_placement(c.last_ref, known)]

    def _act(self, lost: Candidate, now: datetime) -> str:
        if job_pending(self.redis, lost.alert_id):
            return f"{lost.alert_id}: its job is still queued or running"
        age = (now - lost.received_at).total_seconds()
        if age > self.stale_after and not lost.exit_only:
            if lost.sent:
                why = (f"IB does not know its last order ({lost.last_ref}) after the reconnect: the bracket never "
                       "reached IB whole (the connection dropped as it was sent), or IB no longer reports it")  # fmt: skip
            else:
                why = (f"its last order ({lost.last_ref}) was never sent: the worker stopped after the orders "
                       "before it (a reversal's close), and its job was lost")  # fmt: skip
            again = " again" if lost.sent else ""
            reason = f"stale: {why}; {age:.0f}s old (limit {self.stale_after:.0f}s), so it is not sent{again}"
            log.warning("alert %s: %s", lost.alert_id, reason)
            self.recorder.run(_reject, lost.alert_id, reason).result(15.0)
            return f"{lost.alert_id}: rejected stale"
        said = (
            f"{lost.last_ref} unknown to IB after the reconnect: the bracket was lost with the connection; sent again"
            if lost.sent
            else f"{lost.last_ref} never sent: the worker stopped after the orders before it and its job was lost; "
            "run again"
        )
        self.recorder.run(note, lost.alert_id, said).result(15.0)  # before the rerun can write its own
        enqueued = enqueue_rerun(self.redis, lost.alert_id, lost.queue)
        log.warning(
            "alert %s: %s%s", lost.alert_id, said, "" if enqueued else " (its job was queued already)"
        )
        return f"{lost.alert_id}: {'run again' if enqueued else 'already queued'}"


def _reject(uow: UnitOfWork, alert_id: str, reason: str) -> None:
    advance(uow, alert_id, AlertStatus.REJECTED, f"rejected: {reason}", reason=reason)


def _planned_legs(plan: object) -> list[str]:
    """The leg names of a stored plan, in the order they go out (unreadable: none)."""
    legs = plan.get("legs") if isinstance(plan, dict) else None
    if not isinstance(legs, list):
        return []
    return [str(leg["leg"]) for leg in legs if isinstance(leg, dict) and leg.get("leg")]


def _exit_only(payload: object) -> bool:
    """An exit, a flatten, a cancel or an update (never stale) from the stored payload
    (unreadable: not one)."""
    try:
        parsed = AlertPayload.from_json(payload or {})  # type: ignore[arg-type]
    except PayloadError:
        return False
    return is_exit(parsed) or alert_kind(parsed) in ("cancel", "update")
