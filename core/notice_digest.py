"""Counting intake's refusals in Redis and reporting them as digests (``alert_invalid``,
``auth_failed``; texts in :mod:`core.intake_notices`).

Why Redis: every gunicorn process takes requests, and a limit of "one notice per N seconds" must
hold across all of them. Why digests: a broken template fires on every bar, and whoever guesses
secrets fires as fast as they can; one notice per request would flood the chat.

* A **bucket** is one Redis hash: fields starting with ``_`` describe it (``_first``: when its
  run began, ...), every other field is a count. A sorted set (:data:`DUE_KEY`) holds each
  bucket's due time. The relay (one process at a time, under its lock) calls
  :func:`flush_due`: each due bucket becomes one notice row (outbox), then its reported counts
  are subtracted (:data:`_ACK`), so a request counted while the notice was written is reported in
  the next digest, not lost. A failed database write leaves the bucket for the next pass; the
  notice's dedup key keeps a retry from writing it twice.
* **Invalid alerts** (a valid secret; stored ``invalid``): :class:`InvalidAlertGate` answers, in
  one round trip, whether this is the first of its strategy within ``NOTIFY_DIGEST_SECONDS``
  (notice at once, with its field errors) or one to count in the strategy's bucket. A digest
  re-arms the gate, so a template that stays broken costs one digest per window.
* **Failed authentications**: counted per ``(cause, address)`` inside the rate limiter's own Lua
  call (:data:`COUNT_AUTH_FAILURE`, see ``app/webhook/ratelimit.py``): no extra round trip, on a
  path an attacker can flood. One bucket for all addresses: one notice per run however many
  addresses guess; at most :data:`MAX_AUTH_ADDRESSES` are listed, the rest summed.

Fail open: when Redis is unreachable an invalid alert is reported at once (each one; they are
authenticated, so bounded by ``AUTHENTICATED_RATE_LIMIT``), and authentication failures go
uncounted (the rate limiter lets them through to their 401 as well).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis

from config.settings import Settings
from core.context import AppContext
from core.intake_notices import (
    ALERT_INVALID,
    AUTH_FAILED,
    auth_failures_draft,
    invalid_digest_draft,
)
from core.keys import NOTICE_DIGEST_PREFIX
from core.notices import NoticeDraft, enqueue_draft, mode_of
from core.routing import read_served

log = logging.getLogger(__name__)

DUE_KEY = f"{NOTICE_DIGEST_PREFIX}due"
AUTH_BUCKET = f"{NOTICE_DIGEST_PREFIX}auth"
INVALID_BUCKET_PREFIX = f"{NOTICE_DIGEST_PREFIX}invalid:"
INVALID_GATE_PREFIX = f"{NOTICE_DIGEST_PREFIX}invalid-gate:"
OTHERS_FIELD = "~others"  # failures of addresses past MAX_AUTH_ADDRESSES
MAX_AUTH_ADDRESSES = 20
FLUSH_BATCH = 50
MAX_REASON = 500

# KEYS: gate, bucket, due set. ARGV: window ms, now, strategy, alert id, reason, bucket TTL s.
# 1: the first of its strategy in the window (report it now); 0: counted for the digest.
_INVALID = """
if redis.call('SET', KEYS[1], ARGV[4], 'NX', 'PX', ARGV[1]) then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], '_first', ARGV[2])
end
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HSET', KEYS[2], '_strategy', ARGV[3], '_last_id', ARGV[4], '_last_reason', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[2]) + left / 1000, KEYS[2])
return 0
"""

# Spliced into the rate limiter's script (app/webhook/ratelimit.py), run for a failed
# authentication when the auth_failed notice is on. KEYS[3]: the bucket, KEYS[4]: the due set.
# ARGV[4]: the field ("<cause> <address>"), ARGV[5]: now, ARGV[6]: window s, ARGV[7]: fields
# listed at most, ARGV[8]: bucket TTL s.
COUNT_AUTH_FAILURE = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[3], '_first', ARGV[5])
  redis.call('ZADD', KEYS[4], tonumber(ARGV[5]) + tonumber(ARGV[6]), KEYS[3])
end
-- HLEN counts '_first' too: a new address is listed while fewer than ARGV[7] are
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 or redis.call('HLEN', KEYS[3]) <= tonumber(ARGV[7]) then
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
else
  redis.call('HINCRBY', KEYS[3], '~others', 1)
end
redis.call('EXPIRE', KEYS[3], ARGV[8])
"""

# After a digest was written: subtract what it reported. KEYS: bucket, due set, gate (or the
# bucket again). ARGV: now, window s, window ms, '1' to re-arm the gate, then field/count pairs.
_ACK = """
for i = 5, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
local left = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 1) ~= '_' then left = left + tonumber(all[i + 1]) end
end
if left <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
else
  redis.call('HSET', KEYS[1], '_first', ARGV[1])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), KEYS[1])
end
if ARGV[4] == '1' then redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) end
return left
"""


def bucket_ttl(window: float) -> int:
    """How long a bucket outlives its window when no relay flushes it (bounds Redis memory)."""
    return int(window * 4) + 3600


def auth_field(cause: str, address: str) -> str:
    """The count field of one address's failures of one cause."""
    return f"{cause} {address[:64]}"


def _strategy_hash(strategy: str | None) -> str:
    return hashlib.sha256((strategy or "").encode("utf-8", "surrogatepass")).hexdigest()[:16]


class _Warning:
    """One warning per 60 s while Redis is unreachable."""

    def __init__(self) -> None:
        self._at = 0.0
        self._lock = threading.Lock()

    def __call__(self, what: str, exc: Exception) -> None:
        with self._lock:
            if time.monotonic() - self._at > 60:
                self._at = time.monotonic()
                log.warning("%s: Redis unreachable (%s); reporting each one", what, type(exc).__name__)


class InvalidAlertGate:
    """Whether an invalid alert is reported at once or counted for its strategy's digest."""

    def __init__(self, client: redis.Redis, window_seconds: float):
        self.window = window_seconds
        self._script = client.register_script(_INVALID)
        self._warn = _Warning()

    def first(self, strategy: str | None, alert_id: str, reason: str) -> bool:
        """Count one invalid alert of ``strategy`` (shown name, redacted); True when it is the
        first within the window (report it now). True as well when Redis cannot tell."""
        key = _strategy_hash(strategy)
        args = [
            int(self.window * 1000),
            repr(time.time()),
            strategy or "",
            alert_id,
            reason[:MAX_REASON],
            bucket_ttl(self.window),
        ]
        keys = [f"{INVALID_GATE_PREFIX}{key}", f"{INVALID_BUCKET_PREFIX}{key}", DUE_KEY]
        try:
            return bool(self._script(keys=keys, args=args))
        except (redis.RedisError, OSError) as exc:
            self._warn("invalid-alert notices", exc)
            return True


def _counts(data: Mapping[str, str]) -> dict[str, int]:
    counts = {}
    for field, value in data.items():
        if not field.startswith("_"):
            try:
                counts[field] = int(value)
            except ValueError:
                continue
    return {k: v for k, v in counts.items() if v > 0}


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _digest(key: str, data: Mapping[str, str], counts: Mapping[str, int], settings: Settings) -> NoticeDraft:
    """The notice of a due bucket."""
    first = _float(data.get("_first"), time.time())
    secrets = settings.secrets()
    if key == AUTH_BUCKET:
        rows = []
        for field, n in counts.items():
            if field != OTHERS_FIELD:
                cause, _, address = field.partition(" ")
                rows.append((cause, address, n))
        return auth_failures_draft(
            counts=rows,
            others=counts.get(OTHERS_FIELD, 0),
            started_at=first,
            secrets=secrets,
            dedup_key=f"auth_failed:{first:.3f}",
        )
    return invalid_digest_draft(
        strategy=data.get("_strategy") or None,
        count=sum(counts.values()),
        first_at=first,
        last_id=data.get("_last_id"),
        last_reason=data.get("_last_reason"),
        digest_seconds=settings.notify_digest_seconds,
        secrets=secrets,
        dedup_key=f"invalid_digest:{key.removeprefix(INVALID_BUCKET_PREFIX)}:{first:.3f}",
    )


def flush_due(ctx: AppContext, now: float | None = None) -> int:
    """Write one notice per due bucket and subtract what it reported; returns how many buckets it
    flushed. Call from one process at a time (the relay, under its lock). Redis and database
    errors propagate: the buckets stay and the next pass tries again."""
    client, settings = ctx.redis, ctx.settings
    now = time.time() if now is None else now
    due = client.zrangebyscore(DUE_KEY, "-inf", now, start=0, num=FLUSH_BATCH)
    if not due:
        return 0
    ack = client.register_script(_ACK)
    window = settings.notify_digest_seconds
    flushed = 0
    for raw_key in due:
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        data = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        counts = _counts(data)
        if counts:
            kind = AUTH_FAILED if key == AUTH_BUCKET else ALERT_INVALID
            if mode_of(settings, kind) != "off":
                draft = _digest(key, data, counts, settings)
                simulator = read_served(client).simulator  # the workers trade ibsim: say so
                with ctx.sessions.begin() as session:
                    enqueue_draft(session, draft, settings, simulator=simulator)
        gate = key.replace(INVALID_BUCKET_PREFIX, INVALID_GATE_PREFIX, 1)
        pairs: list[Any] = [x for field, n in counts.items() for x in (field, n)]
        rearm = "1" if counts and key.startswith(INVALID_BUCKET_PREFIX) else "0"
        ack(keys=[key, DUE_KEY, gate], args=[repr(now), window, int(window * 1000), rearm, *pairs])
        flushed += 1
    return flushed


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
