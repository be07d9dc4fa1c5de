"""When a contract's session closes, seen from now: what the risk file's ``flatten_before_close``
compares (the flatten watcher, worker/session_flatten.py, and the entry check, worker/risk/checks.py).

The close is the exchange calendar's (``exchange_calendars``, the same mapping as ``trading_hours``:
worker/risk/calendar.py), so holidays and early closes count: the day after Thanksgiving and
Christmas Eve close at 13:00 New York on the NYSE, and a holiday or a weekend has no session, so
nothing is flattened then. Only an open session has a close to flatten before: before the open,
after the close and at night a market order would wait for the next session, and nothing is done.
CME futures' day ends at 16:00 Chicago, when Globex halts (the library's CMES session runs to
17:00). Forex and crypto have no exchange close (``always``); a contract on an exchange without a mapping
is ``unknown`` (an entry of a strategy with the setting is refused; its position cannot be
flattened in time, and the watcher says so).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from worker.risk.calendar import calendar_name, exchange_calendar
from worker.risk.closing import Closing

# The library's CMES session runs 17:00 to 17:00 Chicago; CME Globex halts every day from 16:00 to
# 17:00 (docs/risk.md: the session ends at 16:00), so a flatten before 17:00 would find it halted.
# Its early closes (12:00, 12:15) stand as the library has them.
LIBRARY_CME_CLOSE = time(17)
CME_HALT = time(16)


def closing_at(sec_type: str, exchange: str, now: datetime, *, primary_exchange: str = "",
               currency: str = "") -> Closing:  # fmt: skip
    """Where ``now`` (aware) falls against the contract's session close."""
    name = calendar_name(sec_type, exchange, primary_exchange, currency)
    if name == "":
        return Closing("always", "", now, detail=f"{sec_type} trades around the clock (no exchange close)")
    if name is None:
        where = primary_exchange or exchange or "?"
        return Closing("unknown", "", now, detail=f"no calendar for {sec_type} on {where} (see docs/risk.md)")
    return _closing(name, now)


def _closing(name: str, now: datetime) -> Closing:
    import pandas as pd  # with exchange_calendars, imported on first use only

    cal = exchange_calendar(name, now)
    local = now.astimezone(cal.tz)
    stamp = pd.Timestamp(now.astimezone(UTC)).floor("min")
    if not cal.is_open_on_minute(stamp, ignore_breaks=True):
        why = "outside the session"
        if not cal.is_session(local.strftime("%Y-%m-%d")):
            why = "weekend" if local.weekday() >= 5 else "holiday"
        return Closing("closed", name, now, detail=f"{why}, {local:%a %Y-%m-%d %H:%M} {cal.tz} ({name})")
    session = cal.minute_to_session(stamp)
    closes = cal.session_close(session).to_pydatetime().astimezone(cal.tz)
    if name == "CMES" and closes.time() == LIBRARY_CME_CLOSE:
        closes = closes.replace(hour=CME_HALT.hour, minute=CME_HALT.minute)
    early = " early close" if session in cal.early_closes else ""
    detail = f"{closes:%H:%M} {cal.tz} ({name}{',' if early else ''}{early}, {closes:%a %Y-%m-%d})"
    return Closing("open", name, now, closes, detail)


def describe_when(closing: Closing, minutes: int) -> str:
    """``15 min before the 16:00 America/New_York close (XNYS, Wed 2026-11-25)``."""
    return f"{minutes} min before the {closing.detail.replace(' (', ' close (', 1)}"
