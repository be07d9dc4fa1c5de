"""The worker process: wiring, heartbeat, signals and the start/stop sequence.

Threads of one worker process:

* main: the queue :class:`~worker.consumer.Consumer` (blocking Redis pops) and the executor;
* ``ib``: the asyncio loop that owns the ib_async connection (:class:`~worker.ib.IBConnection`; the
  jobs' requests go through :class:`~worker.ib.Trading` on that loop);
* ``recorder``: the single database writer (:class:`~worker.recording.recorder.Recorder`);
* ``heartbeat``: refreshes the Redis heartbeat every few seconds (worker/heartbeat.py);
* the notifier's own thread (``worker.notify``).

Start: the worker claims its IB account (or, without IB_ACCOUNT, the queue of alerts naming none,
then at the first connect the account IB manages) before it consumes a queue, and its guard acts
only while it holds that claim; a live worker holding it makes this one refuse, exit code 2
(worker/claims.py: one live worker per IB account).

SIGHUP re-reads the symbol map and the risk file on the ``housekeeping`` thread, which also checks
the daily loss, the options expiring today and the session-end flatten every few seconds
(worker/housekeeping.py, worker/periodic.py).

Shutdown: the first SIGTERM/SIGINT lets the job in hand finish (a job still waiting for IB goes
back on the queue), then disconnects from IB cleanly; a second one exits at once. Either way the
job stays on the queue or on the processing list, which the next start requeues.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future
from types import FrameType
from typing import Any

import redis
from sqlalchemy.orm import Session

from config.settings import Settings
from core import keys
from core.context import AppContext
from core.events import Event
from core.risk_file import RiskFile, load_risk_file, resolve_path
from core.services import FLATTEN_JOB
from worker.approval import ApprovalGate
from worker.claims import Claims, WorkerClaims
from worker.consumer import Consumer
from worker.contracts.symbol_map import SymbolResolver
from worker.decision.order_types import OrderRules
from worker.execution.executor import Executor
from worker.execution.guard import Guard, GuardSettings
from worker.execution.margin_refresh import FillTap, margin_parts
from worker.execution.option_orders import OptionRules
from worker.execution.readiness import JobLimits, Requeue, RetryLater
from worker.heartbeat import Heartbeat
from worker.housekeeping import Housekeeping
from worker.ib import IBConnection, Trading
from worker.metrics import WorkerMetrics
from worker.notify import Notifier, enqueue_notices
from worker.periodic import periodic_checks
from worker.recording.protection import ProtectionRegistry, ProtectionSpec, load_specs, save_spec
from worker.recording.recorder import Recorder, UnitOfWork
from worker.retry import retry
from worker.risk.gate import DAILY_LOSS_CHECK_SECONDS, RiskGate, describe_rules

log = logging.getLogger(__name__)


class Worker:
    """One execution worker: one IB connection (host, port, client id, account), one queue. Its parts
    are built here, each given what it uses (rq's worker builds its parts in ``__init__`` too)."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        probe_interval: float = 5.0,
        risk_file: RiskFile | None = None,
        housekeeping_interval: float = DAILY_LOSS_CHECK_SECONDS,
        queue_wait: float = 0.25,
    ) -> None:
        self.ctx = ctx
        # the blocking pop's wait for the next job, so also the longest a stop waits for it: a job
        # is taken the moment it arrives whatever this is; idle, it costs 4 pops a second per queue
        self.queue_wait = queue_wait
        settings: Settings = ctx.settings
        self.settings = settings
        # contracts (worker/contracts/symbol_map.py): SYMBOL_MAP_FILE is validated first, before any thread
        # starts: a bad file stops the worker with the file, the line and the reason
        self.symbols = SymbolResolver(settings.symbol_map_file, settings.futures_roll_days)
        # the risk file (RISK_FILE): a bad one raises RiskFileError here, before anything starts
        if risk_file is None:
            risk_file = load_risk_file(resolve_path(settings.risk_file))
        self.stopping = threading.Event()
        self.run_lock = threading.Lock()  # one job at a time across the queues (and the session-end flatten)
        self._signals = 0
        self._build_recording()
        self._build_ib(probe_interval)
        self._build_trading(risk_file)
        self.housekeeping = Housekeeping(self.risk, self.notifier, self.stopping, housekeeping_interval,
                                         [self.symbols.reload], periodic_checks(self))  # fmt: skip
        self._build_queues()

    def _build_recording(self) -> None:
        """The notifier, the metrics and the single database writer."""
        ctx, settings = self.ctx, self.settings
        self.notifier = Notifier(settings, ctx.sessions, ctx.redis, simulator=self._on_simulator)
        # read lazily at scrape time: the IB connection and consumer are created below
        self.metrics = WorkerMetrics(
            account=settings.ib_account,
            client_id=settings.ib_client_id,
            ib_connected=lambda: self.ib.ready,
            pacing=lambda: (self.ib.pacer.waits, self.ib.pacer.waited),
            pacing_violations=lambda: self.ib.pacing_violations,
            jobs_done=lambda: self.consumer.done,
            notice_backlog=self._unsent_notices,
        )
        self.recorder = Recorder(ctx.sessions, ctx.redis, settings, settings.ib_client_id,
                                 enqueue_notices=self._enqueue_notices, wake=self.notifier.wake,
                                 on_committed=self.metrics.count_events)  # fmt: skip

    def _build_ib(self, probe_interval: float) -> None:
        """The IB connection, its trading room, and this worker's claim of its account."""
        settings = self.settings
        self.ib = IBConnection(settings.ib_host, settings.ib_port, settings.ib_client_id, settings.ib_account,
                               self.recorder.record, probe_interval=probe_interval,
                               on_connection_change=self._connection_changed,
                               market_data_type=settings.ib_market_data_type,
                               prune_after=settings.ib_prune_done_after_seconds)  # fmt: skip
        self.trading = Trading(self.ib, market_data_lines=settings.market_data_lines,
                               market_data_max_age=settings.market_data_max_age_seconds)  # fmt: skip
        # one IB account, one live worker (worker/claims.py): nothing trades on an account, the
        # guard included, before this worker holds its claim
        self.claims = WorkerClaims(
            Claims(self.ctx.redis, client_id=settings.ib_client_id, ib=f"{settings.ib_host}:{settings.ib_port}"),
            self.ib, configured=settings.ib_account, stopping=self.stopping,
        )  # fmt: skip

    def _build_trading(self, risk_file: RiskFile) -> None:
        """The protective-order guard, the risk gate and the executor (given both at construction)."""
        ctx, settings = self.ctx, self.settings
        # the protective-order guard: specs set by the jobs, persisted by the recorder, loaded at
        # start (a position opened before a restart keeps its protection); hears IB's events
        self.protection = ProtectionRegistry(persist=self._persist_protection)
        self.guard = Guard(self.trading, self.protection, self.recorder,
                           GuardSettings(flatten_unprotected=settings.flatten_unprotected), host=self)  # fmt: skip
        # per-unit margin figures (worker/execution/margin_cache.py), kept warm in the background; the
        # refresh hears fills through the guard's watcher seat
        self.margin, self.margin_refresh = margin_parts(settings, self.ib, self.trading, self.symbols,
                                                        lambda: self.risk.risk_file, busy=self.job_running)  # fmt: skip
        self.ib.watcher = FillTap(self.guard, self.margin_refresh)
        # the risk gate: the decision checks every opening order against its rules; the housekeeping
        # thread runs its daily-loss check; SIGHUP reloads its file
        self.risk = RiskGate(risk_file, ctx.sessions, self.ib, self.trading, recorder=self.recorder)
        self.risk.flatten = self._flatten_on_daily_loss
        self.recorder.on_counted = self.risk.tally.apply  # the risk counters follow every commit
        self.executor = Executor(
            ctx.sessions, self.recorder, self.ib, self.trading,
            JobLimits(settings.stale_alert_seconds, reversal_fill=settings.reversal_fill_timeout_seconds), self.stopping,
            max_order_quantity=settings.max_order_quantity, metrics=self.metrics, symbols=self.symbols,
            # order types (worker/decision/order_types.py): the extended-hours stop-limit / marketable-limit offset
            order_rules=OrderRules(settings.extended_hours_stop_limit_ticks),
            margin=self.margin,  # before every opening order: a cached figure or IB's what-if (what_if.py)
            guard=self.guard,  # the job sets specs and has the old exits put back
            risk=self.risk,  # the risk file's limits, its default sizing and dry runs
            option_rules=OptionRules.of(settings),  # option entries' price and expiry rules
        )  # fmt: skip
        # an opening of a strategy that requires approval waits for the trader first (worker/approval.py)
        self.approvals = ApprovalGate(ctx.sessions, self.recorder, self.risk, lambda: self.trading.account,
                                      self._on_simulator, self.executor.execute_alert)  # fmt: skip

    def _build_queues(self) -> None:
        """The queue consumers and the heartbeat."""
        settings = self.settings
        # blocking pops need a socket timeout above the block time (the context's client has 1 s)
        self.queue_redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=10
        )
        self.queue_name = keys.queue_name(settings.ib_account)
        self.consumer = self._make_consumer(self.queue_name)
        # Without IB_ACCOUNT the worker also serves the account IB says it manages, on that
        # account's queue, from its first connect on (see core/routing.py and _connection_changed).
        self.account_consumer: Consumer | None = None
        self._account_thread: threading.Thread | None = None
        self._account_lock = threading.Lock()
        self.heartbeat_key = keys.heartbeat_key(settings.ib_account, settings.ib_client_id)
        self.beat = Heartbeat(self.ctx.redis, self.heartbeat_key, self.heartbeat, self.claims.renew)

    def _on_simulator(self) -> bool:
        """The IB connection's server is ibsim, not IB (known from the first connect on)."""
        ib = getattr(self, "ib", None)  # the notifier and recorder are built before the connection
        return ib is not None and ib.simulator

    def _enqueue_notices(self, session: Session, event: Event, settings: Settings) -> int:
        """The recorder's notices, marked SIMULATOR while the worker trades ibsim."""
        return enqueue_notices(session, event, settings, simulator=self._on_simulator())

    def _make_consumer(self, queue_name: str) -> Consumer:
        return Consumer(self.queue_redis, queue_name,
                        f"{self.settings.ib_account or keys.DEFAULT_ACCOUNT}:{self.settings.ib_client_id}",
                        {keys.EXECUTE_ALERT_JOB: self.approvals.execute_alert, FLATTEN_JOB: self.flatten_all},
                        self.stopping, requeue_exceptions=(Requeue,), retry_exceptions=(RetryLater,),
                        run_lock=self.run_lock, block_seconds=self.queue_wait)  # fmt: skip

    def served_accounts(self) -> list[str] | None:
        """The accounts whose queues this worker consumes (``default``: alerts naming none), or
        None while a worker without IB_ACCOUNT has not yet learned its managed account."""
        if self.settings.ib_account:
            return [self.settings.ib_account]
        if self.account_consumer is None:
            return None
        return [keys.DEFAULT_ACCOUNT, str(self.ib.account)]

    def _serve_managed_account(self) -> None:
        """Start consuming the managed account's queue (once its claim is held).

        With several managed accounts the worker trades the first one IB lists (IB_ACCOUNT
        unset), so it serves that one only; alerts naming the others are refused at intake."""
        account = self.ib.account
        if self.settings.ib_account or not account or self.stopping.is_set():
            return
        with self._account_lock:
            if self.account_consumer is not None:
                return
            others = [a for a in self.ib.managed_accounts if a != account]
            if others:
                log.warning("IB manages several accounts; this worker serves %s (the first) and the "
                            "default queue, not %s: run one worker per account with IB_ACCOUNT set",
                            account, ", ".join(others))  # fmt: skip
            consumer = self._make_consumer(keys.queue_name(account))
            self._account_thread = threading.Thread(
                target=self._run_account_consumer, args=(consumer,), name="consumer-account", daemon=True
            )
            self.account_consumer = consumer
            self._account_thread.start()

    def _run_account_consumer(self, consumer: Consumer) -> None:
        log.info("worker also consuming %s (the account IB manages)", consumer.queue.name)
        self._recover(consumer, "Redis unavailable")
        self.beat.write()  # intake sees the new account now, not at the next beat
        consumer.run()

    # ------------------------------------------------------------------ lifecycle

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: warm stop; second: exit now (jobs stay recoverable)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        """SIGHUP: reload the files on the housekeeping thread (worker/housekeeping.py)."""
        self.housekeeping.request_reload()

    def _flatten_on_daily_loss(self, by: str) -> str:
        """``flatten_on_daily_loss``. From the housekeeping thread it waits for the job in hand (one
        job at a time, like ``POST /api/flatten``); from a job (the alert that found the loss) the
        job already holds the lock."""
        if threading.current_thread() is self.housekeeping.thread:
            with self.run_lock:
                return self.flatten_all(by=by)
        return self.flatten_all(by=by)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning("signal %s: finishing the job in hand, then stopping (again to exit now)", signum)
            self.stopping.set()
            return
        log.warning(
            "second signal %s: exiting now; the job in hand will be requeued on the next start", signum
        )
        os._exit(1)

    def run(self) -> int:
        """Claim what it serves, start everything, consume until stopped, then shut down in
        order. Returns the exit code: 2 when another live worker serves the same account."""
        self._load_protection()
        self.risk.preload_counters()  # before IB connects: no alert's decision queries them
        log.info("%s", describe_rules(self.risk.risk_file))
        # IB_ACCOUNT's account, or the queue of alerts naming none: claimed before IB connects
        if not self.claims.claim(self.settings.ib_account or keys.DEFAULT_ACCOUNT):
            self.shutdown(self.refused or "stopped", notice=False)
            return 2 if self.refused else 0
        self.notifier.start()
        self.ib.start()
        self.beat.start()
        if self.settings.worker_metrics_port:
            try:
                self.metrics.serve(self.settings.worker_metrics_host, self.settings.worker_metrics_port)
            except OSError as exc:  # metrics are not worth refusing to trade over: say it loudly
                log.error("worker metrics not served on %s:%s: %s", self.settings.worker_metrics_host,
                          self.settings.worker_metrics_port, exc)  # fmt: skip
        try:
            if self.settings.ib_account or self.claims.claim_managed_account():
                self._serve()
        finally:
            if self._account_thread is not None:
                self._account_thread.join(60)  # it finishes the job in hand, like the main one
            reason = self.refused or ("stopped by signal" if self._signals else "stopped")
            self.shutdown(reason, notice=not self.refused or self.claims.replaced)
        return 2 if self.refused else 0

    def _serve(self) -> None:
        """The claims are held: trade (daily-loss watch, guard, queues) until stopped."""
        self.housekeeping.start()
        if self.settings.margin_check and self.settings.margin_max_age_seconds > 0:
            self.margin_refresh.start()  # in the background, on the IB loop, once IB is ready
        if not self.settings.ib_account:
            self.ib.call_soon(self.guard.on_reconciled)  # the connect's own check ran before the claim
            self._serve_managed_account()
        self._recover(self.consumer, "Redis unavailable at start")
        self._relay_once()
        log.info("worker consuming %s (IB %s:%s client %s)", self.queue_name, self.settings.ib_host,
                 self.settings.ib_port, self.settings.ib_client_id)  # fmt: skip
        self.consumer.run()

    def _load_protection(self) -> None:
        """The protection specs of open positions, as the last run left them (before IB connects:
        the guard's first check after the connect compares them with IB's working exits)."""
        try:
            with self.ctx.sessions() as session:
                specs = load_specs(session, self.settings.ib_account)
        except Exception:  # noqa: BLE001 - trading without the guard's memory beats not trading
            log.exception("protection specs not loaded: the guard knows only what jobs set from now")
            return
        self.protection.load(specs)
        if specs:
            log.info("guard: protection of %d position(s) loaded: %s", len(specs),
                     ", ".join(f"{s.symbol or s.con_id} {sorted(s.wanted_roles)}" for s in specs))  # fmt: skip

    def _persist_protection(self, key: str, spec: ProtectionSpec | None) -> Future[None]:
        def write(uow: UnitOfWork) -> None:
            save_spec(uow.session, key, spec)

        return self.recorder.run(write)

    def serves_alone(self) -> bool:
        """This worker holds its account's claim (worker/claims.py): its guard may act."""
        return self.claims.serves_alone()

    def job_running(self) -> bool:
        """A job is executing (read from the IB loop: the guard leaves the exits to the job)."""
        if self.consumer.current is not None:
            return True
        return self.account_consumer is not None and self.account_consumer.current is not None

    def _recover(self, consumer: Consumer, what: str) -> None:
        """Requeue a dead predecessor's jobs of ``consumer``'s queue; waits for Redis if it is down
        (until it answers or the worker stops)."""
        if self.stopping.is_set():
            return
        with contextlib.suppress(redis.RedisError):  # raised only once stopping is set
            retry(consumer.recover, on=(redis.RedisError,), what=what, base=0.5, cap=5.0,
                  jitter=False, stop=self.stopping)  # fmt: skip

    def _relay_once(self) -> None:
        """Enqueue alerts the web app committed but could not enqueue, and re-enqueue 'queued'
        alerts whose job Redis lost (the outbox relay, with its full scan of every queued alert)."""
        from core.relay import relay_once

        try:
            count = relay_once(self.ctx, full_scan=True)
            log.info("relay: %s alert(s) enqueued at start", count)
        except Exception:  # noqa: BLE001 - the relay also runs in the web app; never block start
            log.exception("relay at start failed")

    def shutdown(self, reason: str, notice: bool = True) -> None:
        """Disconnect from IB, give the claims up, drain the recorder, stop notices, drop the
        heartbeat. ``notice``: the "worker stopped" alarm (not for a refusal, which a restart
        loop would repeat every few seconds; it is logged and is the exit's message)."""
        self.stopping.set()
        if notice:
            try:
                self.notifier.worker_stopping(reason)
            except Exception:  # noqa: BLE001
                log.exception("notifier.worker_stopping failed")
        self.ib.stop()
        self.beat.stop()
        self.claims.release()  # after IB: the next worker never overlaps this connection
        self.recorder.stop()
        self.metrics.stop()
        try:
            self.notifier.stop(timeout=5.0)
        except Exception:  # noqa: BLE001
            log.exception("notifier.stop failed")
        self.beat.drop()
        log.info("worker stopped (%s)", reason)

    @property
    def refused(self) -> str | None:
        """Why this worker refused to serve (another live worker serves its account), or None."""
        return self.claims.refused

    def _unsent_notices(self) -> int:
        """Notices not yet delivered (sampled by the metrics thread every few seconds)."""
        from worker.notify.notice_rows import pending_count

        with self.ctx.sessions() as session:
            return pending_count(session)

    # ------------------------------------------------------------------ heartbeat and alarms

    def heartbeat(self) -> dict[str, Any]:
        """The heartbeat document (written to Redis with a TTL)."""
        return {
            "ts": time.time(),
            "ib_connected": self.ib.ready,
            "ib_detail": self.ib.last_change,
            # connected to ibsim, not IB (the dashboard and /status say SIMULATOR)
            keys.HEARTBEAT_SIMULATOR: self._on_simulator(),
            "account": self.ib.account or self.settings.ib_account,
            "client_id": self.settings.ib_client_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queue": self.queue_name,
            keys.HEARTBEAT_SERVES: self.served_accounts(),
            "jobs_done": self.consumer.done + (self.account_consumer.done if self.account_consumer else 0),
            "current_job": self.consumer.current
            or (self.account_consumer.current if self.account_consumer else None),
            "connects": self.ib.connects,
            "pacing_violations": self.ib.pacing_violations,
        }

    def _connection_changed(self, connected: bool, detail: str) -> None:
        self.notifier.ib_connection_changed(connected, detail)
        self.beat.write()  # the dashboard sees the change now, not at the next beat

    # ------------------------------------------------------------------ operator jobs

    def flatten_all(self, account: str | None = None, by: str = "api") -> str:
        """Cancel every working order of ours, then close every position with market orders. Never
        stale: while IB is down it waits and goes out once IB is back (a stop requeues the job)."""
        for waited in range(1 << 62):
            if self.ib.wait_ready(0.5 if waited else 0):
                break
            if self.stopping.is_set():  # the daily-loss watch (not a queued job) tries at its next check
                if threading.current_thread() is self.housekeeping.thread:
                    return "IB not connected"
                raise Requeue(f"flatten by {by}")
            if waited == 0:
                log.warning("flatten requested by %s: waiting for IB (%s)", by, self.ib.last_change)
        result = self.ib.call(self.trading.flatten(), timeout=60)
        summary = f"flatten by {by}: {result}"
        log.warning("%s", summary)
        return summary
