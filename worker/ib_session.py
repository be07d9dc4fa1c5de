"""The one module that talks to IB: an ib_async ``IB`` on its own asyncio loop thread.

* :class:`IBSession` owns the loop thread ("the IB thread"). Other threads hand it work with
  :meth:`IBSession.call` (``asyncio.run_coroutine_threadsafe``) and never touch ib_async objects.
* A supervisor task connects with exponential backoff and jitter, watches for loss (the socket
  closing, error 1100, a periodic ``reqCurrentTime`` probe that times out), reconnects, and after
  every connect reconciles: it hands the open orders, completed orders, executions and positions
  that ib_async fetched on connect to the recorder.
* Every IB event is turned into a plain dict snapshot and given to ``sink(kind, data)``, which
  must be non-blocking (the recorder queues it for its own database thread). The loop never waits
  on the database, Redis or Telegram.
* Pacing: our :class:`~worker.pacing.Pacer` gates order traffic (40/s); ib_async's client throttle
  (:data:`MAX_MESSAGES_PER_SECOND` per sliding second, queueing) covers every message as a backstop.

ib_async's camelCase stays inside this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from ib_async import IB, Contract, Crypto, Forex, MarketOrder, Order, Stock, Trade
from ib_async import Future as IBFuture
from ib_async.util import UNSET_DOUBLE

from app.ids import order_ref as make_order_ref
from worker.pacing import Pacer, wait_drained
from worker.planner import Instrument, Leg
from worker.symbols import ContractSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
# IB allows 50 messages per second per connection; ib_async queues beyond this sliding-window limit
# (a backstop: our own Pacer keeps order traffic at 40 per second, see worker/pacing.py).
MAX_MESSAGES_PER_SECOND = 45
WORKING_STATUSES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"})
DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
# IB codes that mean "the connection to IB's servers is down / back" while the socket stays open.
CONNECTIVITY_LOST, RESTORED_DATA_LOST, RESTORED_DATA_KEPT = 1100, 1101, 1102
PACING_VIOLATION = 100  # "Max rate of messages per second has been exceeded"
FRONT_MONTH_CACHE_SECONDS = 3600.0


class IBUnavailable(RuntimeError):
    """IB is not connected (temporary: the job waits and retries)."""


class ContractNotFound(ValueError):
    """IB does not know the contract; the message carries IB's reason."""


Sink = Callable[[str, dict[str, Any]], "Future[Any] | None"]
LegHook = Callable[[str], None]


def _num(value: float | None) -> Decimal | None:
    """IB's float (UNSET_DOUBLE = unset) as a Decimal with the digits IB sent."""
    if value is None or value == UNSET_DOUBLE or (isinstance(value, float) and math.isnan(value)):
        return None
    return Decimal(str(value))


def order_snapshot(trade: Trade) -> dict[str, Any]:
    """A plain, thread-safe copy of an order's identity, terms and status."""
    order, contract, status = trade.order, trade.contract, trade.orderStatus
    return {
        "order_ref": order.orderRef or "",
        "ib_order_id": order.orderId or None,
        "perm_id": order.permId or status.permId or None,
        "parent_ib_order_id": order.parentId or None,
        "client_id": order.clientId,
        "account": order.account or None,
        "con_id": contract.conId or None,
        "symbol": contract.symbol,
        "local_symbol": contract.localSymbol,
        "sec_type": contract.secType,
        "action": order.action,
        "order_type": order.orderType,
        "quantity": _num(order.totalQuantity) or Decimal(0),
        "limit_price": _num(order.lmtPrice) if order.orderType in ("LMT", "STP LMT") else None,
        "stop_price": _num(order.auxPrice) if order.orderType in ("STP", "STP LMT", "TRAIL") else None,
        "tif": order.tif or None,
        "oca_group": order.ocaGroup or None,
        "status": status.status or "PendingSubmit",
        "filled": _num(status.filled) or Decimal(0),
        "remaining": _num(status.remaining),
        "avg_fill_price": _num(status.avgFillPrice) if status.filled else None,
        "why_held": status.whyHeld or None,
        "log": [(e.time.isoformat(), e.status, e.message, e.errorCode) for e in trade.log[-1:]],
    }


def fill_snapshot(trade: Trade | None, fill: Any) -> dict[str, Any]:
    """A plain copy of one execution (with its commission report when already received)."""
    ex, contract, report = fill.execution, fill.contract, fill.commissionReport
    commission = _num(report.commission) if report and report.execId else None
    realized = _num(report.realizedPNL) if report and report.execId else None
    when = ex.time if isinstance(ex.time, datetime) else datetime.now(UTC)
    return {
        "exec_id": ex.execId,
        "order_ref": ex.orderRef or (trade.order.orderRef if trade else "") or "",
        "ib_order_id": ex.orderId or None,
        "perm_id": ex.permId or None,
        "client_id": ex.clientId,
        "account": ex.acctNumber or None,
        "con_id": contract.conId or None,
        "symbol": contract.symbol,
        "local_symbol": contract.localSymbol,
        "sec_type": contract.secType,
        "side": ex.side,
        "quantity": _num(ex.shares) or Decimal(0),
        "price": _num(ex.price) or Decimal(0),
        "cum_quantity": _num(ex.cumQty),
        "avg_price": _num(ex.avgPrice),
        "order_quantity": _num(trade.order.totalQuantity) if trade else None,
        "time": when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC),
        "commission": commission,
        "commission_currency": (report.currency or None) if report and report.execId else None,
        "realized_pnl": realized,
    }


def position_snapshot(pos: Any) -> dict[str, Any]:
    contract = pos.contract
    return {
        "account": pos.account,
        "con_id": contract.conId,
        "symbol": contract.symbol,
        "sec_type": contract.secType,
        "local_symbol": contract.localSymbol,
        "quantity": _num(pos.position) or Decimal(0),
        "avg_cost": _num(pos.avgCost),
    }


@dataclass
class Placement:
    """What happened to one alert's legs at IB (returned to the job thread)."""

    placed: list[dict[str, Any]] = field(default_factory=list)  # order snapshots of legs sent now
    adopted: list[dict[str, Any]] = field(default_factory=list)  # legs IB already knew
    recorded: Future[Any] | None = None  # the recorder's write of ``placed``/``adopted``


@dataclass
class _Cached:
    contract: Contract
    instrument: Instrument
    expires: float


class IBSession:
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
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.account = account
        self.managed_accounts: list[str] = []  # as IB listed them at the last connect
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
        self._lost: asyncio.Event | None = None
        self._outage = False  # between 1100 and 1101/1102
        self._contracts: dict[str, _Cached] = {}
        self._last_order: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.pacer = Pacer()
        self.ib: IB | None = None
        self.connects = 0
        self.pacing_violations = 0
        self.last_change = ""

    # ------------------------------------------------------------------ thread plumbing

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def start(self) -> None:
        """Start the IB thread and its supervisor (connecting happens in the background)."""
        self._thread.start()
        self.call(self._start(), timeout=5)

    async def _start(self) -> None:
        self.ib = IB()
        self.ib.RaiseRequestErrors = False
        self.ib.client.MaxRequests = MAX_MESSAGES_PER_SECOND
        self.ib.client.RequestsInterval = 1.0
        self._lost = asyncio.Event()
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
        if self.ib is not None and self.ib.isConnected():
            self.ib.disconnect()
        self._set_ready(False, "worker stopping")

    @property
    def ready(self) -> bool:
        """Connected, reconciled and IB's servers reachable (no 1100 in force)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block (another thread) until ready or ``timeout``."""
        return self._ready.wait(timeout)

    def _set_ready(self, ready: bool, detail: str) -> None:
        was = self._ready.is_set()
        if ready:
            self._ready.set()
        else:
            self._ready.clear()
        if was != ready:
            self.last_change = detail
            log.info("IB %s: %s", "ready" if ready else "not ready", detail)
            if self._on_connection_change is not None:
                try:
                    self._on_connection_change(ready, detail)
                except Exception:  # noqa: BLE001 - a notifier problem never reaches the IB loop
                    log.exception("connection-change callback failed")

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        assert self.ib is not None and self._lost is not None
        attempt = 0
        while not self._stopping:
            self._lost.clear()
            self._outage = False
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
                delay = min(self._backoff_cap, self._backoff_base * 2 ** min(attempt, 10))
                delay *= random.uniform(0.5, 1.0)  # jitter: many workers must not reconnect in step
                log.warning(
                    "IB connect to %s:%s failed (%s); retry in %.2fs", self.host, self.port, exc, delay
                )
                self._set_ready(False, f"cannot connect: {exc}")
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.connects += 1
            self._last_order.clear()  # ib_async starts afresh on every connect; so do we
            self.managed_accounts = list(self.ib.managedAccounts())
            if not self.account:
                self.account = self.managed_accounts[0] if self.managed_accounts else None
            log.info("IB connected to %s:%s as client %s (account %s)", self.host, self.port,
                     self.client_id, self.account)  # fmt: skip
            self._reconcile("connect")
            if not self._outage:
                self._set_ready(True, "connected")
            await self._watch()
            self._set_ready(False, "connection lost")
            self.ib.disconnect()
            if not self._stopping:
                await asyncio.sleep(self._backoff_base * random.uniform(0.5, 1.0))

    async def _watch(self) -> None:
        """Return when the connection is lost or the periodic probe fails."""
        assert self.ib is not None and self._lost is not None
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._probe_interval)
            if self._lost.is_set() or not self.ib.isConnected():
                return
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

    def _reconcile(self, why: str) -> None:
        """Hand IB's view (fetched by ib_async on connect) to the recorder."""
        assert self.ib is not None
        ib = self.ib
        trades = ib.trades()
        fills = ib.fills()
        by_perm = {t.order.permId: t for t in trades if t.order.permId}
        data = {
            "why": why,
            "client_id": self.client_id,
            "account": self.account,
            "orders": [order_snapshot(t) for t in trades],
            "fills": [fill_snapshot(by_perm.get(f.execution.permId), f) for f in fills],
            "positions": [position_snapshot(p) for p in ib.positions()],
        }
        log.info("reconcile (%s): %d orders, %d executions, %d positions", why, len(data["orders"]),
                 len(data["fills"]), len(data["positions"]))  # fmt: skip
        self._emit("reconcile", data)

    # ------------------------------------------------------------------ events → recorder

    def _emit(self, kind: str, data: dict[str, Any]) -> Future[Any] | None:
        try:
            return self._sink(kind, data)
        except Exception:  # noqa: BLE001 - the loop must survive a recorder problem
            log.exception("recorder sink failed for %s", kind)
            return None

    def _on_disconnected(self) -> None:
        if self._lost is not None:
            self._lost.set()
        self._set_ready(False, "disconnected")

    def _on_order(self, trade: Trade) -> None:
        snap = order_snapshot(trade)
        # openOrder and orderStatus often repeat the same facts: record a change only once
        key = (snap["perm_id"], snap["ib_order_id"], snap["client_id"])
        digest = (snap["status"], snap["filled"], snap["perm_id"], snap["limit_price"], snap["stop_price"],
                  snap["quantity"], snap["avg_fill_price"])  # fmt: skip
        if self._last_order.get(key) == digest:
            return
        self._last_order[key] = digest
        self._emit("order", snap)

    def _on_exec(self, trade: Trade, fill: Any) -> None:
        self._emit("fill", fill_snapshot(trade, fill))

    def _on_commission(self, trade: Trade, fill: Any, report: Any) -> None:
        self._emit("fill", fill_snapshot(trade, fill))

    def _on_position(self, pos: Any) -> None:
        self._emit("position", position_snapshot(pos))

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        if code == PACING_VIOLATION:
            self.pacing_violations += 1
            log.error("IB refused a message for pacing (%s): %s", req_id, text)
        if code == CONNECTIVITY_LOST:
            self._outage = True
            self._set_ready(False, f"{code} {text}")
            return
        if code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            self._outage = False
            if self.ib is not None and self.ib.isConnected():
                asyncio.ensure_future(self._after_restore(code, text))
            return
        if req_id is None or req_id <= 0 or self.ib is None:
            return
        trade = self._trade_by_order_id(req_id)
        if trade is None:
            return
        self._emit("order_error", {**order_snapshot(trade), "error_code": code, "error_text": text})

    async def _after_restore(self, code: int, text: str) -> None:
        """IB's servers are back: re-read orders and executions (fills may have happened)."""
        assert self.ib is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ib.reqOpenOrdersAsync(), 5)
            await asyncio.wait_for(self.ib.reqExecutionsAsync(), 5)
        self._reconcile(f"restored {code}")
        if not self._outage:
            self._set_ready(True, f"{code} {text}")

    def _trade_by_order_id(self, order_id: int) -> Trade | None:
        assert self.ib is not None
        for trade in self.ib.trades():
            if trade.order.orderId == order_id and trade.order.clientId in (self.client_id, 0):
                return trade
        return None

    # ------------------------------------------------------------------ contracts and prices

    async def instrument(self, spec: ContractSpec) -> tuple[Contract, Instrument]:
        """The qualified contract for ``spec`` (cached; front months for an hour)."""
        cached = self._contracts.get(spec.cache_key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.contract, cached.instrument
        self._require_connected()
        assert self.ib is not None
        errors: list[str] = []

        def collect(req_id: int, code: int, text: str, contract: Any = None) -> None:
            if code in (200, 321):
                errors.append(f"{code} {text}")

        self.ib.errorEvent += collect
        try:
            details = await asyncio.wait_for(self.ib.reqContractDetailsAsync(_request_contract(spec)), 10)
        finally:
            self.ib.errorEvent -= collect
        details = [d for d in details if d.contract is not None]
        if spec.sec_type == "FUT":
            today = date.today().strftime("%Y%m%d")
            details = [d for d in details if (d.contract.lastTradeDateOrContractMonth or "")[:8] >= today[:8]]
            details.sort(key=lambda d: d.contract.lastTradeDateOrContractMonth)
            if spec.front_index:
                details = details[spec.front_index - 1 : spec.front_index]
            else:
                details = details[:1]
        if len(details) != 1:
            reason = errors[-1] if errors else f"{len(details)} matching contracts"
            raise ContractNotFound(f"IB has no unique contract for {_describe(spec)}: {reason}")
        detail = details[0]
        contract = detail.contract
        if spec.sec_type != "STK" and not contract.exchange:
            contract.exchange = spec.exchange
        if spec.sec_type == "STK":
            contract.exchange = "SMART"
        increment = _num(getattr(detail, "sizeIncrement", None)) or Decimal(0)
        minimum = _num(getattr(detail, "minSize", None)) or Decimal(0)
        if increment <= 0:
            increment = Decimal("0.00000001") if spec.sec_type == "CRYPTO" else Decimal(1)
        if minimum <= 0:
            minimum = increment
        inst = Instrument(
            con_id=contract.conId,
            symbol=contract.symbol,
            sec_type=contract.secType,
            exchange=contract.exchange,
            currency=contract.currency,
            local_symbol=contract.localSymbol,
            min_tick=_num(detail.minTick) or Decimal("0.01"),
            min_size=minimum,
            size_increment=increment,
            multiplier=contract.multiplier or "",
        )
        ttl = FRONT_MONTH_CACHE_SECONDS if spec.front_index else math.inf
        self._contracts[spec.cache_key] = _Cached(contract, inst, now + ttl)
        return contract, inst

    async def market_price(self, contract: Contract, timeout: float = 3.0) -> tuple[Decimal | None, str]:
        """A reference price from a market-data snapshot: last, else midpoint, else close."""
        self._require_connected()
        assert self.ib is not None
        try:
            tickers = await asyncio.wait_for(self.ib.reqTickersAsync(contract), timeout)
        except (TimeoutError, ConnectionError):
            return None, "no market data"
        if not tickers:
            return None, "no market data"
        ticker = tickers[0]
        for name, value in (("last", ticker.last), ("midpoint", ticker.midpoint()), ("close", ticker.close)):
            if value is not None and not math.isnan(value) and value > 0:
                return Decimal(str(value)), f"IB {name} price"
        return None, "no market data"

    def position_of(self, con_id: int) -> Decimal:
        """Our position in ``con_id`` as IB last reported it."""
        assert self.ib is not None
        total = Decimal(0)
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id:
                total += _num(pos.position) or Decimal(0)
        return total

    def _require_connected(self) -> None:
        if self.ib is None or not self.ib.isConnected() or not self.ready:
            raise IBUnavailable("IB is not connected")

    # ------------------------------------------------------------------ exactly-once placement

    def known_refs(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        """What IB reports for each ref: its order (open or completed) and its executions."""
        assert self.ib is not None
        wanted = set(refs)
        known: dict[str, dict[str, Any]] = {}
        for trade in self.ib.trades():
            ref = trade.order.orderRef
            if ref in wanted:
                entry = known.setdefault(ref, {"trade": None, "fills": []})
                # prefer the live (working / latest) order object for a ref
                if entry["trade"] is None or trade.orderStatus.status not in DONE_STATUSES:
                    entry["trade"] = trade
        for fill in self.ib.fills():
            ref = fill.execution.orderRef
            if ref in wanted:
                known.setdefault(ref, {"trade": None, "fills": []})["fills"].append(fill)
        return known

    async def place_legs(
        self,
        alert_id: str,
        contract: Contract,
        legs: list[Leg],
        oca_type: int,
        on_leg_sent: LegHook,
        record: Callable[[list[dict[str, Any]], list[dict[str, Any]]], Future[Any] | None],
    ) -> Placement:
        """Send ``legs`` unless IB already has them; runs on the loop without awaiting between the
        check and the sends, so no IB event interleaves with the decision.

        Exactly once: the last leg is the one that transmits the bracket. If IB knows it (open,
        completed or executed), the bracket was sent: adopt, send nothing. Otherwise nothing was
        transmitted; legs IB still holds staged (transmit=False) are re-sent under their own order
        ids (a modification, which transmits them with the last leg) and the rest get new ids. A
        staged leg IB no longer reports (real TWS drops a dead client's untransmitted orders) is
        simply placed anew; its lost twin can never transmit.
        """
        self._require_connected()
        assert self.ib is not None
        await self.pacer.acquire(len(legs))
        # from here to the last send nothing awaits: no IB event can interleave with the decision
        self._require_connected()
        refs = [make_order_ref(alert_id, leg.leg) for leg in legs]
        known = self.known_refs(refs)
        result = Placement()
        last = refs[-1]
        if last in known:
            for ref in refs:
                item = known.get(ref)
                if item and item["trade"] is not None:
                    result.adopted.append(order_snapshot(item["trade"]))
            log.info("alert %s: IB already has %s; nothing sent", alert_id, sorted(known))
            result.recorded = record([], result.adopted)
            return result
        ids: dict[str, int] = {}
        oca_group = f"tv2ib:{alert_id}" if len(legs) > 1 else ""
        for leg, ref in zip(legs, refs, strict=True):
            staged = known.get(ref, {}).get("trade")
            reuse = staged is not None and staged.orderStatus.status in WORKING_STATUSES
            order = Order(
                action=leg.action,
                totalQuantity=float(leg.quantity),
                orderType=leg.order_type,
                tif=leg.tif,
                outsideRth=leg.outside_rth,
                transmit=leg.transmit,
                orderRef=ref,
                account=self.account or "",
            )
            if leg.limit_price is not None:
                order.lmtPrice = float(leg.limit_price)
            if leg.stop_price is not None:
                order.auxPrice = float(leg.stop_price)
            if leg.parent_leg:
                order.parentId = ids[leg.parent_leg]
                order.ocaGroup = oca_group
                order.ocaType = oca_type
            order.orderId = staged.order.orderId if reuse else self.ib.client.getReqId()
            ids[leg.leg] = order.orderId
            trade = self.ib.placeOrder(contract, order)
            result.placed.append(order_snapshot(trade))
            on_leg_sent(leg.leg)
        # recorded only once the messages are on the wire: a disconnect drops ib_async's queue,
        # and a rerun must then find the alert unplaced (IB does not know the refs either)
        if not await wait_drained(self.ib.client) or not self.ib.isConnected():
            raise IBUnavailable(f"alert {alert_id}: connection lost before the orders were sent")
        result.recorded = record(result.placed, [])
        return result

    async def cancel_working(self, con_id: int | None, wait: float = 5.0) -> list[dict[str, Any]]:
        """Cancel our working orders (for ``con_id``, or all) and wait until IB confirms."""
        self._require_connected()
        assert self.ib is not None
        targets = [
            t
            for t in self.ib.openTrades()
            if (con_id is None or t.contract.conId == con_id)
            and t.order.clientId == self.client_id
            and (t.order.orderRef or "").startswith("tv2ib")
            and t.orderStatus.status in WORKING_STATUSES
        ]
        for trade in targets:
            if trade.orderStatus.status != "PendingCancel":
                await self.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(t.orderStatus.status not in DONE_STATUSES for t in targets):
            await asyncio.sleep(0.02)
        return [order_snapshot(t) for t in targets]

    async def our_positions(self) -> list[dict[str, Any]]:
        """Every non-zero position of our account."""
        self._require_connected()
        assert self.ib is not None
        return [position_snapshot(p) for p in self.ib.positions(self.account or "") if p.position]

    async def flatten(self) -> str:
        """Cancel all our working orders, wait for IB, then close every position at market."""
        self._require_connected()
        assert self.ib is not None
        cancelled = await self.cancel_working(None)
        closing = []
        stamp = int(time.time())
        for pos in await self.our_positions():
            contract = await self.contract_for(pos["con_id"])
            qty = pos["quantity"]
            order = MarketOrder("SELL" if qty > 0 else "BUY", float(abs(qty)))
            order.orderRef = f"tv2ib-flatten:{stamp}:{pos['con_id']}"
            order.account = self.account or ""
            await self.pacer.acquire(1)
            self.ib.placeOrder(contract, order)
            closing.append(f"{pos['local_symbol'] or pos['symbol']} {qty}")
        await wait_drained(self.ib.client)
        return f"cancelled {len(cancelled)} order(s); closing {', '.join(closing) or 'nothing'}"

    async def contract_for(self, con_id: int) -> Contract:
        """The contract of a position (for closing it)."""
        assert self.ib is not None
        for pos in self.ib.positions(self.account or ""):
            if pos.contract.conId == con_id:
                contract = pos.contract
                if not contract.exchange:
                    contract.exchange = {"STK": "SMART", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}.get(
                        contract.secType, contract.primaryExchange or "SMART"
                    )
                return contract
        raise ContractNotFound(f"no position with conId {con_id}")


def _request_contract(spec: ContractSpec) -> Contract:
    if spec.sec_type == "CASH":
        return Forex(spec.symbol + spec.currency, exchange=spec.exchange)
    if spec.sec_type == "CRYPTO":
        return Crypto(spec.symbol, spec.exchange, spec.currency)
    if spec.sec_type == "FUT":
        return IBFuture(spec.symbol, spec.contract_month, spec.exchange, currency=spec.currency)
    return Stock(spec.symbol, spec.exchange, spec.currency, primaryExchange=spec.primary_exchange)


def _describe(spec: ContractSpec) -> str:
    text = f"{spec.sec_type} {spec.symbol}"
    if spec.contract_month:
        text += f" {spec.contract_month}"
    if spec.front_index:
        text += f" (front #{spec.front_index})"
    return f"{text} on {spec.exchange} in {spec.currency}"
