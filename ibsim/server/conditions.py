"""The server's current fault conditions, read by the connections and the router and set by the
fault injector: message latency, an IB connectivity outage, refused connections."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CONNECTIVITY_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}


@dataclass
class Latency:
    """Seconds a family of messages is held back (messages to one client stay in order)."""

    #: order messages: acks, statuses, fills, order errors, whatIf answers (fault ``delay``)
    orders: float = 0.0
    #: position / portfolio / account updates a fill causes, on top of ``orders`` (fault
    #: ``position_delay``: TWS reports positions a moment after the execution)
    positions: float = 0.0


@dataclass
class Conditions:
    """What is wrong right now."""

    latency: Latency = field(default_factory=Latency)
    #: IB's side is unreachable (between error 1100 and 1101 / 1102): no fills
    outage: bool = False
    #: connections are refused until this time.monotonic() instant
    refusing_until: float = 0.0

    @property
    def refusing(self) -> bool:
        """Whether new connections are refused now."""
        return time.monotonic() < self.refusing_until
