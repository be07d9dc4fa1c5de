"""One outage alarm: a connection down for longer than its alarm delay raises one "lost" notice,
and its return after such an alarm one "restored" notice; a shorter blip sends nothing.

The notifier keeps one for IB (reported by the connection, alarmed by a timer) and one for Redis
(polled); the state machine is the same, only who notices the state differs. Pure: no clock, no
I/O; the caller passes the times and writes the events it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.events import OutageEvent, OutageKind, outage


@dataclass
class OutageAlarm:
    """The state of one connection's outage (see module docstring)."""

    lost: OutageKind
    restored: OutageKind
    alarm_after: float  # seconds down before the alarm (IB_ALARM_AFTER_SECONDS, ...)
    with_detail: bool = False  # events carry a ``detail`` (IB's reason); Redis has none
    down_since: float | None = None
    alarmed: bool = False
    detail: str = ""

    @property
    def pending(self) -> bool:
        """Down and not alarmed yet: an alarm is due at :attr:`alarm_due_at`."""
        return self.down_since is not None and not self.alarmed

    @property
    def alarm_due_at(self) -> float | None:
        if self.down_since is None or self.alarmed:
            return None
        return self.down_since + self.alarm_after

    def went_down(self, at: float, detail: str = "") -> bool:
        """Record the connection down at ``at``; True when this starts a new outage."""
        self.detail = detail or self.detail
        if self.down_since is not None:
            return False
        self.down_since, self.alarmed = at, False
        return True

    def alarm(self, now: float) -> OutageEvent | None:
        """The "lost" event, once per outage (None when up or already alarmed)."""
        if not self.pending:
            return None
        assert self.down_since is not None
        self.alarmed = True
        return outage(self.lost, self.down_since, now - self.down_since, self._detail(self.detail))

    def check(self, now: float) -> OutageEvent | None:
        """The "lost" event when the outage has lasted ``alarm_after`` seconds by ``now``."""
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
        self.down_since, self.alarmed = None, False

    def _detail(self, detail: str) -> str | None:
        return detail if self.with_detail else None
