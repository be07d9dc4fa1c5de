"""Says when a protection locks a strategy's entries and when the lock ends (worker/risk/protections.py).

The locks themselves are recomputed from the fills wherever they are needed (an alert's verdict,
this watcher): nothing has to be stored for them to survive a restart. What is stored is what was
SAID: one :class:`~core.models.Control` row per account, ``risk:locks:<account>``, holding the
locks announced (JSON, worker/risk/protections.py ``dumps``). Every few seconds (the gate's
``watch_once`` on the housekeeping thread) the locks that hold now are compared with it:

* a lock not announced yet: a ``protection`` event ``locked`` (the notice "Entries locked");
* an announced lock that no longer holds: ``unlocked`` ("its time is up", or, before its time,
  "the risk file no longer locks it": a reload changed or removed the rule);
* a lock a later fill extended (same rule, strategy and ticker): the row follows, no notice.

The row and the events are written in one transaction of the worker's recorder, so a restart
neither repeats a notice nor misses an unlock that fell due while the worker was down. The row is
also what the dashboard shows as the active locks (``until`` still ahead).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import events
from core.models import Control
from core.risk_protections import LOCKS_KEY_PREFIX
from core.risk_rules import RiskRules
from worker.recording.unit import UnitOfWork
from worker.risk.calendar import next_trading_day
from worker.risk.protections import Lock, dumps, loads, locks_at
from worker.risk.state import ClosedFillRow

log = logging.getLogger(__name__)

Key = tuple[str, str, str]


def locks_key(account: str) -> str:
    return LOCKS_KEY_PREFIX + (account or "default")


def current_locks(rules_for: Callable[[str | None], RiskRules], closed: dict[str, tuple[ClosedFillRow, ...]],
                  now: datetime, currency: str) -> dict[Key, Lock]:  # fmt: skip
    """Every lock that holds at ``now`` for one account's strategies (``closed``: their fills)."""
    found: dict[Key, Lock] = {}
    for fills in closed.values():
        name = fills[-1].strategy if fills else ""
        rules = rules_for(name or None)
        for lock in locks_at(rules, name, fills, now, currency=currency, next_day=next_trading_day):
            found[lock.key] = lock
    return found


def changes(
    announced: dict[Key, Lock], current: dict[Key, Lock], now: datetime
) -> list[events.ProtectionEvent]:
    """The events that bring what was said (``announced``) to what holds (``current``)."""
    said: list[events.ProtectionEvent] = []
    for key, lock in current.items():
        if key not in announced:
            said.append(_event("locked", lock))
    for key, lock in announced.items():
        if key not in current:
            detail = "its time is up" if lock.until <= now else "the risk file no longer locks it"
            said.append(_event("unlocked", lock, f"{detail} (it held {lock.what} until {lock.until_text})"))
    return said


def _event(state: Literal["locked", "unlocked"], lock: Lock, detail: str = "") -> events.ProtectionEvent:
    return events.protection(
        state, account="", strategy=lock.strategy, rule=lock.rule,
        symbol=lock.symbol, label=lock.label, source=lock.source, why=lock.why, what=lock.what,
        since=lock.since.isoformat(), until=lock.until.isoformat(), until_text=lock.until_text, detail=detail,
    )  # fmt: skip


def read_announced(session: Session) -> dict[str, dict[Key, Lock]]:
    """Every account's announced locks, as stored."""
    rows = session.execute(select(Control.key, Control.value).where(Control.key.startswith(LOCKS_KEY_PREFIX)))
    found = {}
    for key, value in rows:
        account = key[len(LOCKS_KEY_PREFIX) :]
        found["" if account == "default" else account] = {lock.key: lock for lock in loads(value)}
    return found


def write_announced(session: Session, account: str, locks: list[Lock]) -> None:
    key = locks_key(account)
    row = session.get(Control, key)
    if row is None:
        session.add(Control(key=key, value=dumps(locks)))
    else:
        row.value = dumps(locks)


class LockWatch:
    """The gate's announcer of locks (one per worker); see the module docstring."""

    def __init__(self, run: Callable[[Callable[[UnitOfWork], None]], None] | None) -> None:
        self.run = run  # a write on the recorder thread, waited for (None: unit tests, nothing said)
        self.announced: dict[str, dict[Key, Lock]] | None = None  # None: not read from the database yet

    def load(self, session: Session) -> None:
        self.announced = read_announced(session)

    def said(self, account: str) -> bool:
        """Whether locks of ``account`` were announced and not yet said to have ended."""
        return bool((self.announced or {}).get(account))

    def watch(self, account: str, current: dict[Key, Lock], now: datetime) -> list[events.ProtectionEvent]:
        """Say what changed for ``account`` since the last pass; returns the events (for the log)."""
        assert self.announced is not None, "load() first"
        before = self.announced.get(account, {})
        if before == current:
            return []
        said = changes(before, current, now)
        for event in said:
            event["account"] = account
        locks = sorted(current.values(), key=lambda lock: lock.key)

        def write(uow: UnitOfWork) -> None:
            write_announced(uow.session, account, locks)
            for event in said:
                uow.emit(event)

        if self.run is not None:
            self.run(write)
        self.announced[account] = dict(current)
        for event in said:
            log.warning("protection %s: %s %s (%s): %s; %s", event["state"], event["label"], event["what"],
                        event["source"], event["why"], event["detail"] or f"until {event['until_text']}")  # fmt: skip
        return said
