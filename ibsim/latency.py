"""How long ibsim holds its answers back: the fault delays and the latency profile.

The fault delays (``POST /fault`` ``delay`` / ``position_delay``) hold order messages back. A
latency profile (``--latency ib``, ``POST /latency``) gives each family of answers the delay a live
IB account shows: order acknowledgements and fills, what-if answers, contract lookups, the first
market data, the position and account updates a fill causes, and the account stream's periodic
updates. The profile ``none`` (the default) holds nothing back and sends nothing periodically, so
the bytes on the wire are those of a simulator without profiles. Where each figure comes from:
docs/ibsim-protocol.md, "Latency profiles".

Every answer a profile holds back is noted in a :class:`HeldLog` (what, for whom, when asked, when
written), which ``GET /latency`` shows: ibsim's own record that an answer left no sooner than the
profile says.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, fields, replace

from ibsim.model import Json


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds each family of answers is held back (0: at once), and the periodic stream."""

    name: str = "none"
    #: openOrder / orderStatus / error answering placeOrder, cancelOrder and reqGlobalCancel
    ack: float = 0.0
    #: execDetails, commissionReport and the statuses of a fill, after the ack (or after the
    #: moment a resting order becomes marketable)
    fill: float = 0.0
    #: the openOrder answering a whatIf order
    what_if: float = 0.0
    #: reqContractDetails, reqMarketRule, reqMatchingSymbols
    contract_details: float = 0.0
    #: reqMktData: the data type and the first round of ticks (snapshot or streaming)
    snapshot: float = 0.0
    #: reqMktData snapshot: tickSnapshotEnd (at least ``snapshot``)
    snapshot_end: float = 0.0
    #: position, portfolio, account values and P&L a fill causes, after the fill's messages
    positions: float = 0.0
    #: every account value and portfolio row pushed to reqAccountUpdates / reqAccountUpdatesMulti
    #: subscribers at this interval (0: only when a position changes)
    account_interval: float = 0.0
    #: reqPnL / reqPnLSingle pushed at this interval (0: only when a position changes)
    pnl_interval: float = 0.0

    @property
    def active(self) -> bool:
        """Whether anything is held back or pushed periodically."""
        return any(getattr(self, f.name) for f in fields(self) if f.name != "name")

    def to_json(self) -> Json:
        """The control API's form: the name and every figure in milliseconds."""
        doc: Json = {"profile": self.name}
        for key, attr in FIGURES.items():
            doc[key] = round(getattr(self, attr) * 1000.0, 3)
        return doc


#: the control API's names of the figures (milliseconds) -> the profile's attributes (seconds)
FIGURES = {
    "ackMs": "ack",
    "fillMs": "fill",
    "whatIfMs": "what_if",
    "contractDetailsMs": "contract_details",
    "snapshotMs": "snapshot",
    "snapshotEndMs": "snapshot_end",
    "positionsMs": "positions",
    "accountIntervalMs": "account_interval",
    "pnlIntervalMs": "pnl_interval",
}

NO_LATENCY = LatencyProfile()
#: a retail account trading through a gateway near IB's US servers; each figure and its source:
#: docs/ibsim-protocol.md, "Latency profiles" (most are estimates)
IB_LIKE = LatencyProfile(
    name="ib",
    ack=0.060,
    fill=0.040,
    what_if=0.350,
    contract_details=0.150,
    snapshot=0.300,
    snapshot_end=0.300,
    positions=0.050,
    account_interval=180.0,
    pnl_interval=1.0,
)
PROFILES = {p.name: p for p in (NO_LATENCY, IB_LIKE)}


def profile_named(name: str, overrides_ms: Json | None = None) -> LatencyProfile:
    """A profile by name, with figures replaced (``{"whatIfMs": 800}``); ValueError for an
    unknown name or figure, or a figure below 0."""
    base = PROFILES.get(name)
    if base is None:
        raise ValueError(f"unknown latency profile {name!r}; expected one of {', '.join(PROFILES)}")
    changes: dict[str, float] = {}
    for key, value in (overrides_ms or {}).items():
        attr = FIGURES.get(key)
        if attr is None:
            raise ValueError(f"unknown latency figure {key!r}; expected one of {', '.join(FIGURES)}")
        seconds = float(value) / 1000.0
        if not seconds >= 0.0 or seconds == float("inf"):
            raise ValueError(f"{key} must be a number of milliseconds from 0, got {value!r}")
        changes[attr] = seconds
    profile = replace(base, **changes)
    if profile.snapshot_end < profile.snapshot:
        profile = replace(profile, snapshot_end=profile.snapshot)
    return profile


@dataclass
class Held:
    """One answer held back by the profile: what, for whom, when asked and when written
    (``time.monotonic()`` seconds)."""

    kind: str
    client_id: int
    ref: int
    delay: float
    asked: float = field(default_factory=time.monotonic)
    sent: float | None = None

    def to_json(self) -> Json:
        """``GET /latency``'s row: the delay asked, the time the answer was held, and when it was
        asked and written (ibsim's monotonic clock, ms: the order of events across rows)."""
        held = None if self.sent is None else round((self.sent - self.asked) * 1000.0, 3)
        sent = None if self.sent is None else round(self.sent * 1000.0, 3)
        return {"kind": self.kind, "clientId": self.client_id, "id": self.ref,
                "delayMs": round(self.delay * 1000.0, 3), "heldMs": held,
                "askedAtMs": round(self.asked * 1000.0, 3), "sentAtMs": sent}  # fmt: skip


class HeldLog:
    """The last answers the profile held back (bounded)."""

    def __init__(self, size: int = 1000) -> None:
        self._rows: deque[Held] = deque(maxlen=size)

    def note(self, kind: str, client_id: int | None, ref: int, delay: float) -> Held | None:
        """A new row, or None when nothing is held back (no profile: nothing noted)."""
        if delay <= 0:
            return None
        row = Held(kind, client_id or 0, ref, delay)
        self._rows.append(row)
        return row

    def rows(self) -> list[Json]:
        """Every row kept, oldest first."""
        return [row.to_json() for row in self._rows]

    def clear(self) -> None:
        """Forget every row."""
        self._rows.clear()


@dataclass
class Latency:
    """Seconds a family of messages is held back (messages of one family to one client stay in
    order): the fault delays and the latency profile, and the log of what the profile held."""

    #: order messages: acks, statuses, fills, order errors, whatIf answers (fault ``delay``)
    orders: float = 0.0
    #: position / portfolio / account updates a fill causes, on top of ``orders`` (fault
    #: ``position_delay``: TWS reports positions a moment after the execution)
    positions: float = 0.0
    #: the latency profile in force (``--latency``, ``POST /latency``)
    profile: LatencyProfile = NO_LATENCY
    log: HeldLog = field(default_factory=HeldLog)
