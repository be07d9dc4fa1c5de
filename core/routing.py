"""Which accounts the running workers serve, read from their heartbeats.

An alert goes to the rq queue of its account (``keys.queue_name``); only a worker consuming that
queue can execute it. Every worker publishes the accounts it consumes in its heartbeat
(``"serves"``: a list that holds ``default`` for the queue of alerts naming no account). A worker
without ``IB_ACCOUNT`` serves ``default`` and, once connected, the account IB says it manages
(the first one when IB lists several); until it has learned that account its ``"serves"`` is
``null`` and the served accounts count as unknown.

One live worker per IB account, and one for ``default`` (worker/claims.py), so an account in
``"serves"`` names the one connection that trades it.

Intake, the relay's sweep and every flatten front end ask the same question here: is anyone
listening on this account's queue?
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from core import keys
from core.account_ids import account_id_problem


@dataclass(frozen=True)
class Served:
    """The accounts live workers consume; ``known`` is False when there is no live heartbeat or a
    worker has not yet learned its managed account (then nothing can be refused)."""

    accounts: frozenset[str]
    known: bool
    workers: int
    # a live worker trades ibsim (its heartbeat's ``ib_simulator``): notices the web writes say
    # SIMULATOR too, as the worker's own do
    simulator: bool = False

    def names(self) -> str:
        """'DU1, DU2', 'DU1 and alerts that name no account' or 'none', for messages (``default``
        is the queue's internal name, not an account a user could name)."""
        names = ", ".join(sorted(a for a in self.accounts if a != keys.DEFAULT_ACCOUNT))
        if keys.DEFAULT_ACCOUNT in self.accounts:
            names = f"{names} and alerts that name no account" if names else "alerts that name no account"
        return names or "none"


UNKNOWN = Served(frozenset(), False, 0)
# How long an account stays served in intake's eyes after its worker's heartbeat was last seen.
REMEMBER_SECONDS = 30.0


def served_from(beats: Iterable[Mapping[str, Any]]) -> Served:
    """Fold worker heartbeats into the set of served accounts."""
    accounts: set[str] = set()
    known = True
    count = 0
    simulator = False
    for beat in beats:
        count += 1
        simulator = simulator or beat.get(keys.HEARTBEAT_SIMULATOR) is True
        serves = beat.get(keys.HEARTBEAT_SERVES)
        if not isinstance(serves, list):
            known = False  # still learning its account (or an older worker): refuse nothing
            continue
        accounts.update(str(a) for a in serves)
    return Served(frozenset(accounts), known and count > 0, count, simulator)


def read_served(client: redis.Redis) -> Served:
    """The served accounts now: two Redis round trips (the workers' set, then one MGET of their
    heartbeats), no keyspace scan. Redis down, or no live heartbeat: unknown."""
    try:
        members = sorted(m.decode() if isinstance(m, bytes) else m for m in client.smembers(keys.WORKERS_SET))
        values = client.mget(members) if members else []
        beats: list[Mapping[str, Any]] = []
        gone = []
        for member, raw in zip(members, values, strict=True):
            if raw is None:
                gone.append(member)  # that worker's heartbeat expired: it stopped
                continue
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict):
                beats.append(doc)
        if gone:
            client.srem(keys.WORKERS_SET, *gone)
    except redis.RedisError:
        return UNKNOWN
    return served_from(beats)


def account_refusal(account: str | None, served: Served) -> str | None:
    """Why an alert or flatten for ``account`` would never be taken, or None when it would be
    (or when the served accounts are not known)."""
    name = account or keys.DEFAULT_ACCOUNT
    if not served.known or name in served.accounts:
        return None
    if account:
        return f"no worker serves account {account}; workers serve: {served.names()}"
    return (
        "no worker takes alerts without an account (every worker has IB_ACCOUNT set): "
        f"name one of: {served.names()}"
    )


def flatten_account_problem(account: str | None, served: Served) -> str | None:
    """Why a flatten for ``account`` is refused (not an account id by the alerts' own rule, or no
    worker serves it). None flattens the worker that takes the alerts naming no account."""
    if account is not None:
        problem = account_id_problem(account)
        if problem is not None:
            return f"not an account id: {problem}"
    return account_refusal(account, served)


class ServedCache:
    """The served accounts, re-read at most every ``ttl`` seconds per process.

    Intake must stay cheap: reading heartbeats costs a SCAN and a GET per worker, so a valid alert
    does not pay it; one request every ``ttl`` seconds refreshes the value for all threads (the
    others keep using the previous one meanwhile). A worker that starts or stops is therefore seen
    up to ``ttl`` seconds late: an alert for a newly served account may be refused that long, and
    an alert for an account whose worker just stopped is accepted (the relay's sweep ends it).
    (A worker that stops stays counted until its heartbeat expires, 15 s.)

    An account seen served in the last ``remember`` seconds still counts as served: after Redis
    restarted empty the heartbeats come back one by one (each worker beats every 3 s), and an
    alert for the account whose worker has not yet beaten again must not be refused meanwhile
    (found by the chaos run, ``bench/chaos.py``). A worker that stopped for good is therefore
    seen gone ``remember`` seconds after its heartbeat expired.
    """

    def __init__(self, client: redis.Redis, ttl: float = 3.0, remember: float = REMEMBER_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self.remember = remember
        self._value = UNKNOWN
        self._read_at = float("-inf")
        self._seen: dict[str, float] = {}  # account -> when a heartbeat last said it was served
        self._lock = threading.Lock()

    def get(self) -> Served:
        """The cached value, refreshed when older than ``ttl`` (by one caller at a time)."""
        if time.monotonic() - self._read_at < self.ttl or not self._lock.acquire(blocking=False):
            return self._value
        try:
            self._value = self._with_recent(read_served(self.client))
            self._read_at = time.monotonic()
        finally:
            self._lock.release()
        return self._value

    def _with_recent(self, served: Served) -> Served:
        now = time.monotonic()
        for account in served.accounts:
            self._seen[account] = now
        recent = {a for a, at in self._seen.items() if now - at < self.remember}
        if not served.known or recent <= served.accounts:
            return served
        return dataclasses.replace(served, accounts=served.accounts | recent)
