"""One run of one alert in the executor: what was loaded, what went out, and when (the job's log
line says where its time went: loaded, looked at IB, decided, the decision written, on the wire)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.models import AlertStatus
from core.payload import AlertPayload
from worker.contracts.tickers import ContractSpec
from worker.decision.stored import PositionMove, StoredDecision
from worker.execution.protocol import crash_point
from worker.recording.recorder import PlacementFact, Recorder
from worker.recording.snapshots import OrderSnapshot


@dataclass
class AlertJob:
    """One run of one alert: what was loaded, what went out, and when (for the job's log line)."""

    alert_id: str
    payload: AlertPayload
    received_at: datetime
    paused: bool
    timings: dict[str, float] = field(default_factory=lambda: {"start": time.perf_counter()})
    picked_up_at: float = field(default_factory=time.time)  # wall clock, as intake's received_at
    sent: bool = False  # some leg of this job went out to IB
    status: AlertStatus = AlertStatus.QUEUED
    decision: StoredDecision | None = None  # the alert's stored plan
    decision_write: Future[Any] | None = None  # its write, until the IB loop has awaited it
    resumed: bool = False  # a rerun of a decided alert (its orders may be at IB, maybe another client's)
    # an option alert made an alert on one option (worker/execution/option_orders.py): its contract
    # and the plan's record of the choice (the payload is then the option order's)
    option_spec: ContractSpec | None = None
    option_plan: dict[str, Any] | None = None

    @property
    def decided(self) -> PositionMove | None:
        """Its position decision, once stored (None: not decided yet, or nothing to act on)."""
        return self.decision.decided if self.decision is not None else None

    def mark(self, name: str) -> None:
        self.timings[name] = time.perf_counter()

    def leg_sent(self, leg: str) -> None:
        self.sent = True
        crash_point(f"after_{leg}_placed")

    def record_placement(self, recorder: Recorder, decision: StoredDecision) -> Callable[..., Future[Any]]:
        """The callback :meth:`Trading.place_legs` calls right after the sends (on the IB loop)."""

        def record(placed: list[OrderSnapshot], adopted: list[OrderSnapshot]) -> Future[Any]:
            return recorder.record(PlacementFact(self.alert_id, decision, placed, adopted))

        return record

    def timing_line(self, legs: int) -> str:
        """Where the job's time went, for its log line: milliseconds from the pick-up to each step
        (a step the job did not pass shows the placement's time)."""
        t = self.timings

        def since(mark: str, fallback: str = "placed") -> float:
            return (t.get(mark, t.get(fallback, t["start"])) - t["start"]) * 1000

        queued = (self.picked_up_at - self.received_at.timestamp()) * 1000
        return (f"{legs} leg(s) on the wire {since('on_wire'):.1f} ms after pick-up (loaded {since('loaded'):.1f}, "
                f"looked {since('on_loop'):.1f}, decided {since('decided'):.1f}, written {since('written'):.1f}), "
                f"recorded after {(time.perf_counter() - t['start']) * 1000:.1f} ms; picked up {queued:.1f} ms "
                f"after intake received it")  # fmt: skip
