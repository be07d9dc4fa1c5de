"""One outage alarm: a connection down for longer than its alarm delay raises a "lost" notice,
repeated every ``repeat_every`` seconds while it stays down (IB_ALARM_REPEAT_SECONDS; 0: once),
and its return after such an alarm one "restored" notice; a shorter blip sends nothing.

The notifier keeps one for IB (reported by the connection, alarmed by a timer) and one for Redis
(polled); the state machine is the same, only who notices the state differs. Pure: no clock, no
I/O; the caller passes the times and writes the events it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.events import OutageEvent, OutageKind, outage
from worker.decision.connectivity import next_alarm_at


@dataclass
class OutageAlarm:
    """The state of one connection's outage (see module docstring)."""

    lost: OutageKind
    restored: OutageKind
    alarm_after: float  # seconds down before the alarm (IB_ALARM_AFTER_SECONDS, ...)
    with_detail: bool = False  # events carry a ``detail`` (IB's reason); Redis has none
    repeat_every: float = 0.0  # seconds between repeated "lost" alarms (0: one per outage)
    down_since: float | None = None
    alarmed: bool = False
    detail: str = ""
    alarms: int = 0  # "lost" alarms sent in this outage

    @property
    def pending(self) -> bool:
        """Down and another alarm still to come: it is due at :attr:`alarm_due_at`."""
        return self.alarm_due_at is not None

    @property
    def alarm_due_at(self) -> float | None:
        if self.down_since is None:
            return None
        return next_alarm_at(self.down_since, self.alarm_after, self.repeat_every, self.alarms)

    def went_down(self, at: float, detail: str = "") -> bool:
        """Record the connection down at ``at``; True when this starts a new outage."""
        self.detail = detail or self.detail
        if self.down_since is not None:
            return False
        self.down_since, self.alarmed, self.alarms = at, False, 0
        return True

    def alarm(self, now: float) -> OutageEvent | None:
        """The "lost" event: the first of the outage, then each repeat (None when up or no alarm
        is left to send)."""
        if not self.pending:
            return None
        assert self.down_since is not None
        self.alarmed = True
        self.alarms += 1
        event = outage(self.lost, self.down_since, now - self.down_since, self._detail(self.detail))
        if self.alarms > 1:
            event["repeat"] = self.alarms
        return event

    def check(self, now: float) -> OutageEvent | None:
        """The "lost" event when the next alarm is due by ``now``."""
        due = self.alarm_due_at
        return self.alarm(now) if due is not None and now >= due else None

    def came_back(self, at: float, detail: str = "") -> OutageEvent | None:
        """Record the connection up; the "restored" event when its loss was alarmed."""
        since, alarmed = self.down_since, self.alarmed
        self.reset()
        if since is None or not alarmed:
            return None
        return outage(self.restored, since, at - since, self._detail(detail))

    def reset(self) -> None:
        """Forget the outage without a notice (e.g. this worker no longer watches it)."""
        self.down_since, self.alarmed, self.alarms = None, False, 0

    def _detail(self, detail: str) -> str | None:
        return detail if self.with_detail else None
