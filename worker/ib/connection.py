"""The ONE long-lived IB connection: an ib_async ``IB`` on its own asyncio loop thread.

* Other threads hand it work with :meth:`IBConnection.call` (``asyncio.run_coroutine_threadsafe``)
  and never touch ib_async objects themselves.
* A supervisor task connects with exponential backoff and jitter, watches for loss (the socket
  closing, error 1100, a periodic ``reqCurrentTime`` probe that times out), reconnects, and after
  every connect reconciles: it hands the open orders, completed orders, executions and positions
  that ib_async fetched on connect to the recorder.
* Every IB event is turned into a :mod:`worker.recording.snapshots` record and given to ``sink(fact)``,
  which must not block (the recorder queues it for its own database thread). The loop never
  waits on the database, Redis or Telegram.
* Pacing: :attr:`pacer` (our :class:`~worker.ib.pacing.Pacer`) gates order traffic at 40/s;
  ib_async's client throttle (:data:`MAX_MESSAGES_PER_SECOND` per sliding second, queueing)
  covers every message as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from ib_async import IB, Trade

from core.models import IB_DONE_STATUSES
from worker.decision.connectivity import classify, outage_detail, sync_timeout_detail
from worker.errors import TemporaryError
from worker.ib.compact_repr import install_compact_repr
from worker.ib.market_data import DATA_TYPES
from worker.ib.pacing import Pacer
from worker.ib.pruning import Pruner
from worker.ib.trade_index import TradeIndex
from worker.ib.translate import fill_snapshot, order_snapshot, position_snapshot
from worker.recording.snapshots import IBFact, OrderError, Reconciliation
from worker.retry import backoff_delay

log = logging.getLogger(__name__)

T = TypeVar("T")
# IB allows 50 messages per second per connection; ib_async queues beyond this sliding-window limit
# (a backstop: our own Pacer keeps order traffic at 40 per second, see worker/ib/pacing.py).
MAX_MESSAGES_PER_SECOND = 45
# IB codes that mean "the connection to IB's servers is down / back" while the socket stays open.
CONNECTIVITY_LOST, RESTORED_DATA_LOST, RESTORED_DATA_KEPT = 1100, 1101, 1102
PACING_VIOLATION = 100  # "Max rate of messages per second has been exceeded" (caught in worker/ib/paced.py)
# ibsim, the simulated gateway, sends this account value with every account's values; no IB server
# does (ibsim/README.md). A worker connected to it says SIMULATOR in its log, heartbeat and notices.
SIMULATOR_TAG, SIMULATOR_VALUE = "Simulator", "ibsim"

Sink = Callable[[IBFact], "Future[Any] | None"]


def is_simulator(account_values: Iterable[Any]) -> bool:
    """Whether the account values a server sent carry ibsim's marker (:data:`SIMULATOR_TAG`)."""
    return any(v.tag == SIMULATOR_TAG and v.value == SIMULATOR_VALUE for v in account_values)


class Watcher(Protocol):
    """Who hears of fills, position changes, ended orders and reconnects on the IB loop (the
    protective-order guard, worker/execution/guard.py). Each call must return at once (schedule, not do)."""

    def on_fill(self, con_id: int) -> None: ...

    def on_position(self, con_id: int) -> None: ...

    def on_order_ended(self, con_id: int, order_ref: str, status: str) -> None: ...

    def on_reconciled(self) -> None: ...


class IBUnavailable(TemporaryError):
    """IB is not connected (temporary: the job waits and retries)."""


class IBConnection:
    """The long-lived IB connection on its own loop thread, with supervisor and reconciliation."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        account: str | None,
        sink: Sink,
        *,
        connect_timeout: float = 4.0,
        probe_interval: float = 5.0,
        probe_timeout: float = 3.0,
        backoff_base: float = 0.25,
        backoff_cap: float = 5.0,
        on_connection_change: Callable[[bool, str], None] | None = None,
        market_data_type: str = "live",
        prune_after: float = 3600.0,
    ) -> None:
        install_compact_repr()  # ib_async formats a Trade on every order message: keep that cheap
        self.host, self.port, self.client_id = host, port, client_id
        self.market_data_type = market_data_type  # IB_MARKET_DATA_TYPE (worker/ib/market_data.py)
        self.account = account
        self.managed_accounts: list[str] = []  # as IB listed them at the last connect
        # the server at the last connect is ibsim, the simulator, not IB (read from its account values)
        self.simulator = False
        self._sink = sink
        self._connect_timeout = connect_timeout
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._backoff_base, self._backoff_cap = backoff_base, backoff_cap
        self._on_connection_change = on_connection_change
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="ib", daemon=True)
        self._ready = threading.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._outage = False  # between 1100 and 1101/1102
        self._attempt_problem = ""  # what IB said during the connect attempt under way (326)
        self._last_order: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.pacer = Pacer()
        self.watcher: Watcher | None = None  # set before start (worker/runtime.py: the guard)
        self.ib = IB()
        self.ib.RaiseRequestErrors = False
        self.ib.client.MaxRequests = MAX_MESSAGES_PER_SECOND
        self.ib.client.RequestsInterval = 1.0
        # finished orders are forgotten after IB_PRUNE_DONE_AFTER_SECONDS (worker/ib/pruning.py)
        self.pruner = Pruner(self.ib, prune_after)
        # ib_async's trades by orderRef and its working ones, without a scan per lookup
        self.trade_index = TradeIndex(self.ib, lambda: self.pruner.forgotten)
        self.connected_at = 0.0
        self.connects = 0
        self.pacing_violations = 0
        self.last_change = ""

    # ------------------------------------------------------------------ thread plumbing

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        # what is still scheduled when the loop stops (a guard check poked as the worker stopped):
        # cancelled and run out, so nothing is left "never awaited" or half-run on a closed loop
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def start(self) -> None:
        """Start the IB thread and its supervisor (connecting happens in the background)."""
        self._thread.start()
        self.call(self._start(), timeout=5)

    async def _start(self) -> None:
        ib = self.ib
        ib.disconnectedEvent += self._on_disconnected
        ib.openOrderEvent += self._on_order
        ib.orderStatusEvent += self._on_order
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.errorEvent += self._on_error
        ib.positionEvent += self._on_position
        self._supervisor = asyncio.ensure_future(self._supervise())

    def call(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the IB loop from another thread and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the IB loop soon (from any thread; does not wait)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly and stop the IB thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.call(self._shutdown(), timeout=timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
        if self.ib.isConnected():
            self.ib.disconnect()
        self._set_ready(False, "worker stopping")

    @property
    def ready(self) -> bool:
        """Connected, reconciled and IB's servers reachable (no 1100 in force)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block (another thread) until ready or ``timeout``."""
        return self._ready.wait(timeout)

    def require_connected(self) -> None:
        """Raise :class:`IBUnavailable` unless ready (called on the loop before IB requests)."""
        if not self.ib.isConnected() or not self.ready:
            raise IBUnavailable("IB is not connected")

    def _set_ready(self, ready: bool, detail: str) -> None:
        was = self._ready.is_set()
        if ready:
            self._ready.set()
        else:
            self._ready.clear()
        if was == ready and (ready or detail == self.last_change):
            return
        if was != ready:
            log.info("IB %s: %s", "ready" if ready else "not ready", detail)
        # still down for a new reason (a refused reconnect, 326, a competing session): the outage
        # alarm says the latest one
        self.last_change = detail
        if self._on_connection_change is not None:
            try:
                self._on_connection_change(ready, detail)
            except Exception:  # noqa: BLE001 - a notifier problem never reaches the IB loop
                log.exception("connection-change callback failed")

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping:
            self._lost.clear()
            self._outage = False
            self._attempt_problem = ""
            try:
                await self.ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=self.client_id,
                    timeout=self._connect_timeout,
                    account=self.account or "",
                    raiseSyncErrors=True,  # an incomplete sync would blind the exactly-once check
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                self.ib.disconnect()
                attempt += 1
                # base * 2^attempt, capped, jittered: many workers must not reconnect in step
                delay = backoff_delay(attempt + 1, self._backoff_base, self._backoff_cap)
                log.warning(
                    "IB connect to %s:%s failed (%s); retry in %.2fs", self.host, self.port, exc, delay
                )
                self._set_ready(False, self._connect_failure(exc))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.connects += 1
            self._last_order.clear()  # ib_async starts afresh on every connect; so do we
            self.pruner.reset()
            self.connected_at = time.time()
            # TWS keeps reqMarketDataType per API connection: set it again on every connect
            self.ib.reqMarketDataType(DATA_TYPES[self.market_data_type])
            self.managed_accounts = list(self.ib.managedAccounts())
            if not self.account:
                self.account = self.managed_accounts[0] if self.managed_accounts else None
            self._log_connected()
            self._reconcile("connect")
            if not self._outage:
                self._set_ready(True, "connected")
                self._tell("on_reconciled")
            await self._watch()
            self._set_ready(False, "connection lost")
            self.ib.disconnect()
            if not self._stopping:
                await asyncio.sleep(backoff_delay(1, self._backoff_base, self._backoff_cap))

    def _connect_failure(self, exc: Exception) -> str:
        """Why a connect attempt failed, as the outage alarm says it: IB's 326 (the same client id is
        retried, never another), start-up requests never answered (ib_async #84), or the error."""
        if self._attempt_problem:
            return self._attempt_problem
        if isinstance(exc, ConnectionError) and "timed out" in str(exc):
            return sync_timeout_detail(str(exc), self._connect_timeout)
        return f"cannot connect: {exc}"

    def _log_connected(self) -> None:
        """Say whom the worker trades with; ibsim (its account values carry its marker) loudly."""
        self.simulator = is_simulator(self.ib.accountValues())
        if self.simulator:
            log.warning("IB connected to %s:%s as client %s (account %s): SIMULATOR - this is ibsim, not "
                        "Interactive Brokers; no order reaches a real account", self.host, self.port,
                        self.client_id, self.account)  # fmt: skip
            return
        log.info("IB connected to %s:%s as client %s (account %s)", self.host, self.port,
                 self.client_id, self.account)  # fmt: skip

    async def _watch(self) -> None:
        """Return when the connection is lost or the periodic probe fails."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._probe_interval)
            if self._lost.is_set() or not self.ib.isConnected():
                return
            if self.pruner.due():
                self._prune()
            busy = getattr(self.ib.client, "_isThrottling", False)
            if time.time() - self.ib.wrapper.time < self._probe_interval or busy:
                continue  # data arrived lately (or requests are queued behind the pacing): alive
            try:
                await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self._probe_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("IB probe failed (%r); reconnecting", exc)
                return

    def _prune(self) -> None:
        """Forget finished orders (worker/ib/pruning.py), and this connection's memory of them."""
        perm_ids = self.pruner.prune(self.connected_at)
        if perm_ids:
            self._last_order = {k: v for k, v in self._last_order.items() if k[0] not in perm_ids}

    def _reconcile(self, why: str) -> None:
        """Hand IB's view (fetched by ib_async on connect) to the recorder."""
        ib = self.ib
        trades = ib.trades()
        by_perm = {t.order.permId: t for t in trades if t.order.permId}
        fact = Reconciliation(
            why=why,
            client_id=self.client_id,
            account=self.account,
            orders=[order_snapshot(t) for t in trades],
            fills=[fill_snapshot(by_perm.get(f.execution.permId), f) for f in ib.fills()],
            positions=[position_snapshot(p) for p in ib.positions()],
        )
        log.info("reconcile (%s): %d orders, %d executions, %d positions", why, len(fact.orders),
                 len(fact.fills), len(fact.positions))  # fmt: skip
        self.emit(fact)

    # ------------------------------------------------------------------ events → recorder

    def emit(self, fact: IBFact) -> Future[Any] | None:
        """Give a fact to the recorder; the loop survives a recorder problem."""
        try:
            return self._sink(fact)
        except Exception:  # noqa: BLE001
            log.exception("recorder sink failed for %s", type(fact).__name__)
            return None

    def _on_disconnected(self) -> None:
        self._lost.set()
        self._set_ready(False, "disconnected")

    def _on_order(self, trade: Trade) -> None:
        snap = order_snapshot(trade)
        # openOrder and orderStatus often repeat the same facts: record a change only once
        key = (snap.perm_id, snap.ib_order_id, snap.client_id)
        digest = (snap.status, snap.filled, snap.perm_id, snap.limit_price, snap.stop_price,
                  snap.quantity, snap.avg_fill_price)  # fmt: skip
        if self._last_order.get(key) == digest:
            return
        self._last_order[key] = digest
        recorded = self.emit(snap)
        if recorded is not None and snap.status in IB_DONE_STATUSES and snap.perm_id:
            recorded.add_done_callback(lambda f, p=snap.perm_id: f.exception() or self.pruner.recorded(p))
        if snap.status in IB_DONE_STATUSES and snap.con_id:
            self._tell("on_order_ended", snap.con_id, snap.order_ref or "", snap.status)

    def _on_exec(self, trade: Trade, fill: Any) -> None:
        self.emit(fill_snapshot(trade, fill))
        self._tell("on_fill", fill.contract.conId)

    def _on_commission(self, trade: Trade, fill: Any, report: Any) -> None:
        self.emit(fill_snapshot(trade, fill))

    def _on_position(self, pos: Any) -> None:
        self.emit(position_snapshot(pos))
        if not self.account or pos.account == self.account:
            self._tell("on_position", pos.contract.conId)

    def _tell(self, what: str, *args: Any) -> None:
        """Tell the watcher (the guard) of an event; the loop survives a watcher problem."""
        if self.watcher is None:
            return
        try:
            getattr(self.watcher, what)(*args)
        except Exception:  # noqa: BLE001
            log.exception("watcher %s failed", what)

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        notice = classify(code, text)
        if notice.kind == "client_id_in_use":
            self._attempt_problem = outage_detail(notice, code, text, self.client_id)
            log.error("IB refused client id %s: %s", self.client_id, text)
            self._set_ready(False, self._attempt_problem)  # the alarm names it from now on
            return
        if notice.kind == "competing_session" and (self._outage or code == CONNECTIVITY_LOST):
            self._outage = True
            self._set_ready(False, outage_detail(notice, code, text, self.client_id))
            return
        if code == CONNECTIVITY_LOST:
            self._outage = True
            self._set_ready(False, f"{code} {text}")
            return
        if code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            self._outage = False
            if self.ib.isConnected():
                asyncio.ensure_future(self._after_restore(code, text))
            return
        if req_id is None or req_id <= 0:
            return
        trade = self._trade_by_order_id(req_id)
        if trade is None:
            return
        self.emit(OrderError(order_snapshot(trade), code, text))

    async def _after_restore(self, code: int, text: str) -> None:
        """IB's servers are back: re-read orders and executions (fills may have happened)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ib.reqOpenOrdersAsync(), 5)
            await asyncio.wait_for(self.ib.reqExecutionsAsync(), 5)
        self._reconcile(f"restored {code}")
        if not self._outage:
            self._set_ready(True, f"{code} {text}")
            self._tell("on_reconciled")

    def _trade_by_order_id(self, order_id: int) -> Trade | None:
        if order_id <= 0:
            return None
        trades = self.ib.wrapper.trades  # keyed (clientId, orderId) for every order with an id
        return trades.get((self.client_id, order_id)) or trades.get((0, order_id))
