"""One job: load the alert → risk gate → plan → place exactly once → record.

Runs on the consumer (main) thread. IB work is handed to the IB thread through
:meth:`IBConnection.call`; database writes go to the :class:`Recorder` thread. Per-job state lives in
an :class:`AlertJob`, not on the long-lived executor. A refusal is raised as
:class:`~worker.errors.Refused` anywhere below and caught here once.

Exactly once (invariant 2) rests on three checks, in this order:

1. the alert's state: at ``submitted`` or beyond, the job only re-reads (the database says done);
2. IB's own view of the legs' ``orderRef`` (open orders, completed orders, executions, all fetched
   on connect and kept current from events), checked on the IB loop in the same step that sends
   (see :meth:`Trading.place_legs`);
3. the queue merely delivers at least once: a job whose worker died is run again and the checks
   above make the rerun harmless.

No "intent" row is written before sending: a row would prove nothing about what reached IB, and
IB's reports are the truth after any crash. Rows are written right after the send, in order with
IB's events, by the single recorder thread.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.ids import order_ref
from core.models import STATUS_RANK, Alert, AlertStatus, Control
from core.payload import AlertPayload, PayloadError
from core.services import PAUSED_KEY
from worker.errors import Refused, TemporaryError
from worker.ib import IBConnection, Placement, Trading
from worker.metrics import WorkerMetrics
from worker.planner import Leg, Plan, alert_kind, needs_market_reference, plan_bracket, plan_exit
from worker.recorder import PlacementFact, Recorder, UnitOfWork
from worker.snapshots import OrderSnapshot
from worker.symbols import ContractSpec, resolve_ticker

log = logging.getLogger(__name__)

CRASH_ENV = "TV2IB_CRASH_AT"


def crash_point(name: str) -> None:
    """Test instrumentation: SIGKILL this process at ``name`` when ``TV2IB_CRASH_AT`` names it.

    Points: ``before_place``, ``after_entry_placed``, ``after_tp_placed``, ``after_sl_placed``,
    ``after_exit_placed``, ``after_recorded``. Unset in production, so this is a dict lookup.
    """
    if os.environ.get(CRASH_ENV) == name:
        log.warning("crash point %s reached: SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)


class Requeue(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Put the job back on the queue (the worker is stopping before the alert could be placed)."""


class RetryLater(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Orders went out but could not be recorded (database trouble): run the job again later; the
    rerun finds the orders at IB by orderRef and records them without sending anything."""


class _Stale(Exception):  # noqa: N818
    def __init__(self, age: float) -> None:
        super().__init__(age)
        self.age = age


@dataclass
class AlertJob:
    """One run of one alert: what was loaded, what went out, and when (for the job's log line)."""

    alert_id: str
    payload: AlertPayload
    received_at: datetime
    paused: bool
    timings: dict[str, float] = field(default_factory=lambda: {"start": time.perf_counter()})
    sent: bool = False  # some leg of this job went out to IB

    def mark(self, name: str) -> None:
        self.timings[name] = time.perf_counter()

    def leg_sent(self, leg: str) -> None:
        self.sent = True
        crash_point(f"after_{leg}_placed")

    def record_placement(self, recorder: Recorder, plan: Plan) -> Callable[..., Any]:
        """The callback :meth:`Trading.place_legs` calls right after the sends (on the IB loop)."""
        plan_json = plan.to_json()

        def record(placed: list[OrderSnapshot], adopted: list[OrderSnapshot]) -> Any:
            return recorder.record(PlacementFact(self.alert_id, plan_json, placed, adopted))

        return record


class Executor:
    """Executes alerts; one instance per worker process (its state is its dependencies)."""

    def __init__(
        self,
        sessions: Any,
        recorder: Recorder,
        conn: IBConnection,
        trading: Trading,
        *,
        stale_after: float,
        stopping: threading.Event,
        ib_call_timeout: float = 30.0,
        max_order_quantity: Decimal | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.recorder = recorder
        self.conn = conn
        self.trading = trading
        self.stale_after = stale_after
        self.stopping = stopping
        self.ib_call_timeout = ib_call_timeout
        self.max_order_quantity = max_order_quantity
        self.metrics = metrics

    # ------------------------------------------------------------------ the job

    def execute_alert(self, alert_id: str) -> str:
        """Run one alert to the point where IB has its orders (or it is refused); returns its state."""
        started = time.perf_counter()
        with self.sessions() as session:
            # one round trip: the alert and the pause switch (the order path is latency-bound)
            row = session.execute(
                select(Alert.status, Alert.payload, Alert.received_at, Control.value)
                .outerjoin(Control, Control.key == PAUSED_KEY)
                .where(Alert.id == alert_id)
            ).first()
            if row is None:
                log.warning("job for unknown alert %s dropped", alert_id)
                return "unknown"
            status, stored, received_at, paused = row[0], row[1], row[2], row[3] == "1"
        if status.is_terminal or STATUS_RANK[status] >= STATUS_RANK[AlertStatus.SUBMITTED]:
            log.info("alert %s is already %s; nothing to do", alert_id, status.value)
            return status.value
        try:
            payload = AlertPayload.from_json(stored or {})
        except PayloadError as exc:  # intake stored it validated: only a hand-edited row gets here
            return self.reject(alert_id, f"the stored payload is unreadable: {exc}")
        job = AlertJob(alert_id, payload, received_at, paused, {"start": started})
        job.mark("loaded")
        # 'processing' is written with the job's first record (the placement, a refusal, or the
        # wait for IB), not before: the database thread stays idle while the orders go out
        try:
            return self._run(job)
        except Requeue:
            raise
        except Refused as exc:
            return self.reject(alert_id, str(exc))
        except _Stale as exc:
            return self.reject_stale(alert_id, exc.age)
        except Exception as exc:
            if job.sent:
                # never call an alert failed once its orders are at IB: retry and adopt them
                log.exception("alert %s: orders sent but not recorded; retrying later", alert_id)
                raise RetryLater(alert_id) from exc
            log.exception("alert %s failed", alert_id)
            self._write(self.recorder.advance, alert_id, AlertStatus.FAILED, f"worker error: {exc}",
                        reason=f"worker error: {type(exc).__name__}: {exc}")  # fmt: skip
            return AlertStatus.FAILED.value

    def _run(self, job: AlertJob) -> str:
        kind = alert_kind(job.payload)
        spec = resolve_ticker(job.payload.ticker, job.payload.exchange)
        if kind == "bracket" and job.paused:
            raise Refused("trading paused")
        while True:  # wait for IB, up to the stale limit; then try; retry if IB drops meanwhile
            self._wait_for_ib(job)
            try:
                if kind == "bracket":
                    return self._bracket(job, spec)
                return self._exit_or_cancel(job, kind, spec)
            except (TemporaryError, ConnectionError, TimeoutError) as exc:
                log.warning("alert %s: IB unavailable (%s); waiting", job.alert_id, exc)
                time.sleep(0.2)

    def _wait_for_ib(self, job: AlertJob) -> None:
        announced = False
        while True:
            age = (datetime.now(UTC) - job.received_at).total_seconds()
            if age > self.stale_after and not job.sent:  # once a leg went out, only adopting is left
                raise _Stale(age)
            if self.conn.ready:
                return
            if self.stopping.is_set():
                raise Requeue(job.alert_id)
            if not announced:
                announced = True
                self.recorder.run(self._mark_processing, job.alert_id, "waiting for the IB connection")
            self.conn.wait_ready(min(0.5, max(0.05, self.stale_after - age)))

    def _bracket(self, job: AlertJob, spec: ContractSpec) -> str:
        payload = job.payload

        async def place() -> Placement:
            job.mark("on_loop")
            contract, inst = await self.trading.instrument(spec)
            market, source = None, "ib"
            if needs_market_reference(payload):
                market, source = await self.trading.market_price(contract)
            plan = plan_bracket(payload, inst, market, source, max_quantity=self.max_order_quantity)
            crash_point("before_place")
            placement = await self.trading.place_legs(
                job.alert_id, contract, plan.legs, plan.oca_type,
                on_leg_sent=job.leg_sent, record=job.record_placement(self.recorder, plan),
            )  # fmt: skip
            job.mark("on_wire")
            self._observe_on_wire(job, placement)
            return placement

        placement = self.conn.call(place(), timeout=self.ib_call_timeout)
        job.mark("placed")
        if placement.recorded is not None:
            placement.recorded.result(30)
        crash_point("after_recorded")
        t = job.timings
        log.info("alert %s: %d leg(s) on the wire %.1f ms after pick-up (loaded %.1f, on IB loop %.1f), "
                 "recorded after %.1f ms", job.alert_id, len(placement.placed),
                 (t.get("on_wire", t["placed"]) - t["start"]) * 1000, (t["loaded"] - t["start"]) * 1000,
                 (t.get("on_loop", t["placed"]) - t["start"]) * 1000,
                 (time.perf_counter() - t["start"]) * 1000)  # fmt: skip
        return "submitted"

    def _exit_or_cancel(self, job: AlertJob, kind: str, spec: ContractSpec) -> str:
        alert_id, payload = job.alert_id, job.payload

        async def run() -> tuple[Plan | None, list[OrderSnapshot], Placement | None]:
            contract, inst = await self.trading.instrument(spec)
            cancelled = await self.trading.cancel_working(inst.con_id)
            if kind == "cancel":
                return None, cancelled, None
            plan = plan_exit(inst, self.trading.position_of(inst.con_id), payload)
            if not plan.legs and self.trading.known_refs([order_ref(alert_id, "exit")]):
                # flat because our exit already went out before a restart: adopt it, send nothing
                plan.legs = [Leg("exit", "SELL", "MKT", Decimal(0))]
                plan.notes.append("exit order found at IB by orderRef (sent before a restart)")
            if not plan.legs:
                return plan, cancelled, None
            placement = await self.trading.place_legs(
                alert_id, contract, plan.legs, plan.oca_type,
                on_leg_sent=job.leg_sent, record=job.record_placement(self.recorder, plan),
            )  # fmt: skip
            self._observe_on_wire(job, placement)
            return plan, cancelled, placement

        plan, cancelled, placement = self.conn.call(run(), timeout=self.ib_call_timeout)
        summary = f"cancelled {len(cancelled)} working order(s)"
        if placement is not None:
            if placement.recorded is not None:
                placement.recorded.result(30)
            self._write(self.recorder.note, alert_id, summary)
            crash_point("after_recorded")
            return "submitted"
        if kind == "cancel":
            message = f"cancel: {summary} for {payload.ticker}"
        else:
            message = f"exit: no open position in {payload.ticker}; {summary}"
        plan_json = plan.to_json() if plan else {"kind": kind, "cancelled": [c.order_ref for c in cancelled]}
        self._write(self._finish_without_order, alert_id, plan_json, message)
        return AlertStatus.CANCELLED.value

    def _finish_without_order(self, uow: UnitOfWork, alert_id: str, plan_json: dict[str, Any],
                              message: str) -> None:  # fmt: skip
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = plan_json
        self._mark_processing(uow, alert_id)
        self.recorder.advance(uow, alert_id, AlertStatus.CANCELLED, message, reason=message)

    def _observe_on_wire(self, job: AlertJob, placement: Placement) -> None:
        """Alert -> wire latency, for legs sent now (not adopted after a restart); memory only."""
        if self.metrics is not None and placement.placed:
            self.metrics.observe_alert_to_wire(time.time() - job.received_at.timestamp())

    # ------------------------------------------------------------------ outcomes

    def reject(self, alert_id: str, reason: str) -> str:
        """End the alert ``rejected`` with ``reason`` (shown to the trader and in the notice)."""

        def write(uow: UnitOfWork) -> None:
            self._mark_processing(uow, alert_id)
            self.recorder.advance(uow, alert_id, AlertStatus.REJECTED, f"rejected: {reason}", reason=reason)

        self._write(write)
        return AlertStatus.REJECTED.value

    def reject_stale(self, alert_id: str, age: float) -> str:
        """Refuse an alert that waited too long (IB down, or the worker was away)."""
        reason = f"stale: {age:.0f}s old (limit {self.stale_after:.0f}s), IB was not available in time"
        return self.reject(alert_id, reason)

    def _mark_processing(self, uow: UnitOfWork, alert_id: str, note: str | None = None) -> None:
        self.recorder.advance(uow, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
        if note:
            self.recorder.note(uow, alert_id, note)

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(uow, *args)`` on the recorder thread and wait for it."""
        return self.recorder.run(lambda uow: fn(uow, *args, **kwargs)).result(30)
