"""The Notifier: one daemon thread with its own asyncio loop that drains the outbox, runs the
Telegram command bot and watches for conditions worth an alarm.

The execution worker never waits on it: every public method is thread-safe and returns at once
(``worker_stopping`` does one small database insert). Alarms are written to the outbox like any
other notice, so they are durable and ordered with the fills.

It composes the pieces: who sends (``lease.SendLease``), what is down (``outage.OutageAlarm``, one
for IB and one for Redis), what runs periodically (``jobs``), how notices leave (``sender``) and
the command bot (``bot``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import events
from core.events import AlarmEvent, DailySummaryEvent, Event, OutageEvent
from worker.decision.connectivity import missed_text
from worker.notify.compose import known_kinds
from worker.notify.jobs import DailyAt, run_every
from worker.notify.lease import SendLease
from worker.notify.notice_rows import enqueue_notices, prune, target_chats
from worker.notify.outage import OutageAlarm
from worker.notify.sender import OutboxSender, SenderConfig
from worker.notify.summary import daily_summary_event, stale_since
from worker.notify.transport import LogTransport, TelegramTransport, Transport

if TYPE_CHECKING:
    import redis

    from worker.notify.bot import CommandBot

log = logging.getLogger(__name__)

LEASE_TTL = 15.0
LEASE_RENEW = 5.0
REDIS_PING_SECONDS = 5.0
SUMMARY_CHECK_SECONDS = 20.0
# Delivered notices are kept this long (dedup of replayed events), then pruned hourly.
NOTICE_RETENTION = timedelta(days=30)
PRUNE_EVERY_SECONDS = 3600.0


class Notifier:
    """Notices, alarms and the command bot of one worker process (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis | None = None,
        *,
        sender_config: SenderConfig | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        poll_timeout: float = 10.0,
        lease_ttl: float = LEASE_TTL,
        redis_ping_seconds: float = REDIS_PING_SECONDS,
        simulator: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        # whether the worker trades ibsim right now: its notices then say SIMULATOR first
        self.simulator = simulator
        self.sessions = sessions
        self.redis = redis_client
        self.sender_config = sender_config or SenderConfig()
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.lease_ttl = lease_ttl
        self.lease_renew = min(LEASE_RENEW, lease_ttl / 3)
        self.redis_ping_seconds = redis_ping_seconds
        account = settings.ib_account or "default"
        self.owner = owner or f"{account}:{settings.ib_client_id}"
        self.host = socket.gethostname()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop_requested: asyncio.Event | None = None
        self._stop_timeout = 5.0
        self._lock = threading.Lock()
        self.send_lease = SendLease(sessions, self.owner, lease_ttl)
        self._ib_connected: bool | None = None
        self.ib_outage = OutageAlarm("ib_lost", "ib_restored", settings.ib_alarm_after_seconds,
                                     with_detail=True, repeat_every=settings.ib_alarm_repeat_seconds)  # fmt: skip
        self._ib_timer: asyncio.TimerHandle | None = None
        self.redis_outage = OutageAlarm("redis_lost", "redis_restored", settings.redis_alarm_after_seconds)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tv2ib-notifier-db")
        self.sender: OutboxSender | None = None
        self.bot: CommandBot | None = None  # when a token is set
        self.is_leader = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._prune_task: asyncio.Task[None] | None = None
        self._previous_holder: tuple[str, float] | None = None
        self._unknown_kinds_warned = False

    # --- thread-safe API for the worker -----------------------------------------------------------

    def start(self, timeout: float = 5.0) -> None:
        """Start the notifier thread; returns once its loop runs."""
        if self._thread is not None:
            return
        self._warn_unknown_kinds()
        self._thread = threading.Thread(target=self._run, name="tv2ib-notifier", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)

    def wake(self) -> None:
        """New notice rows were committed: send them now (thread-safe, never blocks)."""
        self._call_soon(self._on_wake)

    def ib_connection_changed(self, connected: bool, detail: str = "") -> None:
        """Report IB connectivity (thread-safe). Lost for longer than IB_ALARM_AFTER_SECONDS raises
        an alarm; a later restore sends a notice (a short blip sends nothing)."""
        at = self.clock()
        with self._lock:
            if self._loop is None:  # not started yet: remember the state, the loop picks it up
                self._apply_ib_state(connected, detail, at, schedule=False)
                return
        self._call_soon(self._apply_ib_state, connected, detail, at)

    def worker_stopping(self, reason: str) -> None:
        """Write the "worker stopping" alarm now (synchronously: the process may be going away)."""
        event = events.worker_stopped(
            reason,
            account=self.settings.ib_account,
            client_id=self.settings.ib_client_id,
            pid=os.getpid(),
            host=self.host,
            at=self.clock(),
        )
        try:
            self.enqueue_event(event)
        except Exception:  # noqa: BLE001 - never raise into the worker's shutdown path
            log.exception("cannot record the worker-stopped notice")

    def enqueue_event(self, event: Event) -> int:
        """Record a notice for ``event`` in its own transaction and wake the sender (for callers
        that have no transaction of their own; facts belong in the caller's transaction)."""
        with self.sessions.begin() as session:
            added = enqueue_notices(session, event, self.settings, simulator=self.simulator())
        self.wake()
        return added

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout``, stop the bot, release the lease."""
        thread = self._thread
        if thread is None:
            return
        self._stop_timeout = timeout
        self._call_soon(self._request_stop)
        thread.join(timeout + 3.0)
        if thread.is_alive():
            log.warning("notifier thread did not stop within %.1f s", timeout + 3.0)
        self._thread = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- loop internals ---------------------------------------------------------------------------

    def _call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(self._executor)
        try:
            loop.run_until_complete(self._main(loop))
        except Exception:  # noqa: BLE001
            log.exception("notifier crashed")
        finally:
            with self._lock:
                self._loop = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
            self._ready.set()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop_requested = asyncio.Event()
        with self._lock:
            self._loop = loop
            # State reported before start: arm the alarm timer now.
            if self.ib_outage.pending:
                self._arm_ib_timer()
        self._ready.set()
        self._tasks.append(loop.create_task(self._leadership(), name="notifier-lease"))
        if self.redis is not None:
            self._tasks.append(loop.create_task(self._watch_redis(), name="notifier-redis"))
        if self.settings.daily_summary_time:
            due = DailyAt.parse(self.settings.daily_summary_time)
            summary_job = run_every(
                SUMMARY_CHECK_SECONDS, functools.partial(self._send_daily_summary, due), "daily summary"
            )
            self._tasks.append(loop.create_task(summary_job, name="notifier-summary"))
        await self._stop_requested.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.is_leader:
            # Stopped before (or without) holding the lease: one last try, so a "worker stopping"
            # notice written a moment ago still leaves with this process when no one else sends.
            try:
                if await self._db(self.send_lease.acquire):
                    await self._step_up()
            except Exception:  # noqa: BLE001
                log.exception("notifier: final lease attempt failed")
        await self._step_down(self._stop_timeout)

    def _request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _on_wake(self) -> None:
        if self.sender is not None:
            self.sender.kick()

    async def _db(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    # leadership: only the lease holder sends and runs the bot

    async def _leadership(self) -> None:
        try:
            # Who held the lease before us: a lease never released means its holder died without
            # a clean stop (SIGKILL, OOM, power), which no "worker stopping" notice reported.
            self._previous_holder = await self._db(self.send_lease.holder)
        except Exception:  # noqa: BLE001
            self._previous_holder = None
        while True:
            try:
                held = await self._db(self.send_lease.acquire)
            except Exception:  # noqa: BLE001
                log.exception("notifier lease check failed")
                held = self.is_leader  # keep the current role until the lease would expire
            if held and not self.is_leader:
                await self._step_up()
                await self._report_unclean_exit()
            elif not held and self.is_leader:
                log.warning("notifier lease lost to another worker; stop sending")
                await self._step_down(1.0, release=False)
            elif not held:
                log.debug("another worker sends the notices")
            await asyncio.sleep(self.lease_renew)

    async def _report_unclean_exit(self) -> None:
        previous, self._previous_holder = self._previous_holder, None
        if previous is None:
            return
        owner, expires = previous
        if owner == self.owner:
            title = "Worker restarted after an unclean exit"
            detail = "the previous process stopped without a clean shutdown (killed or crashed)"
        elif expires < self.clock():
            title = "Notices taken over from another worker"
            detail = f"worker {owner} stopped renewing its lease without a clean shutdown (crashed or hung)"
        else:
            return
        await self._enqueue(events.alarm(title, detail, dedup_key=f"unclean:{owner}:{expires:.3f}"))

    async def _step_up(self) -> None:
        self.is_leader = True
        transport: Transport
        if self.settings.telegram_bot_token:
            from worker.notify.bot import CommandBot

            self.bot = CommandBot(self.settings, self.sessions, self.redis, poll_timeout=self.poll_timeout)
            await self.bot.start()
            transport = TelegramTransport(self.bot.bot, self.bot.ready)
            if not self.settings.telegram_chat_ids:
                log.warning("TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is empty: notices go to the log")
        else:
            transport = LogTransport()
        self.sender = OutboxSender(self.sessions, transport, self._executor, self.sender_config)
        self.sender.start(target_chats(self.settings))
        if self._prune_task is None or self._prune_task.done():
            pruning = run_every(
                PRUNE_EVERY_SECONDS, self._prune_once, "notice pruning", while_=lambda: self.is_leader
            )
            self._prune_task = asyncio.get_running_loop().create_task(pruning, name="notifier-prune")
        log.info("notifier sending notices (%s)", type(transport).__name__)

    async def _prune_once(self) -> None:
        def prune_rows() -> int:
            cutoff = datetime.fromtimestamp(self.clock(), UTC) - NOTICE_RETENTION
            with self.sessions.begin() as session:
                return prune(session, cutoff)

        removed = await self._db(prune_rows)
        if removed:
            log.info("pruned %d delivered notices older than %s", removed, NOTICE_RETENTION)

    async def _step_down(self, timeout: float, release: bool = True) -> None:
        if self._prune_task is not None:
            self._prune_task.cancel()
            self._prune_task = None
        if self.sender is not None:
            # Most of the budget flushes notices; the bot's stop is bounded separately.
            left = await self.sender.stop(max(0.5, timeout - 1.5))
            if left:
                log.info("%d notice(s) stay in the outbox for the next start", left)
            self.sender = None
        if self.bot is not None:
            await self.bot.stop(timeout=1.5)
            self.bot = None
        if self.is_leader and release:
            await self._db(self.send_lease.release)
        self.is_leader = False

    # alarms

    async def _enqueue(self, event: OutageEvent | AlarmEvent | DailySummaryEvent) -> None:
        event.setdefault("account", self.settings.ib_account)
        event.setdefault("client_id", self.settings.ib_client_id)

        def write() -> int:
            with self.sessions.begin() as session:
                return enqueue_notices(session, event, self.settings, simulator=self.simulator())

        try:
            await self._db(write)
        except Exception:  # noqa: BLE001
            log.exception("cannot record %s notice", event["type"])
            return
        self._on_wake()

    def _apply_ib_state(self, connected: bool, detail: str, at: float, schedule: bool = True) -> None:
        self._ib_connected = connected
        if not connected:
            if self.ib_outage.went_down(at, detail) and schedule:
                self._arm_ib_timer()
            return
        if self._ib_timer is not None:
            self._ib_timer.cancel()
            self._ib_timer = None
        restored = self.ib_outage.came_back(at, detail)
        if restored is not None and schedule:
            asyncio.get_running_loop().create_task(self._announce_restored(restored))

    async def _announce_restored(self, event: OutageEvent) -> None:
        """The "restored" notice, with what the outage cost (alerts that went stale meanwhile)."""
        try:
            missed = await self._db(stale_since, self.sessions, event["since"], self.settings.ib_account)
        except Exception:  # noqa: BLE001 - the notice matters more than its count
            log.exception("cannot count the alerts missed during the IB outage")
        else:
            if text := missed_text(len(missed), tuple(missed)):
                event["missed"] = text
        await self._enqueue(event)

    def _arm_ib_timer(self) -> None:
        due = self.ib_outage.alarm_due_at
        assert self._loop is not None and due is not None
        self._ib_timer = self._loop.call_later(max(0.0, due - self.clock()), self._ib_timer_fired)

    def _ib_timer_fired(self) -> None:
        self._ib_timer = None
        event = self.ib_outage.alarm(self.clock())
        if event is not None:
            asyncio.get_running_loop().create_task(self._enqueue(event))
        if self.ib_outage.pending:  # IB_ALARM_REPEAT_SECONDS: the next alarm while it stays down
            self._arm_ib_timer()

    def _ping_redis(self) -> bool:
        try:
            return self.redis is not None and bool(self.redis.ping())
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False

    async def _watch_redis(self) -> None:
        # Only the sending worker watches: every worker shares the one Redis, one alarm is enough.
        while True:
            if not self.is_leader:
                self.redis_outage.reset()
                await asyncio.sleep(self.redis_ping_seconds)
                continue
            ok = await self._db(self._ping_redis)
            now = self.clock()
            if not ok:
                if self.redis_outage.went_down(now):
                    log.warning("Redis unreachable")
                event = self.redis_outage.check(now)
            else:
                event = self.redis_outage.came_back(now)
            if event is not None:
                await self._enqueue(event)
            await asyncio.sleep(self.redis_ping_seconds)

    def summary_event(self, now: datetime) -> DailySummaryEvent:
        """The daily summary of ``now``'s UTC day (blocking: database)."""
        return daily_summary_event(self.sessions, now)

    async def _send_daily_summary(self, due: DailyAt) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        if due.due(now):
            await self._enqueue(await self._db(self.summary_event, now))
            due.done(now)

    def _warn_unknown_kinds(self) -> None:
        unknown = set(self.settings.notify_modes) - known_kinds() - {"*"}
        if unknown:
            log.warning(
                "NOTIFY names unknown notice kinds %s (known: %s)", sorted(unknown), sorted(known_kinds())
            )
