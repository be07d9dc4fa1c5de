"""Pure rules for IB's connection troubles: what an IB notice means, how an outage is worded for
the trader, whether a job waits for IB or goes stale, when the outage alarm repeats, and what the
"restored" notice says was missed. No IB, clock or I/O: the callers pass codes, texts and times.

* Farm notices (2103 / 2105 / 2157 broken, 2104 / 2106 / 2158 OK) concern market data only: they
  never make the connection "not ready" and never cause a reconnect.
* 326 "client id already in use" after a quick reconnect: IB has not freed the old session. The
  worker retries the SAME client id with backoff (another id would leave the old session's orders
  to a client nobody listens to); the outage alarm names the conflict.
* 10197 "No market data during competing live session" (or a 1100 naming another session): a
  second login with the same username took the session.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from core.ids import order_ref

CONNECTIVITY_LOST, RESTORED_DATA_LOST, RESTORED_DATA_KEPT = 1100, 1101, 1102
CLIENT_ID_IN_USE = 326
COMPETING_SESSION = 10197
#: broken farm code -> the farm's name; OK farm code -> the farm's name
FARM_BROKEN = {2103: "market data", 2105: "historical data (HMDS)", 2157: "sec-def"}
FARM_OK = {2104: "market data", 2106: "historical data (HMDS)", 2158: "sec-def"}

NoticeKind = Literal[
    "lost", "restored", "farm_broken", "farm_ok", "client_id_in_use", "competing_session", "other"
]


@dataclass(frozen=True)
class IBNotice:
    """What one IB message (error code and text) means for the connection."""

    kind: NoticeKind
    farm: str = ""  # the farm's name, for the farm notices

    @property
    def data_only(self) -> bool:
        """The notice concerns market data only: no reconnect, no teardown, trading goes on."""
        return self.kind in ("farm_broken", "farm_ok")


def classify(code: int, text: str) -> IBNotice:
    """What IB's message ``code`` / ``text`` means (see module docstring)."""
    if code == CONNECTIVITY_LOST:
        lowered = text.lower()
        if "competing" in lowered or "another" in lowered:
            return IBNotice("competing_session")
        return IBNotice("lost")
    if code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
        return IBNotice("restored")
    if code in FARM_BROKEN:
        return IBNotice("farm_broken", FARM_BROKEN[code])
    if code in FARM_OK:
        return IBNotice("farm_ok", FARM_OK[code])
    if code == CLIENT_ID_IN_USE:
        return IBNotice("client_id_in_use")
    if code == COMPETING_SESSION:
        return IBNotice("competing_session")
    return IBNotice("other")


def outage_detail(notice: IBNotice, code: int, text: str, client_id: int) -> str:
    """The outage's reason as the trader reads it in the alarm (IB's own words kept at the end)."""
    said = f"IB {code} {' '.join(text.split())}".strip()
    if notice.kind == "client_id_in_use":
        return (f"client id {client_id} is still in use at IB (the old session is not freed yet); "
                f"retrying the same client id with backoff. {said}")  # fmt: skip
    if notice.kind == "competing_session":
        return (f"another login took the IB session (TWS or the mobile app with the same username; "
                f"a second IB username for manual use avoids it); trading resumes when the session "
                f"returns. {said}")  # fmt: skip
    return said


def sync_timeout_detail(error: str, timeout: float) -> str:
    """A connect whose positions / open-orders answer never came (ib_async issue #84)."""
    return (f"IB accepted the connection but did not answer the start-up requests within "
            f"{timeout:g}s ({error}); reconnecting")  # fmt: skip


JobWait = Literal["go", "wait", "stale"]


def job_wait(*, ready: bool, age: float, stale_after: float, exit_only: bool, sent: bool,
             decided: bool) -> JobWait:  # fmt: skip
    """Whether a job goes to IB now, waits for it, or ends stale.

    An entry older than ``stale_after`` seconds ends stale (a late entry trades a signal the market
    has left). An exit or a flatten (``exit_only``) never goes stale: it waits and goes out as soon
    as IB is back (a position the strategy left must not stay open). A job whose orders went out
    (``sent``) or whose decision is stored (``decided``) is followed, never abandoned here."""
    if age > stale_after and not (exit_only or sent or decided):
        return "stale"
    return "go" if ready else "wait"


def whole_when(alert_id: str, planned: Sequence[str], recorded: Sequence[str]) -> tuple[str, bool] | None:
    """For a ``submitted`` alert: the order IB must know for its orders to be whole, and whether it
    was ever sent (recorded). That is its stored plan's last leg, the one that transmits (a
    reversal's opening bracket comes after its close: a worker that died between the two, its job
    lost with Redis, left the alert ``submitted`` with only the close sent); without planned legs,
    its last recorded order. None when nothing was recorded (its job never sent anything)."""
    if not recorded:
        return None
    if not planned:
        return recorded[-1], True
    last = order_ref(alert_id, planned[-1])
    return last, last in recorded


def lost_placement(last_ref: str, known: Collection[str]) -> bool:
    """Whether a ``submitted`` alert's bracket was lost with the connection: after a reconnect
    (IB's open orders of every client, completed orders and executions read), IB does not know its
    last order sent, the one that transmits the bracket (worker/lost_placements.py). A staged leg
    IB holds without it never trades."""
    return last_ref not in known


def next_alarm_at(
    down_since: float, alarm_after: float, repeat_every: float, alarms_sent: int
) -> float | None:
    """When the outage's next alarm is due: ``alarm_after`` seconds into it, then every
    ``repeat_every`` seconds (0: never again); None when no further alarm is due."""
    if alarms_sent == 0:
        return down_since + alarm_after
    if repeat_every <= 0:
        return None
    return down_since + alarm_after + alarms_sent * repeat_every


def missed_text(stale: int, stale_ids: tuple[str, ...] = ()) -> str:
    """What the outage cost, for the "restored" notice ("" when nothing was missed)."""
    if stale <= 0:
        return ""
    shown = ", ".join(stale_ids[:5]) + (" ..." if len(stale_ids) > 5 else "")
    noun = "alert" if stale == 1 else "alerts"
    text = f"missed while down: {stale} {noun} went stale (refused, nothing sent)"
    return f"{text}: {shown}" if shown else text
