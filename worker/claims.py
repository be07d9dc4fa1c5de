"""One IB account, one live worker: a worker's claims on what it serves, held in Redis.

Why: IB reports an order only to the connection (client id) that placed it. Two workers trading
one account cannot see each other's orders, so each attaches its own exits to the same position
(long 10 with two SELL 10 stops: a move through the stop fills both and leaves a short 10), and an
alert that closes or reverses the position on one connection cannot cancel the exits the other
placed. The rule is therefore one live worker per IB account, and one for the queue of alerts
that name no account (``default``: two consumers on it would split those alerts between accounts).

A claim is a Redis key per name (``keys.claim_key``: the IB account, or ``default``) set with
``SET NX`` and the heartbeat's TTL, so two workers starting at the same instant cannot both win.
Its value names the holder (host, pid, client id, IB address); the heartbeat thread renews it
with the heartbeat, so it lives exactly as long as the worker does.

When the key is taken, the holder is either alive or a worker that stopped without releasing it
(SIGKILL, a crash). :meth:`Claims.acquire` tells them apart without guessing: a holder on this host
whose process is gone is taken over at once (systemd's restart after a crash does not wait); any
other holder is watched for one renewal interval: renewed means alive, and the claim is refused;
not renewed, the key expires within the TTL and is claimed then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from core import keys
from worker.ib import IBConnection
from worker.retry import retry

log = logging.getLogger(__name__)

# Tells this process from an earlier one that had the same pid (a container restarted: pid 1 again).
PROCESS_TOKEN = uuid.uuid4().hex
HOST = socket.gethostname()
POLL_SECONDS = 0.25

# Renew: our claim (by token) is extended with a fresh value; an expired one (we stalled longer
# than the TTL, or Redis lost its keys) is taken back, since nobody else holds it. Another holder: 0.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v then
  local ok, doc = pcall(cjson.decode, v)
  if not ok or type(doc) ~= 'table' or doc['token'] ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
# Delete the key only while the holder named by ARGV[1] (its token) holds it.
_DELETE_IF_HELD_BY = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, doc = pcall(cjson.decode, v)
if ok and type(doc) == 'table' and doc['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its value says."""

    token: str
    host: str
    pid: int
    process: str
    client_id: int | None
    ib: str
    since: float

    @classmethod
    def parse(cls, raw: bytes | str) -> Holder | None:
        try:
            doc = json.loads(raw)
            return cls(str(doc["token"]), str(doc["host"]), int(doc["pid"]), str(doc.get("process", "")),
                       doc.get("client_id"), str(doc.get("ib", "")), float(doc.get("since", 0)))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    def gone(self) -> bool:
        """The holder's process surely ended (only knowable on this host)."""
        if self.host != HOST:
            return False
        if self.pid == os.getpid():
            return self.process != PROCESS_TOKEN  # our pid, not our process: an earlier life
        return not _alive(self.pid)

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S UTC", time.gmtime(self.since)) if self.since else "?"
        return f"client id {self.client_id}, pid {self.pid} on {self.host}, IB {self.ib}, since {since}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    try:  # a zombie (killed, not yet reaped by its parent) is gone
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ClaimRefused(Exception):  # noqa: N818 - a refusal with its reason, not a crash
    """Another live worker holds the claim; the message says who and what to do."""

    def __init__(self, name: str, holder: Holder | None) -> None:
        self.name = name
        self.holder = holder
        who = holder.describe() if holder is not None else "a holder whose claim is unreadable"
        super().__init__(f"{what_is(name)} is already served by another live worker ({who})")


def what_is(name: str) -> str:
    """'account DU1' or 'the queue of alerts that name no account', for messages."""
    return "the queue of alerts that name no account" if name == keys.DEFAULT_ACCOUNT else f"account {name}"


class Claims:
    """The claims of one worker. Thread-safe: taken on the main thread, renewed on the heartbeat
    thread, released at shutdown."""

    def __init__(
        self, client: redis.Redis, *, client_id: int, ib: str, ttl: int = keys.HEARTBEAT_TTL_SECONDS
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self._doc: dict[str, Any] = {"token": self.token, "host": HOST, "pid": os.getpid(),
                                     "process": PROCESS_TOKEN, "client_id": client_id, "ib": ib}  # fmt: skip
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def held(self, name: str) -> bool:
        with self._lock:
            return name in self._held

    def _value(self) -> str:
        return json.dumps({**self._doc, "since": self._doc.get("since") or time.time(), "ts": time.time()})

    def acquire(self, name: str, stop: threading.Event) -> bool:
        """Claim ``name``; waits at most one TTL (see the module docstring). Raises
        :class:`ClaimRefused` when a live worker holds it; False when ``stop`` was set meanwhile.
        Redis errors propagate (the caller retries)."""
        key = keys.claim_key(name)
        self._doc.setdefault("since", time.time())
        first: bytes | None = None
        deadline = time.monotonic() + self.ttl + 2 * POLL_SECONDS
        while not stop.is_set():
            if self.client.set(key, self._value(), nx=True, ex=self.ttl):
                with self._lock:
                    self._held.add(name)
                log.info("claimed %s (one worker per IB account)", what_is(name))
                return True
            raw = self.client.get(key)
            if raw is None:
                continue  # released or expired just now: claim it
            holder = Holder.parse(raw)
            if holder is not None and holder.gone():
                log.warning("%s was claimed by a worker that stopped without releasing it (%s): taken over",
                            what_is(name), holder.describe())  # fmt: skip
                self.client.eval(_DELETE_IF_HELD_BY, 1, key, holder.token)
                continue
            if first is None:
                first = raw
                log.info("%s is claimed (%s): checking whether that worker is alive (at most %s s)",
                         what_is(name), holder.describe() if holder else "unreadable claim", self.ttl)  # fmt: skip
            elif raw != first or time.monotonic() > deadline:
                raise ClaimRefused(name, holder)  # renewed meanwhile: it is alive
            stop.wait(POLL_SECONDS)
        return False

    def renew(self) -> list[str]:
        """Renew every claim (the heartbeat thread); returns the names another worker holds now
        (this worker lost them: it must stop serving them). Redis errors propagate."""
        with self._lock:
            names = sorted(self._held)
        lost = []
        for name in names:
            if not self.client.eval(_RENEW, 1, keys.claim_key(name), self.token, self._value(), self.ttl):
                lost.append(name)
        if lost:
            with self._lock:
                self._held.difference_update(lost)
        return lost

    def release(self) -> None:
        """Give every claim up (a clean stop: the next worker need not wait for the TTL)."""
        with self._lock:
            names, self._held = sorted(self._held), set()
        for name in names:
            with contextlib.suppress(redis.RedisError):
                self.client.eval(_DELETE_IF_HELD_BY, 1, keys.claim_key(name), self.token)


WHY_ONE = "a second IB connection cannot see the first one's orders, so it would double orders and exits"


def refusal(exc: ClaimRefused, *, configured: str | None, ib: str, others: list[str]) -> str:
    """The sentence a refused worker exits with: what is taken, by whom, why, what to do.
    ``configured`` is IB_ACCOUNT; ``others`` the other accounts IB manages."""
    if exc.name == keys.DEFAULT_ACCOUNT:
        return (f"{exc}. One worker takes the alerts that name no account: set IB_ACCOUNT on this "
                "one (its alerts then name their account), or stop the other worker first")  # fmt: skip
    if configured:
        return (f"{exc}. One IB account is served by one worker only ({WHY_ONE}): stop the other "
                "worker first, or set another IB_ACCOUNT on this one")  # fmt: skip
    other = f", or set IB_ACCOUNT to another account IB manages ({', '.join(others)})" if others else ""
    return (f"IB at {ib} manages {exc.name}, the account a worker without IB_ACCOUNT trades, and {exc}. "
            f"One IB account is served by one worker only ({WHY_ONE}): stop the other worker (this one "
            f"then takes both the alerts naming {exc.name} and those naming no account), or stop this "
            f"one{other}")  # fmt: skip


def lost(name: str, ttl: int) -> str:
    """The sentence a worker stops with when another worker took its claim."""
    return (
        f"{what_is(name)} was claimed by another worker: this one did not renew its claim for "
        f"{ttl} s (stalled?), so it stops serving it now ({WHY_ONE})"
    )


class WorkerClaims:
    """A worker's use of its :class:`Claims`: what it claims at start and once IB says which account
    it trades, the renewal, and why it refused (``refused``: its exit message, exit code 2)."""

    def __init__(
        self, claims: Claims, conn: IBConnection, *, configured: str | None, stopping: threading.Event
    ) -> None:
        self.claims = claims
        self.conn = conn
        self.configured = configured  # IB_ACCOUNT
        self.stopping = stopping
        self.refused: str | None = None
        self.replaced = False  # another worker took a claim this one held (it stalled)

    def serves_alone(self) -> bool:
        """This worker holds the claim of the account it trades (the guard reads it on the IB loop)."""
        account = self.configured or self.conn.account
        return bool(account) and self.claims.held(str(account))

    def claim(self, name: str) -> bool:
        """Claim an IB account or ``default`` (waits for Redis); False when refused or stopping."""
        try:
            return retry(lambda: self.claims.acquire(name, self.stopping), on=(redis.RedisError,),
                         what="Redis unavailable for the account claim", base=0.5, cap=5.0,
                         stop=self.stopping)  # fmt: skip
        except ClaimRefused as exc:
            others = [a for a in self.conn.managed_accounts if a != name]
            ib = f"{self.conn.host}:{self.conn.port}"
            self.refused = refusal(exc, configured=self.configured, ib=ib, others=others)
            log.error("refusing to serve: %s", self.refused)
        except redis.RedisError:  # raised only once stopping is set
            pass
        return False

    def claim_managed_account(self) -> bool:
        """Without IB_ACCOUNT the worker trades the account IB says it manages: wait for the
        connect that tells it, then claim that account before anything trades on it."""
        while not self.stopping.is_set():
            if self.conn.wait_ready(1.0) and self.conn.account:
                return self.claim(str(self.conn.account))
        return False

    def release(self) -> None:
        """Give every claim up (a clean stop: the next worker need not wait for the TTL)."""
        self.claims.release()

    def renew(self) -> None:
        """Renew the claims (the heartbeat thread). One that another worker holds now means this
        one stalled past the TTL and was replaced: it stops serving at once (the guard first,
        since it reads :meth:`serves_alone`)."""
        try:
            taken = self.claims.renew()
        except redis.RedisError as exc:  # nobody can claim while Redis is away either
            log.debug("claims not renewed: %s", exc)
            return
        if taken and not self.refused:
            self.replaced = True
            self.refused = lost(taken[0], self.claims.ttl)
            log.error("%s", self.refused)
            self.stopping.set()
