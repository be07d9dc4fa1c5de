"""Drains the outbox: per chat, unsent notices in id order, each delivered once, in order.

Policy (why it looks like this):

* **Order per chat.** One task per chat sends its oldest unsent notice (or batch) and only then
  the next. On the first failure the chat stops and backs off (exponential, jittered, capped);
  later notices wait behind the failed one, so nothing overtakes.
* **Exactly once, and its one window.** A notice is marked sent (``sent_at``) in its own short
  transaction right after Telegram answers ``ok``. If the process dies between Telegram accepting
  the message and that commit (a few milliseconds), or a read timeout hides a delivery Telegram
  did make, the notice is sent again after restart: at-least-once there is unavoidable (the Bot
  API has no idempotency key). If the database is down at that moment, the mark is retried until
  it succeeds (never the message); a stop meanwhile leaves the notice to be sent again after
  restart. Everywhere else delivery is exactly once.
* **Flood policy.** Telegram allows about one message per second per chat (short bursts OK) and
  ~30/s overall. python-telegram-bot's ``AIORateLimiter`` enforces the overall and group limits
  and honours 429 ``retry_after``, but has no per-chat limit for private chats, and one message
  per notice would make a flood of 100 fills take 100 s. So each chat has a token bucket (burst
  3, then 1/s), and when a chat's backlog holds more than one notice the sender joins
  consecutive notices (still in order, each once) into one message of at most 4096 characters.
  A quiet chat gets every notice alone and at once (latency); a flood of 100 fills becomes a
  handful of messages within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from core.approval import alert_of_notice
from core.notice_text import MAX_TEXT, text_length
from worker.notify.notice_rows import (
    LOG_CHAT,
    give_up,
    mark_sent,
    pending,
    pending_chats,
    pending_count,
    record_failure,
)
from worker.notify.transport import (
    ChatUnavailable,
    LogTransport,
    Rejected,
    RetryLater,
    TemporaryFailure,
    Transport,
)
from worker.retry import backoff_delay, retry_async

log = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PendingNotice:
    id: int
    kind: str
    text: str
    silent: bool
    approval: str | None = None  # the alert an approval notice asks about: it goes alone, with buttons


@dataclass
class SenderConfig:
    """Tunables of the sender (defaults follow Telegram's documented limits)."""

    per_chat_rate: float = 1.0  # messages per second per chat, sustained
    per_chat_burst: int = 3  # messages a quiet chat may send at once
    group_rate: float = 20 / 60  # groups and channels (negative chat ids)
    poll_seconds: float = 1.0  # look for rows committed by other processes this often
    discover_seconds: float = 5.0  # look for chats nobody serves (rows of other processes' config)
    backoff_first: float = 0.5
    backoff_max: float = 8.0  # one try per 8 s per chat while Telegram is down: back within seconds
    unavailable_backoff: float = 60.0  # bot blocked / chat not found / bad token
    fetch_limit: int = 100


class TokenBucket:
    """A per-chat pace: ``burst`` messages at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def delay(self) -> float:
        """Seconds to wait before the next message may go (0 when a token is available)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.delay()
        self.tokens -= 1


def build_batch(rows: Sequence[PendingNotice], batching: bool, limit: int = MAX_TEXT) -> list[PendingNotice]:
    """The next message's notices: the oldest alone, or (batching) as many consecutive ones as
    fit into one message; an approval notice (it carries buttons) always alone."""
    if not rows:
        return []
    batch = [rows[0]]
    if not batching or rows[0].approval:
        return batch
    size = text_length(rows[0].text)
    sep = text_length(BATCH_SEPARATOR)
    for row in rows[1:]:
        extra = sep + text_length(row.text)
        if size + extra > limit or row.approval:  # a question with its buttons is a message of its own
            break
        batch.append(row)
        size += extra
    return batch


def batch_text(batch: Sequence[PendingNotice]) -> str:
    return BATCH_SEPARATOR.join(row.text for row in batch)


class OutboxSender:
    """Runs one task per chat on the notifier's loop; :meth:`kick` says new rows were committed."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        executor: Executor | None = None,
        config: SenderConfig | None = None,
        on_sent: Callable[[str, Sequence[int]], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.transport = transport
        self.executor = executor
        self.config = config or SenderConfig()
        self.on_sent = on_sent
        self._chats: dict[str, _ChatQueue] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.recovered_at = 0.0  # monotonic time of the last send that ended a chat's failures

    async def db(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking database call off the loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    def kick(self) -> None:
        """New rows may be waiting (call on the loop thread)."""
        for chat in self._chats.values():
            chat.kick.set()

    def start(self, chats: Sequence[str] = ()) -> None:
        """Start draining on the running loop; ``chats`` are known up front (configured chats)."""
        for chat_id in chats:
            self._ensure(chat_id)
        self._task = asyncio.get_running_loop().create_task(self._discover(), name="outbox-discover")

    def _ensure(self, chat_id: str) -> None:
        queue = self._chats.get(chat_id)
        if queue is None or queue.task.done():
            self._chats[chat_id] = _ChatQueue(self, chat_id)

    async def _discover(self) -> None:
        # Finds chats with unsent rows that no task serves yet (rows from another process, or a
        # chat removed from the configuration that still has notices to deliver).
        while not self._stopping:
            try:
                for chat_id in await self.db(self._pending_chats):
                    self._ensure(chat_id)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the notifier
                log.exception("notice outbox: cannot list pending chats")
            # Periodic, not on every wake: the configured chats are served from the start, and
            # a wake must cost one query per chat, not an extra scan.
            await asyncio.sleep(self.config.discover_seconds)

    def _pending_chats(self) -> list[str]:
        with self.sessions() as session:
            return pending_chats(session)

    async def stop(self, timeout: float = 5.0) -> int:
        """Deliver what can be delivered within ``timeout`` (no backoff waits), then stop.
        Returns how many notices stay unsent (they go out after the next start)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        for chat in self._chats.values():
            chat.kick.set()
        tasks = [c.task for c in self._chats.values() if not c.task.done()]
        if tasks:
            done, still = await asyncio.wait(tasks, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        try:
            return await self.db(self._count_pending)
        except Exception:  # noqa: BLE001
            return -1

    def _count_pending(self) -> int:
        with self.sessions() as session:
            return pending_count(session)


class _ChatQueue:
    """The sending loop of one chat."""

    def __init__(self, sender: OutboxSender, chat_id: str) -> None:
        self.sender = sender
        self.chat_id = chat_id
        self.kick = asyncio.Event()
        cfg = sender.config
        # Rows of the "log" pseudo chat (written while no token was configured) go to the log even
        # after a token is set: Telegram has no such chat.
        self.transport: Transport = LogTransport() if chat_id == LOG_CHAT else sender.transport
        rate = cfg.per_chat_rate
        if chat_id.startswith("-"):
            # Groups and channels: Telegram allows 20 messages a minute. Pace here (where waiting
            # lets the backlog grow into one batch) rather than inside the rate limiter.
            rate = min(rate, cfg.group_rate)
        self.bucket = TokenBucket(rate, cfg.per_chat_burst) if self.transport.paced else None
        self.failures = 0
        self.one_at_a_time = 0  # after a batch was refused, send this many notices alone
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"outbox-chat-{chat_id}")

    async def run(self) -> None:
        sender, cfg = self.sender, self.sender.config
        while True:
            self.kick.clear()  # before reading: a commit after this point sets it again
            try:
                rows = await sender.db(self._fetch)
            except Exception:  # noqa: BLE001
                log.exception("notice outbox: cannot read pending notices of chat %s", self.chat_id)
                if sender._stopping:
                    return
                await self._sleep(cfg.backoff_max)
                continue
            if not rows:
                if sender._stopping:
                    return
                try:
                    await asyncio.wait_for(self.kick.wait(), timeout=cfg.poll_seconds)
                except TimeoutError:
                    pass
                continue
            if self.bucket is not None:
                delay = self.bucket.delay()
                if delay > 0:
                    await asyncio.sleep(delay)
                    # More rows may have arrived while pacing: fetch again so they join the batch.
                    try:
                        rows = await sender.db(self._fetch) or rows
                    except Exception:  # noqa: BLE001 - the rows read before are still valid
                        log.exception("notice outbox: cannot re-read chat %s", self.chat_id)
                self.bucket.take()
            batching = self.transport.batching and not self.one_at_a_time
            batch = build_batch(rows, batching)
            if not await self._deliver(batch) and sender._stopping:
                return

    def _fetch(self) -> list[PendingNotice]:
        with self.sender.sessions() as session:
            return [
                PendingNotice(n.id, n.kind, n.text, bool(n.silent), alert_of_notice(n.kind, n.dedup_key))
                for n in pending(session, self.chat_id, self.sender.config.fetch_limit)
            ]

    async def _deliver(self, batch: list[PendingNotice]) -> bool:
        """Send one batch: True when it is done with (sent, or refused for good), False when it
        waits for another try."""
        ids = [row.id for row in batch]
        text = batch_text(batch)
        silent = all(row.silent for row in batch)
        started = time.monotonic()
        try:
            kinds = "+".join(dict.fromkeys(row.kind for row in batch))
            await self.transport.send(self.chat_id, text, silent, kind=kinds, approval=batch[0].approval)
        except RetryLater as exc:
            log.warning("telegram flood control for chat %s: waiting %.1f s", self.chat_id, exc.retry_after)
            await self._sleep(exc.retry_after, until_recovered=False)
            return False
        except Rejected as exc:
            if len(batch) > 1:
                # One of them is refused: retry them one by one so only the bad one is dropped.
                self.one_at_a_time = len(batch)
                return False
            log.error("telegram refused notice %s (%s) for good: %s", ids[0], batch[0].kind, exc)
            await self._db_quietly(self._give_up, ids, str(exc))
            self._consume_single()
            return True
        except TemporaryFailure as exc:
            await self._not_delivered(ids, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - an unexpected bug: keep the notice, back off
            self.failures += 1
            log.exception("notice to chat %s failed unexpectedly", self.chat_id)
            await self._db_quietly(self._record_failure, ids, repr(exc))
            await self._sleep(self._backoff())
            return False
        await self._sent(ids, started)
        return True

    async def _not_delivered(self, ids: list[int], exc: TemporaryFailure) -> None:
        """A failure worth another try: count it, and wait (a blocked chat stays blocked; the
        others wait out their backoff, or until another chat gets through)."""
        self.failures += 1
        unavailable = isinstance(exc, ChatUnavailable)
        wait = self.sender.config.unavailable_backoff if unavailable else self._backoff()
        (log.error if unavailable or self.failures == 1 else log.warning)(
            "notice to chat %s not delivered (attempt %d, retry in %.1f s): %s",
            self.chat_id,
            self.failures,
            wait,
            exc,
        )
        await self._db_quietly(self._record_failure, ids, str(exc))
        await self._sleep(wait, until_recovered=not unavailable)

    async def _sent(self, ids: list[int], started: float) -> None:
        """Telegram took the batch: mark its rows sent (retried until it is: never resent)."""
        sender = self.sender
        if self.failures:
            log.info("notices to chat %s flow again after %d failed attempts", self.chat_id, self.failures)
            # Telegram is back: chats still sleeping off their backoff try again now.
            sender.recovered_at = time.monotonic()
        self.failures = 0
        # The at-least-once window is from here to the commit below: keep it short.
        # Must not resend: retry the mark (until it succeeds), not the message.
        await retry_async(
            lambda: sender.db(self._mark_sent, ids),
            on=(Exception,),
            what=f"marking notices {ids} sent",
            base=0.5,
            cap=0.5,
        )
        self._consume_single(len(ids))
        log.debug(
            "sent %d notice(s) to chat %s in %.0f ms",
            len(ids),
            self.chat_id,
            (time.monotonic() - started) * 1000,
        )
        if sender.on_sent is not None:
            sender.on_sent(self.chat_id, ids)

    def _consume_single(self, count: int = 1) -> None:
        if self.one_at_a_time:
            self.one_at_a_time = max(0, self.one_at_a_time - count)

    def _backoff(self) -> float:
        cfg = self.sender.config
        delay = backoff_delay(max(1, self.failures), cfg.backoff_first, cfg.backoff_max, jitter=False)
        return delay * random.uniform(0.8, 1.2)  # jitter: several chats must not retry in lockstep

    async def _sleep(self, seconds: float, *, until_recovered: bool = True) -> None:
        # Backoff ignores kicks (new notices must not hammer a failing API) but not a stop, nor
        # another chat's success after an outage.
        started = time.monotonic()
        end = started + seconds
        while not self.sender._stopping:
            if until_recovered and self.sender.recovered_at > started:
                return
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))

    async def _db_quietly(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            await self.sender.db(func, *args)
        except Exception:  # noqa: BLE001
            log.exception("notice outbox bookkeeping failed")

    def _mark_sent(self, ids: list[int]) -> None:
        with self.sender.sessions.begin() as session:
            mark_sent(session, ids)

    def _record_failure(self, ids: list[int], error: str) -> None:
        with self.sender.sessions.begin() as session:
            record_failure(session, ids, error)

    def _give_up(self, ids: list[int], error: str) -> None:
        with self.sender.sessions.begin() as session:
            give_up(session, ids, error)
