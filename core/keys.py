"""Names shared by the web app and the worker: queues, job function, Redis keys, pub/sub channel.

Kept in one place because the two processes meet only through these strings.
"""

from __future__ import annotations

# rq job that executes one alert; its only argument is the alert id.
EXECUTE_ALERT_JOB = "worker.jobs.execute_alert"
# rq job that cancels every working order and closes every position of an account.
FLATTEN_JOB = "worker.jobs.flatten_all"
QUEUE_PREFIX = "tv2ib:orders:"
# Live events (order status, fills, alert state changes) as JSON, for the dashboard and notifier.
EVENTS_CHANNEL = "tv2ib:events"
HEARTBEAT_PREFIX = "tv2ib:worker:heartbeat:"
# A worker heartbeat older than this means the worker is gone.
HEARTBEAT_TTL_SECONDS = 15
# Heartbeat field: the accounts whose queues the worker consumes (a list; ``null`` while a worker
# without IB_ACCOUNT has not yet learned its managed account). See core/routing.py.
HEARTBEAT_SERVES = "serves"
# The heartbeat field that says the worker is connected to ibsim, not Interactive Brokers.
HEARTBEAT_SIMULATOR = "ib_simulator"
# Set of the heartbeat keys of every worker that ever beat: readers GET them all in one MGET
# instead of SCANning the keyspace (members whose key expired are dropped by the readers).
WORKERS_SET = "tv2ib:workers"
# The internal name of the queue of alerts that name no account (never an account id:
# core/account_ids.py refuses it wherever an account is named).
DEFAULT_ACCOUNT = "default"
# A worker's claim on an IB account, or on ``default``: one live worker each (worker/claims.py).
CLAIM_PREFIX = "tv2ib:claim:"

# Set on a job a worker took and put back on its queue (retry, stop, crash recovery): its orders may
# already be at IB, so the relay's sweep never takes such a job off the queue (core/relay.py).
TAKEN_PREFIX = "tv2ib:taken:"
TAKEN_TTL_SECONDS = 7 * 24 * 3600


def taken_key(job_id: str) -> str:
    """Marker key of a job that a worker took once (see :data:`TAKEN_PREFIX`)."""
    return f"{TAKEN_PREFIX}{job_id}"


def queue_name(account: str | None) -> str:
    """The rq queue of an account (``default`` when the alert names none)."""
    return f"{QUEUE_PREFIX}{account or DEFAULT_ACCOUNT}"


def claim_key(name: str) -> str:
    """The claim key of an IB account, or of ``default`` (the queue of alerts naming none)."""
    return f"{CLAIM_PREFIX}{name}"


def heartbeat_key(account: str | None, client_id: int) -> str:
    """Redis key a worker refreshes; value is JSON {"ts", "ib_connected", "account", "client_id", "serves", ...}."""
    return f"{HEARTBEAT_PREFIX}{account or DEFAULT_ACCOUNT}:{client_id}"


# The relay's lock (one relay at a time across web processes) and the time of its last full scan
# for lost jobs (gone after a Redis restart, which is exactly when a full scan is needed).
RELAY_LOCK_KEY = "tv2ib:relay:lock"
RELAY_SCAN_MARKER_KEY = "tv2ib:relay:scan"
# Rate-limit counters: f"{RATE_LIMIT_PREFIX}:{kind}:{address}:{window}".
RATE_LIMIT_PREFIX = "tv2ib:limits"
# Counts of intake's refusals waiting for their digest notice (core/notice_digest.py).
NOTICE_DIGEST_PREFIX = "tv2ib:notices:digest:"
# Dashboard sessions on the server: one key per signed-in session (value: its start time).
DASHBOARD_SESSION_PREFIX = "tv2ib:dashboard:session:"


PROCESSING_PREFIX = "tv2ib:processing:"
# Set of every processing list a consumer ever used: a worker finds the lists of dead workers of its
# queue in it (worker/consumer.py ``reclaim``) without SCANning the keyspace.
PROCESSING_LISTS = "tv2ib:processing-lists"


def processing_key(queue: str, worker_name: str) -> str:
    """The list a worker moves its job to while it runs it (BLMOVE), so a crash loses nothing.
    ``worker_name`` is ``<account|default>:<client id>``, the suffix of the worker's heartbeat key."""
    return f"{PROCESSING_PREFIX}{queue}:{worker_name}"


def heartbeat_of_worker(worker_name: str) -> str:
    """The heartbeat key of the worker that owns processing lists named ``worker_name``."""
    return f"{HEARTBEAT_PREFIX}{worker_name}"
