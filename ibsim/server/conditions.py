"""The server's current fault conditions, read by the connections and the router and set by the
fault injector: message latency (the fault delays and the latency profile, :mod:`ibsim.latency`),
an IB connectivity outage, refused connections, order messages refused for pacing."""

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
    #: clientId -> time.monotonic() instant until which IB still holds its old session: a startApi
    #: with that id gets error 326 (the ``hold_session`` fault)
    held_sessions: dict[int, float] = field(default_factory=dict)
    #: message id -> time.monotonic() instant until which requests of that kind get no answer
    #: (the ``stall_sync`` fault: a connect whose positions or open orders never come)
    unanswered: dict[int, float] = field(default_factory=dict)
    #: the ``pacing`` fault: order messages (placeOrder, cancelOrder) answered with error 100 and
    #: dropped: this many more, and every one until this time.monotonic() instant
    paced_count: int = 0
    paced_until: float = 0.0
    #: only this client's order messages (None: every client's)
    paced_client: int | None = None
    #: the ``drop_mid_bracket`` fault: this many more staged orders (transmit=False) close their
    #: client's connection as soon as IB has read them; the bracket's later legs, already on the
    #: wire, are never read (a connection lost between two legs of one bracket)
    drop_after_staged: int = 0
    #: and then refuse connections for this many seconds (a reconnect that takes a while)
    refuse_after_staged: float = 0.0

    def pacing_refuses(self, client_id: int | None) -> bool:
        """Whether the ``pacing`` fault refuses an order message of ``client_id`` now (counts it)."""
        if self.paced_client is not None and client_id != self.paced_client:
            return False
        if time.monotonic() < self.paced_until:
            return True
        if self.paced_count > 0:
            self.paced_count -= 1
            return True
        return False

    def held(self, client_id: int) -> bool:
        """Whether IB still holds ``client_id``'s old session (a new one gets 326)."""
        return time.monotonic() < self.held_sessions.get(client_id, 0.0)

    def stalled(self, msg_id: int) -> bool:
        """Whether requests with message id ``msg_id`` go unanswered now."""
        return time.monotonic() < self.unanswered.get(msg_id, 0.0)

    @property
    def refusing(self) -> bool:
        """Whether new connections are refused now."""
        return time.monotonic() < self.refusing_until
