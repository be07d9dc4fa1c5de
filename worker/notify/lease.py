"""Which process sends: a lease in the database, so several workers (one per IB account) never
deliver the same notice twice nor fight over Telegram's getUpdates (409 Conflict).

Every worker writes notices to the outbox; only the lease holder drains it and runs the command
bot. The lease lives in the ``control`` table (not Redis: notices, including "Redis lost", must
flow while Redis is down) and is taken by compare-and-swap, which is safe on SQLite and PostgreSQL.
The holder renews it every few seconds; when a holder dies, another worker takes over once the
lease expires. The owner name is stable per worker identity (account + client id; IB refuses two
connections with the same pair), so a restarted worker takes its own lease back at once.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.models import Control

log = logging.getLogger(__name__)

LEASE_KEY = "notifier_lease"


def _parse(value: str) -> tuple[str, float]:
    owner, _, expires = value.rpartition(" ")
    try:
        return owner, float(expires)
    except ValueError:
        return owner, 0.0


def try_acquire(sessions: sessionmaker[Session], owner: str, ttl: float, now: float | None = None) -> bool:
    """Take or renew the lease for ``ttl`` seconds; False when another live owner holds it."""
    now = time.time() if now is None else now
    new_value = f"{owner} {now + ttl:.3f}"
    try:
        with sessions.begin() as session:
            row = session.get(Control, LEASE_KEY)
            if row is None:
                session.add(Control(key=LEASE_KEY, value=new_value))
                return True
            holder, expires = _parse(row.value)
            if holder != owner and expires > now:
                return False
            result = session.execute(
                update(Control)
                .where(Control.key == LEASE_KEY, Control.value == row.value)
                .values(value=new_value)
            )
            return result.rowcount == 1
    except IntegrityError:  # another process inserted the row first
        return False


def release(sessions: sessionmaker[Session], owner: str) -> None:
    """Give the lease up (clean stop), so another worker need not wait for it to expire."""
    try:
        with sessions.begin() as session:
            row = session.get(Control, LEASE_KEY)
            if row is not None and _parse(row.value)[0] == owner:
                session.execute(delete(Control).where(Control.key == LEASE_KEY, Control.value == row.value))
    except Exception:  # noqa: BLE001 - best effort: the lease expires anyway
        log.exception("cannot release the notifier lease")


def holder(sessions: sessionmaker[Session]) -> tuple[str, float] | None:
    """(owner, expiry epoch) of the current lease, if any."""
    with sessions() as session:
        row = session.get(Control, LEASE_KEY)
        return None if row is None else _parse(row.value)


class SendLease:
    """One notifier's hold on the lease: take/renew, release, and who held it before.

    Calls are serialised. They run on executor threads, and cancelling an awaited executor call
    does not stop its thread: a stop() that lands while the renewal loop is taking the lease
    cancels that loop mid-call, and the stop's final attempt then ran *alongside* it: both read
    "no lease row", both inserted it, the loser got False, and the notifier stopped without
    sending what was pending (the flaky test_stop_flushes_what_is_pending). Serialised, the final
    attempt sees the lease its own earlier call took and renews it.
    """

    def __init__(self, sessions: sessionmaker[Session], owner: str, ttl: float) -> None:
        self.sessions = sessions
        self.owner = owner
        self.ttl = ttl
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take or renew the lease for ``ttl`` seconds (blocking); False when another owner has it."""
        with self._lock:
            return try_acquire(self.sessions, self.owner, self.ttl)

    def release(self) -> None:
        """Give the lease up (blocking, best effort)."""
        with self._lock:
            release(self.sessions, self.owner)

    def holder(self) -> tuple[str, float] | None:
        """(owner, expiry epoch) of whoever holds the lease now (blocking)."""
        return holder(self.sessions)
