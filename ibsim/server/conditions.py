"""The server's current fault conditions, read by the connections and the router and set by the
fault injector: message latency (the fault delays and the latency profile, :mod:`ibsim.latency`),
an IB connectivity outage, refused connections."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ibsim.latency import Latency

CONNECTIVITY_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}


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
