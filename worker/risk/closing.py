"""When a contract's session closes, as the risk file's ``flatten_before_close`` reads it (pure: the
calendar is read by worker/risk/session_end.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Closing:
    """When the contract's session closes, as seen at ``now`` (worker/risk/session_end.py reads it
    from the exchange's calendar): what ``flatten_before_close`` compares."""

    state: str  # "open" (in a session: ``closes`` is its close), "closed", "always" (forex), "unknown"
    calendar: str  # "XNYS", "CMES", or "" (none)
    now: datetime
    closes: datetime | None = None  # the open session's close, exchange time (early closes counted)
    detail: str = ""  # "16:00 America/New_York (XNYS)", "13:00 ... (XNYS, early close)", why not open

    def flatten_from(self, minutes: int) -> datetime | None:
        """The flatten minute: ``minutes`` before the open session's close (None: not open)."""
        return self.closes - timedelta(minutes=minutes) if self.closes is not None else None

    def due(self, minutes: int | None) -> bool:
        """``now`` is in the last ``minutes`` of an open session (None or 0: never)."""
        start = self.flatten_from(minutes) if minutes else None
        return start is not None and self.closes is not None and start <= self.now < self.closes
