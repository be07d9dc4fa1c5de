"""One job: load the alert → risk gate → plan → place exactly once → record.

Runs on the consumer (main) thread. IB work is handed to the IB thread through
:meth:`IBSession.call`; database writes go to the :class:`Recorder` thread.

Exactly once (invariant 2) rests on three checks, in this order:

1. the alert's state: at ``submitted`` or beyond, the job only re-reads (the database says done);
2. IB's own view of the legs' ``orderRef`` (open orders, completed orders, executions, all fetched
   on connect and kept current from events), checked on the IB loop in the same step that sends
   (see :meth:`IBSession.place_legs`);
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
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ids import order_ref
from app.models import STATUS_RANK, Alert, AlertStatus, Control
from app.services import PAUSED_KEY
from worker.ib_session import ContractNotFound, IBSession, IBUnavailable, Placement
from worker.metrics import WorkerMetrics
from worker.planner import (
    Leg,
    Plan,
    PlanRejected,
    alert_kind,
    needs_market_reference,
    plan_bracket,
    plan_exit,
)
from worker.recorder import Recorder
from worker.symbols import UnknownSymbol, resolve_ticker

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


class Executor:
    """Executes alerts; one instance per worker process."""

    def __init__(
        self,
        sessions: Any,
        recorder: Recorder,
        ib: IBSession,
        *,
        stale_after: float,
        stopping: threading.Event,
        ib_call_timeout: float = 30.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.recorder = recorder
        self.ib = ib
        self.stale_after = stale_after
        self.stopping = stopping
        self.ib_call_timeout = ib_call_timeout
        self.metrics = metrics
        self.received_at: datetime | None = None  # the current job's alert arrival (for metrics)
        self.timings: dict[str, float] = {}
        self.sent = False  # some leg of the current job went out to IB

    # ------------------------------------------------------------------ the job

    def execute_alert(self, alert_id: str) -> str:
        """Run one alert to the point where IB has its orders (or it is refused); returns its state."""
        self.timings = {"start": time.perf_counter()}
        self.sent = False
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
            status = AlertStatus(row[0])
            payload = dict(row[1] or {})
            received_at = row[2]
            paused = row[3] == "1"
        self.received_at = received_at
        self.timings["loaded"] = time.perf_counter()
        if status.is_terminal or STATUS_RANK[status] >= STATUS_RANK[AlertStatus.SUBMITTED]:
            log.info("alert %s is already %s; nothing to do", alert_id, status.value)
            return status.value
        # 'processing' is written with the job's first record (the placement, a refusal, or the
        # wait for IB), not before: the database thread stays idle while the orders go out
        try:
            return self._run(alert_id, payload, received_at, paused)
        except Requeue:
            raise
        except _Stale as exc:
            return self.reject_stale(alert_id, exc.age)
        except Exception as exc:
            if self.sent:
                # never call an alert failed once its orders are at IB: retry and adopt them
                log.exception("alert %s: orders sent but not recorded; retrying later", alert_id)
                raise RetryLater(alert_id) from exc
            log.exception("alert %s failed", alert_id)
            self._write(self.recorder.advance, alert_id, AlertStatus.FAILED, f"worker error: {exc}",
                        reason=f"worker error: {type(exc).__name__}: {exc}")  # fmt: skip
            return AlertStatus.FAILED.value

    def _run(self, alert_id: str, payload: dict[str, Any], received_at: datetime, paused: bool) -> str:
        try:
            kind = alert_kind(payload)
            spec = resolve_ticker(str(payload.get("ticker") or ""), payload.get("exchange"))
        except (PlanRejected, UnknownSymbol) as exc:
            return self._reject(alert_id, str(exc))
        if kind == "bracket" and paused:
            return self._reject(alert_id, "trading paused")
        while True:  # wait for IB, up to the stale limit; then try; retry if IB drops meanwhile
            self._wait_for_ib(alert_id, received_at)
            try:
                if kind == "bracket":
                    return self._bracket(alert_id, payload, spec)
                return self._exit_or_cancel(alert_id, kind, payload, spec)
            except (IBUnavailable, ConnectionError, TimeoutError) as exc:
                log.warning("alert %s: IB unavailable (%s); waiting", alert_id, exc)
                time.sleep(0.2)

    def _wait_for_ib(self, alert_id: str, received_at: datetime) -> None:
        announced = False
        while True:
            age = (datetime.now(UTC) - received_at).total_seconds()
            if age > self.stale_after and not self.sent:  # once a leg went out, only adopting is left
                raise _Stale(age)
            if self.ib.ready:
                return
            if self.stopping.is_set():
                raise Requeue(alert_id)
            if not announced:
                announced = True
                self.recorder.put(self._mark_processing, alert_id, "waiting for the IB connection")
            self.ib.wait_ready(min(0.5, max(0.05, self.stale_after - age)))

    def _bracket(self, alert_id: str, payload: dict[str, Any], spec: Any) -> str:
        async def place() -> tuple[Plan | None, str | None, Placement | None]:
            self.timings["on_loop"] = time.perf_counter()
            try:
                contract, inst = await self.ib.instrument(spec)
            except ContractNotFound as exc:
                return None, str(exc), None
            market, source = None, "ib"
            if needs_market_reference(payload):
                market, source = await self.ib.market_price(contract)
            try:
                plan = plan_bracket(payload, inst, market, source)
            except PlanRejected as exc:
                return None, str(exc), None
            crash_point("before_place")
            plan_json = plan.to_json()
            placement = await self.ib.place_legs(
                alert_id,
                contract,
                plan.legs,
                plan.oca_type,
                on_leg_sent=self._leg_sent,
                record=lambda placed, adopted: self.recorder.submit_placement(
                    alert_id, plan_json, placed, adopted
                ),
            )
            self.timings["on_wire"] = time.perf_counter()
            self._observe_on_wire(placement)
            return plan, None, placement

        plan, refused, placement = self.ib.call(place(), timeout=self.ib_call_timeout)
        self.timings["placed"] = time.perf_counter()
        if refused is not None:
            return self._reject(alert_id, refused)
        assert placement is not None
        if placement.recorded is not None:
            placement.recorded.result(30)
        crash_point("after_recorded")
        t = self.timings
        log.info("alert %s: %d leg(s) on the wire %.1f ms after pick-up (loaded %.1f, on IB loop %.1f), "
                 "recorded after %.1f ms", alert_id, len(placement.placed),
                 (t.get("on_wire", t["placed"]) - t["start"]) * 1000, (t["loaded"] - t["start"]) * 1000,
                 (t.get("on_loop", t["placed"]) - t["start"]) * 1000,
                 (time.perf_counter() - t["start"]) * 1000)  # fmt: skip
        return "submitted"

    def _exit_or_cancel(self, alert_id: str, kind: str, payload: dict[str, Any], spec: Any) -> str:
        async def run() -> tuple[Plan | None, str | None, list[dict[str, Any]], Placement | None]:
            try:
                contract, inst = await self.ib.instrument(spec)
            except ContractNotFound as exc:
                return None, str(exc), [], None
            cancelled = await self.ib.cancel_working(inst.con_id)
            if kind == "cancel":
                return None, None, cancelled, None
            plan = plan_exit(inst, self.ib.position_of(inst.con_id), payload)
            if not plan.legs and self.ib.known_refs([order_ref(alert_id, "exit")]):
                # flat because our exit already went out before a restart: adopt it, send nothing
                plan.legs = [Leg("exit", "SELL", "MKT", Decimal(0))]
                plan.notes.append("exit order found at IB by orderRef (sent before a restart)")
            if not plan.legs:
                return plan, None, cancelled, None
            plan_json = plan.to_json()
            placement = await self.ib.place_legs(
                alert_id,
                contract,
                plan.legs,
                plan.oca_type,
                on_leg_sent=self._leg_sent,
                record=lambda placed, adopted: self.recorder.submit_placement(
                    alert_id, plan_json, placed, adopted
                ),
            )
            self._observe_on_wire(placement)
            return plan, None, cancelled, placement

        plan, refused, cancelled, placement = self.ib.call(run(), timeout=self.ib_call_timeout)
        if refused is not None:
            return self._reject(alert_id, refused)
        summary = f"cancelled {len(cancelled)} working order(s)"
        if placement is not None:
            if placement.recorded is not None:
                placement.recorded.result(30)
            self._write(lambda s, e: self.recorder.note(s, alert_id, summary))
            crash_point("after_recorded")
            return "submitted"
        if kind == "cancel":
            message = f"cancel: {summary} for {payload.get('ticker')}"
        else:
            message = f"exit: no open position in {payload.get('ticker')}; {summary}"
        plan_json = (
            plan.to_json() if plan else {"kind": kind, "cancelled": [c["order_ref"] for c in cancelled]}
        )
        self._write(self._finish_without_order, alert_id, plan_json, message)
        return AlertStatus.CANCELLED.value

    def _finish_without_order(self, session: Session, events: list[dict[str, Any]], alert_id: str,
                              plan_json: dict[str, Any], message: str) -> None:  # fmt: skip
        alert = session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = plan_json
        self._mark_processing(session, events, alert_id)
        self.recorder.advance(session, events, alert_id, AlertStatus.CANCELLED, message, reason=message)

    # ------------------------------------------------------------------ helpers

    def _observe_on_wire(self, placement: Placement) -> None:
        """Alert -> wire latency, for legs sent now (not adopted after a restart); memory only."""
        if self.metrics is not None and placement.placed and self.received_at is not None:
            self.metrics.observe_alert_to_wire(time.time() - self.received_at.timestamp())

    def _leg_sent(self, leg: str) -> None:
        self.sent = True
        crash_point(f"after_{leg}_placed")

    def _reject(self, alert_id: str, reason: str) -> str:
        def write(session: Session, events: list[dict[str, Any]]) -> None:
            self._mark_processing(session, events, alert_id)
            self.recorder.advance(session, events, alert_id, AlertStatus.REJECTED, f"rejected: {reason}",
                                  reason=reason)  # fmt: skip

        self.recorder.call(write)
        return AlertStatus.REJECTED.value

    def _mark_processing(self, session: Session, events: list[dict[str, Any]], alert_id: str,
                         note: str | None = None) -> None:  # fmt: skip
        self.recorder.advance(session, events, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
        if note:
            self.recorder.note(session, alert_id, note)

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.recorder.call(lambda session, events: fn(session, events, *args, **kwargs))

    def reject_stale(self, alert_id: str, age: float) -> str:
        """Refuse an alert that waited too long (IB down, or the worker was away)."""
        reason = f"stale: {age:.0f}s old (limit {self.stale_after:.0f}s), IB was not available in time"
        return self._reject(alert_id, reason)


class _Stale(Exception):  # noqa: N818
    def __init__(self, age: float) -> None:
        super().__init__(age)
        self.age = age
