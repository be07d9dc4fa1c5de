"""One job: load the alert → decide against IB's position → write the decision → orders → record.

Runs on the consumer (main) thread. IB work is handed to the IB thread through
:meth:`IBConnection.call`; database writes go to the :class:`Recorder` thread. Per-job state lives in
an :class:`AlertJob`, not on the long-lived executor. A refusal is raised as
:class:`~worker.errors.Refused` anywhere below and caught here once.

The position protocol (issue 10; the rules are in :mod:`worker.decision.positions`):

1. **Decide and write it down first.** IB's position for the account + contract and the alert give
   a :class:`~worker.decision.positions.Decision`; it is stored in the alert's plan (``plan["position"]``:
   before, absolute target, kind, close / open quantities, reason, the protection before and
   after) together with the legs, and the write is awaited BEFORE any order goes out. A rerun
   (SIGKILL, retry) never decides again: it resumes toward the stored target from the position IB
   reports now, each part capped by the stored one, each leg by its fixed orderRef. Nothing to do
   (already at the target; an exit while flat) ends ``cancelled`` with the reason (not a failure).
2. **The closing part first** (reduce, close, reverse): tv2ib's resting entries on the contract
   are cancelled (IB's confirmation awaited), the exits are fitted to the position the close will
   leave (cancelled when that is flat, shrunk by modification otherwise; each change confirmed),
   then the closing order goes out (leg ``close``; ``exit`` for exit alerts), ``tv2ib:<alert>:close``.
   The job follows it: a market close until it fills, a limit close until IB acknowledges it (a
   reversal's close until it fills, up to ``REVERSAL_FILL_TIMEOUT_SECONDS``).
3. **The opening part once the close is done**: from flat (an open, a reversal's second half) the
   bracket as always (``entry`` + ``tp`` / ``sl`` children); an ``add`` is a plain ``entry`` whose
   exits the guard (worker/execution/guard.py) grows to the whole position after it fills. A close that IB
   refuses, or that does not fill completely in time, opens nothing: the old protection is put
   back for whatever position remains and the alert ends ``rejected`` saying so.
4. The protection the position should have after the trade is handed to the guard
   (:meth:`Executor._protect`) right before the opening part goes out (a reduce: after its close),
   and the guard is kept off the contract while the job changes its exits.

Exactly once (invariant 2) rests on three checks, in this order:

1. the alert's state: terminal, or ``submitted`` without a position decision (an old plan), and
   the job only re-reads; with a decision, a rerun resumes (every step below is idempotent);
2. IB's own view of the legs' ``orderRef`` (open orders, completed orders, executions, all fetched
   on connect and kept current from events), checked on the IB loop in the same step that sends
   (see :meth:`Trading.place_legs`);
3. the queue merely delivers at least once: a job whose worker died is run again and the checks
   above make the rerun harmless.

The decision row is the only thing written before sending (it fixes the absolute target, so that
a rerun cannot read a relative ``sell 20`` twice); what reached IB is always read from IB's
reports. Order rows are written right after the send, in order with IB's events, by the single
recorder thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ib_async import Contract, Trade
from sqlalchemy import select

from config.settings import DEFAULT_FUTURES_ROLL_DAYS
from core.ids import order_ref, parse_order_ref
from core.models import IB_DONE_STATUSES, IB_ENDED_UNFILLED_STATUSES, STATUS_RANK, Alert, AlertStatus, Control
from core.payload import AlertPayload, PayloadError
from core.services import PAUSED_KEY
from worker.contracts.effects import chart_position, contract_map_doc, decided_spec, scale_intent
from worker.contracts.held_month import HeldMonth, held_month, keep_to_held_month
from worker.contracts.roll import Pick
from worker.contracts.symbol_map import SymbolResolver
from worker.contracts.tickers import ContractSpec
from worker.decision.drift import report_drift
from worker.decision.order_types import ExitOrder, OrderRules, default_exit_order
from worker.decision.planner import (
    OCA_TYPE,
    Instrument,
    Leg,
    Plan,
    alert_kind,
    intent_of,
    is_exit,
    needs_market_reference,
    plan_bracket,
    plan_close,
    protection_orders,
    protection_prices,
)
from worker.decision.positions import Decision, ExitChange, decide, describe, exit_changes, toward
from worker.decision.sizing import Sizing, size_alert
from worker.errors import Refused, TemporaryError
from worker.execution.margin import MarginGate
from worker.ib import IBConnection, Placement, Trading
from worker.ib.account import AccountFigures
from worker.ib.market_data import close_without_reference
from worker.ib.translate import num
from worker.metrics import WorkerMetrics
from worker.recording.protection import orders_from_json
from worker.recording.recorder import PlacementFact, Recorder, UnitOfWork
from worker.recording.snapshots import OrderSnapshot
from worker.risk.gate import RiskRefused, describe_legs

log = logging.getLogger(__name__)

CRASH_ENV = "TV2IB_CRASH_AT"


def crash_point(name: str) -> None:
    """Test instrumentation: SIGKILL this process at ``name`` when ``TV2IB_CRASH_AT`` names it.

    Points, in the order a reversal passes them: ``after_decision_recorded`` (the decision is in
    the database, nothing sent), ``after_exits_cancelled`` (resting entries cancelled, exits fitted
    to what the close leaves, confirmed by IB), ``after_close_placed`` (``after_exit_placed`` for an
    exit alert), ``after_close_filled``, ``before_place`` (the opening part is next),
    ``after_entry_placed``, ``after_tp_placed``, ``after_sl_placed``, ``after_recorded``; and
    ``after_exits_restored`` (a refused close: the old protection is back, the alert not yet
    ended). Unset in production, so this is a dict lookup.
    """
    if os.environ.get(CRASH_ENV) == name:
        log.warning("crash point %s reached: SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)


class Requeue(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Put the job back on the queue (the worker is stopping before the alert could be placed)."""


class RetryLater(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Orders went out but could not be recorded (database trouble): run the job again later; the
    rerun finds the orders at IB by orderRef and records them without sending anything."""


class _Stale(Exception):  # noqa: N818
    def __init__(self, age: float) -> None:
        super().__init__(age)
        self.age = age


@dataclass
class AlertJob:
    """One run of one alert: what was loaded, what went out, and when (for the job's log line)."""

    alert_id: str
    payload: AlertPayload
    received_at: datetime
    paused: bool
    timings: dict[str, float] = field(default_factory=lambda: {"start": time.perf_counter()})
    sent: bool = False  # some leg of this job went out to IB
    status: AlertStatus = AlertStatus.QUEUED
    plan: dict[str, Any] | None = None  # the alert's stored plan
    decided: dict[str, Any] | None = None  # its position decision (plan["position"]), once stored

    def mark(self, name: str) -> None:
        self.timings[name] = time.perf_counter()

    def leg_sent(self, leg: str) -> None:
        self.sent = True
        crash_point(f"after_{leg}_placed")

    def record_placement(self, recorder: Recorder, plan: dict[str, Any]) -> Callable[..., Any]:
        """The callback :meth:`Trading.place_legs` calls right after the sends (on the IB loop)."""

        def record(placed: list[OrderSnapshot], adopted: list[OrderSnapshot]) -> Any:
            return recorder.record(PlacementFact(self.alert_id, dict(plan), placed, adopted))

        return record


class Executor:
    """Executes alerts; one instance per worker process (its state is its dependencies)."""

    def __init__(
        self,
        sessions: Any,
        recorder: Recorder,
        conn: IBConnection,
        trading: Trading,
        *,
        stale_after: float,
        stopping: threading.Event,
        ib_call_timeout: float = 30.0,
        max_order_quantity: Decimal | None = None,
        metrics: WorkerMetrics | None = None,
        reversal_fill_timeout: float = 30.0,
        symbols: SymbolResolver | None = None,
        order_rules: OrderRules | None = None,
        margin: MarginGate | None = None,
    ) -> None:
        self.sessions = sessions
        # TradingView ticker → IB contract: the symbol map (SYMBOL_MAP_FILE) and the futures roll
        # rule (FUTURES_ROLL_DAYS); worker/contracts/symbol_map.py
        self.symbols = symbols or SymbolResolver(None, DEFAULT_FUTURES_ROLL_DAYS)
        self.margin = (
            margin  # IB's what-if before an opening order (worker/execution/margin.py); None: unchecked
        )
        self.recorder = recorder
        self.conn = conn
        self.trading = trading
        self.stale_after = stale_after
        self.stopping = stopping
        self.ib_call_timeout = ib_call_timeout
        self.max_order_quantity = max_order_quantity
        self.metrics = metrics
        self.reversal_fill_timeout = reversal_fill_timeout  # REVERSAL_FILL_TIMEOUT_SECONDS
        self.order_rules = order_rules or OrderRules()  # EXTENDED_HOURS_STOP_LIMIT_TICKS (order_types.py)
        # the protective-order guard (worker/execution/guard.py), set by worker/runtime.py: the job hands it
        # the protection a position should have and asks it to put the old exits back
        self.guard: Any = None
        # sizing (issue 11): payload -> the strategy's default (quantity_type, quantity) from the risk
        # file, for alerts without quantity and positionSize; set by the risk file's wiring
        self.sizing_default: Callable[[AlertPayload], tuple[str, Decimal] | None] | None = None
        # the risk gate (worker/risk/gate.py, the risk file's limits), set by worker/runtime.py;
        # None (unit tests): no limits
        self.risk: Any = None

    # ------------------------------------------------------------------ the job

    def execute_alert(self, alert_id: str) -> str:
        """Run one alert to the point where IB has its orders (or it is refused); returns its state."""
        started = time.perf_counter()
        with self.sessions() as session:
            # one round trip: the alert and the pause switch (the order path is latency-bound)
            row = session.execute(
                select(Alert.status, Alert.payload, Alert.received_at, Control.value, Alert.plan)
                .outerjoin(Control, Control.key == PAUSED_KEY)
                .where(Alert.id == alert_id)
            ).first()
            if row is None:
                log.warning("job for unknown alert %s dropped", alert_id)
                return "unknown"
            status, stored, received_at, paused, plan = row[0], row[1], row[2], row[3] == "1", row[4]
        try:
            payload = AlertPayload.from_json(stored or {})
        except PayloadError as exc:  # intake stored it validated: only a hand-edited row gets here
            if status.is_terminal or STATUS_RANK[status] >= STATUS_RANK[AlertStatus.SUBMITTED]:
                return status.value
            return self.reject(alert_id, f"the stored payload is unreadable: {exc}")
        job = AlertJob(alert_id, payload, received_at, paused, {"start": started})
        job.mark("loaded")
        job.status, job.plan = status, dict(plan or {}) or None
        decided = (job.plan or {}).get("position")
        job.decided = decided if isinstance(decided, dict) and decided.get("kind") != "none" else None
        submitted = STATUS_RANK[status] >= STATUS_RANK[AlertStatus.SUBMITTED]
        if status.is_terminal or (submitted and job.decided is None):
            log.info("alert %s is already %s; nothing to do", alert_id, status.value)
            return status.value
        if submitted:
            # a rerun of a decided alert whose first orders went out: resume (every step adopts
            # what IB already has); only adopting and finishing is left, never "stale"
            job.sent = True
        # 'processing' is written with the job's first record (the placement, a refusal, or the
        # wait for IB), not before: the database thread stays idle while the orders go out
        try:
            return self._run(job)
        except Requeue:
            raise
        except Refused as exc:
            return self.reject(alert_id, str(exc), plan=getattr(exc, "plan", None))
        except _Stale as exc:
            return self.reject_stale(alert_id, exc.age)
        except Exception as exc:
            if job.sent:
                # never call an alert failed once its orders are at IB: retry and adopt them
                log.exception("alert %s: orders sent but not recorded; retrying later", alert_id)
                raise RetryLater(alert_id) from exc
            log.exception("alert %s failed", alert_id)
            self._write(self.recorder.advance, alert_id, AlertStatus.FAILED, f"worker error: {exc}",
                        reason=f"worker error: {type(exc).__name__}: {exc}")  # fmt: skip
            return AlertStatus.FAILED.value

    def _run(self, job: AlertJob) -> str:
        kind = alert_kind(job.payload)
        spec = self.symbols.resolve(job.payload.ticker, job.payload.exchange)
        action = job.payload.action
        opening = action in ("buy", "sell", "add") and not is_exit(job.payload)
        if opening and job.paused and job.decided is None:
            raise Refused("trading paused")
        while True:  # wait for IB, up to the stale limit; then try; retry if IB drops meanwhile
            self._wait_for_ib(job)
            try:
                self._check_stale_decision(job)
                if kind == "cancel":
                    return self._cancel(job, spec)
                return self._position(job, spec)
            except (TemporaryError, ConnectionError, TimeoutError) as exc:
                log.warning("alert %s: IB unavailable (%s); waiting", job.alert_id, exc)
                time.sleep(0.2)

    def _wait_for_ib(self, job: AlertJob) -> None:
        announced = False
        while True:
            age = (datetime.now(UTC) - job.received_at).total_seconds()
            # once a leg went out, only adopting is left; a stored decision may have sent legs that
            # were never recorded (a crash between send and record): IB is asked first (below)
            if age > self.stale_after and not job.sent and job.decided is None:
                raise _Stale(age)
            if self.conn.ready:
                return
            if self.stopping.is_set():
                raise Requeue(job.alert_id)
            if not announced:
                announced = True
                self.recorder.run(self._mark_processing, job.alert_id, "waiting for the IB connection")
            self.conn.wait_ready(min(0.5, max(0.05, self.stale_after - age)))

    def _check_stale_decision(self, job: AlertJob) -> None:
        """A decided alert past the stale limit: stale only if IB has none of its legs. A worker
        killed between sending a leg and recording it leaves ``processing`` + a decision; its rerun
        may come long after (the worker was down), and the legs at IB must then be adopted and
        followed, never abandoned as "stale"."""
        if job.sent or job.decided is None:
            return
        age = (datetime.now(UTC) - job.received_at).total_seconds()
        if age <= self.stale_after:
            return
        refs = [order_ref(job.alert_id, leg.get("leg", "")) for leg in (job.plan or {}).get("legs") or []]

        async def at_ib() -> bool:  # IB's view is read on its loop, like every other reading
            return bool(self.trading.known_refs(refs))

        if refs and self.conn.call(at_ib(), timeout=self.ib_call_timeout):
            log.info("alert %s: %.0fs old, but IB has its orders: resuming", job.alert_id, age)
            job.sent = True
            return
        raise _Stale(age)

    # ------------------------------------------------------------------ cancel

    def _cancel(self, job: AlertJob, spec: ContractSpec) -> str:
        """``cancel``: tv2ib's resting entry orders on the contract (their dormant bracket children
        go with them); working exits and the position are left alone."""
        if self._dry_run(job):  # dry_run (risk file): cancels nothing either
            message = f"dry run: would cancel tv2ib's working entry orders for {job.payload.ticker}"
            self._write(
                self._finish_without_order, job.alert_id, {"kind": "cancel", "dry_run": True}, message
            )
            return AlertStatus.CANCELLED.value

        async def run() -> list[OrderSnapshot]:
            _contract, inst = await self.trading.instrument(spec)
            resting = self.trading.resting_entries(inst.con_id)
            if spec.front_index and inst.sec_type == "FUT":
                # a continuous future (ES1!): entries left resting in a month it rolled away from
                # are the strategy's too (placed on ES1! before the roll)
                resting += [t for t in self.trading.resting_entries(None)
                            if t.contract.secType == "FUT" and t.contract.symbol == inst.symbol
                            and t.contract.conId != inst.con_id]  # fmt: skip
            return await self.trading.cancel_and_wait(resting)

        cancelled = self.conn.call(run(), timeout=self.ib_call_timeout)
        message = f"cancel: cancelled {len(cancelled)} working entry order(s) for {job.payload.ticker}"
        plan_json = {"kind": "cancel", "cancelled": [c.order_ref for c in cancelled]}
        self._write(self._finish_without_order, job.alert_id, plan_json, message)
        return AlertStatus.CANCELLED.value

    # ------------------------------------------------------------------ the position protocol

    def _position(self, job: AlertJob, spec: ContractSpec) -> str:
        """Decide against IB's position and write the decision down (first run), then move the
        position toward the recorded target (every run); see the module docstring."""
        if job.decided is None:
            look = self.conn.call(self._look(job, spec), timeout=self.ib_call_timeout)
            job.mark("on_loop")
            done = self._decide(job, look)
            if done is not None:
                return done
            crash_point("after_decision_recorded")
        timeout = self.ib_call_timeout + self.reversal_fill_timeout + 15
        outcome = self.conn.call(self._act(job, spec), timeout=timeout)
        job.mark("placed")
        for placement in outcome.placements:
            if placement.recorded is not None:
                placement.recorded.result(30)
        if outcome.ended is not None:
            status, reason = outcome.ended
            self._write(self._end, job.alert_id, status, reason, outcome.plan)
            crash_point("after_recorded")
            return status.value
        crash_point("after_recorded")
        t = job.timings
        legs = sum(len(p.placed) for p in outcome.placements)
        log.info("alert %s: %d leg(s) on the wire %.1f ms after pick-up (loaded %.1f, on IB loop %.1f), "
                 "recorded after %.1f ms", job.alert_id, legs,
                 (t.get("on_wire", t["placed"]) - t["start"]) * 1000, (t["loaded"] - t["start"]) * 1000,
                 (t.get("on_loop", t["placed"]) - t["start"]) * 1000,
                 (time.perf_counter() - t["start"]) * 1000)  # fmt: skip
        return AlertStatus.SUBMITTED.value

    async def _look(self, job: AlertJob, spec: ContractSpec) -> _Look:
        """IB's view before deciding: contract, position, the protection it has, a reference price."""
        contract, inst = await self.trading.instrument(spec)
        roll = self.trading.roll_of(spec)
        # contracts (worker/contracts/held_month.py): a position held in the month before a roll is decided there
        contract, inst, held = await held_month(self.trading, spec, contract, inst)
        # the position including the previous alert's market order and fills (IB reports a
        # position a moment after the fill; a decision must not read the report before it)
        position = await self.trading.settled_position(inst.con_id)
        market, source, quote = None, "ib", None
        if needs_market_reference(job.payload):
            quote = await self.trading.market_price(contract)  # live, else delayed (worker/ib/market_data.py)
            market, source = quote.price, quote.source
        protection = self._protection_now(inst, position)
        # sizing (issue 11): IB's account figures as last reported (no round trip), read once per alert
        figures = self.trading.account_figures()
        return _Look(contract, inst, position, market, source, protection, self.trading.account or "",
                     figures=figures, spec=spec, roll=roll, held=held,
                     market_data=quote.to_json() if quote is not None else None)  # fmt: skip

    def _protection_now(self, inst: Instrument, position: Decimal) -> dict[str, Any] | None:
        """The protection the position has now (to put back if the order that changes it fails):
        the guard's spec when it has one for this side, else the prices of the working exits."""
        if position == 0:
            return None
        account = self.trading.account or ""
        guard = self.guard
        if guard is not None:
            current = guard.registry.get(account, inst.con_id)
            if current is not None and current.protects(position):
                return current.to_json()
        prices = {}
        owner = None
        for ex in self.trading.working_exits(inst.con_id):
            owner = owner or (parse_order_ref(ex.ref) or ("", ""))[0]
        if owner:
            prices = {role: str(price) for role, price in self.trading.exit_prices(inst.con_id).items()}
        if not prices:
            return None
        doc = {"account": account, "con_id": inst.con_id, "alert_id": owner, "side": 1 if position > 0 else -1,
               "prices": prices, "symbol": inst.local_symbol or inst.symbol}  # fmt: skip
        orders = _orders_json(self.trading.exit_orders(inst.con_id), prices)  # a TRAIL is put back as one
        if orders:
            doc["orders"] = orders
        return doc

    def _decide(self, job: AlertJob, look: _Look) -> str | None:
        """The decision, its orders and its protection, written down BEFORE any order goes out
        (and awaited). Returns the final state when nothing is to be sent."""
        payload, inst = job.payload, look.inst
        # the strategy's previous position (prevMarketPosition / Size) against IB's: an alarm, never
        # a refusal (worker/decision/drift.py); written by the recorder, not awaited
        report_drift(self.recorder, job.alert_id, payload, chart_position(look.position, look.spec),
                     account=look.account or None, symbol=inst.local_symbol or inst.symbol)  # fmt: skip
        if self.risk is not None:  # a strategy the risk file does not know: a warning, never a refusal
            self.risk.warn_unknown_strategy(
                job.alert_id, payload.strategy, look.account or payload.account or None
            )
        # sizing (issue 11, worker/decision/sizing.py): a dollar / risk / equity quantity, or the strategy's
        # default, becomes the order quantity decide reads; None: the alert's own quantity as before
        sizing = size_alert(payload, inst, position=look.position, market_price=look.market,
                            figures=look.figures, default=self._sizing_default(payload),
                            market_source=look.source)  # fmt: skip
        intent = intent_of(payload, sizing)
        if sizing is None:  # contracts: the alert's own contracts × the map's quantity_multiplier
            intent = scale_intent(intent, payload, look.spec)  # (a sized quantity is already in traded units)
        decision = decide(look.position, intent, inst.size_increment)
        decision = keep_to_held_month(decision, look.held)  # contracts: no open beside a held old month
        if decision.kind == "cancel":  # not reached: alert_kind routes cancel alerts  # pragma: no cover
            raise Refused("cancel is not a position change")
        if decision.kind == "none":
            return self._nothing_to_do(job, look, decision, sizing)
        # a data problem never blocks a close (worker/ib/market_data.py): without IB's price for relative
        # exits a reversal only closes, a reduce keeps its exits' prices
        # (a reversal's opening part that cannot be priced is refused below like any refused open)
        unpriced = False
        if decision.open_qty == 0:
            decision, unpriced = close_without_reference(decision, payload, look.market, look.source)
        # "bracket" (an open from flat, as before issue 10), "exit", or "position" (any other move)
        plan_kind = "bracket" if decision.kind == "open" else "exit" if is_exit(payload) else "position"
        plan = Plan(kind=plan_kind, instrument=inst)
        close_leg = None
        if decision.close_qty > 0:
            leg = "exit" if is_exit(payload) else "close"
            close_leg = plan_close(inst, decision.close_side or "", decision.close_qty, payload, leg=leg,
                                   reference=look.market, rules=self.order_rules, notes=plan.notes,
                                   reversal=decision.open_qty > 0)  # fmt: skip
        open_legs: list[Leg] = []
        after: dict[str, Any] | None = None
        before = look.protection
        side = 1 if decision.target > 0 else -1
        symbol = inst.local_symbol or inst.symbol
        # a refusal of the opening part (its plan, the risk gate, the margin check): an entry or an
        # add is refused whole; a reversal keeps its close (an exit is never blocked) and ends
        # rejected with this reason once the close is done
        refused_open: str | None = None
        opened: Plan | None = None
        if decision.open_qty > 0:
            try:
                opened = plan_bracket(payload, inst, look.market, look.source, max_quantity=self.max_order_quantity,
                                      side=decision.open_side, quantity=decision.open_qty,
                                      rules=self.order_rules)  # fmt: skip
            except Refused as exc:
                if decision.close_qty == 0:
                    raise
                refused_open = str(exc)
        if opened is not None:
            plan.reference_price, plan.reference_source = opened.reference_price, opened.reference_source
            plan.notes += opened.notes
            new_prices = protection_prices(opened.legs)
            if decision.kind == "add":
                # a plain entry: the exits grow to the whole position only after it fills (guard)
                open_legs = [replace(opened.legs[0], transmit=True)]
                prices = {
                    **((before or {}).get("prices") or {}),
                    **{k: str(v) for k, v in new_prices.items()},
                }
                orders = _merge_orders(before, protection_orders(opened.legs), new_prices)
                after = _spec_json(look, job.alert_id, side, prices, symbol, orders)
                if new_prices:
                    plan.notes.append("the position's exits are re-priced by this alert")
            else:  # from flat, or the opening part of a reversal: a bracket, as always
                open_legs = opened.legs
                after = _spec_json(look, job.alert_id, side, {k: str(v) for k, v in new_prices.items()}, symbol,
                                   _orders_json(protection_orders(opened.legs), new_prices))  # fmt: skip
        elif decision.open_qty == 0 and decision.target != 0:  # reduce: same side, exits shrink;
            # re-priced when the alert says so
            prices = dict((before or {}).get("prices") or {})
            orders = dict((before or {}).get("orders") or {})
            if (payload.take_profit or payload.stop_loss) and not unpriced:
                priced = plan_bracket(payload, inst, look.market, look.source, side="BUY" if side > 0 else "SELL",
                                      quantity=abs(decision.target), rules=self.order_rules,
                                      exits_only=True)  # fmt: skip
                new_prices = protection_prices(priced.legs)
                prices.update({k: str(v) for k, v in new_prices.items()})
                orders = _merge_orders(before, protection_orders(priced.legs), new_prices)
                plan.notes.append("the position's exits are re-priced by this alert")
            after = _spec_json(look, job.alert_id, side, prices, symbol, orders)
        # RISK gate (worker/risk/gate.py): the opening part against the risk file's limits; a close
        # or an exit is never refused. A refused opening part of a reversal keeps its close.
        verdict = None
        if self.risk is not None:
            verdict = self.risk.check(payload, look, decision, open_legs, plan.reference_price)
            if verdict.refusal and decision.close_qty == 0:
                raise RiskRefused(verdict.refusal, plan=_refused_plan(plan, open_legs, decision, verdict))
            refused_open = refused_open or verdict.refusal or None
        # MARGIN: IB's what-if on the opening part (worker/execution/margin.py). Refused: an open raises; a
        # reversal keeps its close and opens nothing (below)
        margin = None
        if self.margin is not None and not refused_open:
            margin = self.margin.check(look.contract, symbol, decision, open_legs)
            if margin is not None and margin.refused:
                refused_open = margin.refused
        if refused_open:
            plan.notes.append(f"opening part not sent: {refused_open}")
            decision = Decision("close", decision.position, Decimal(0), f"{decision.reason}; close only: "
                                "the opening part was refused")  # fmt: skip
            open_legs, after = [], None
        plan.legs = ([close_leg] if close_leg else []) + open_legs
        plan.notes.insert(0, decision.reason)
        if sizing is not None:
            plan.notes.insert(0, sizing.text)
        doc = plan.to_json()
        if sizing is not None:  # every number the sizing used (worker/decision/sizing.py)
            doc["sizing"] = sizing.to_json()
        doc["oca_type"] = OCA_TYPE if open_legs and len(open_legs) > 1 else None
        if verdict is not None:
            doc["risk"] = verdict.to_json()
        if look.market_data is not None:
            doc["market_data"] = look.market_data  # live or delayed, and why (worker/ib/market_data.py)
        if margin is not None:
            doc["margin"] = margin.doc  # IB's what-if figures and the verdict (worker/execution/margin.py)
        doc["position"] = {
            "before": _qty(decision.position),
            "target": _qty(decision.target),
            "kind": decision.kind,
            "close_qty": _qty(decision.close_qty),
            "open_qty": _qty(decision.open_qty),
            "reason": decision.reason,
            "protection_before": before,
            "protection_after": after,
        }
        contract_map = contract_map_doc(payload, look.spec, inst, look.roll, look.held)
        if contract_map is not None:
            doc["contract_map"] = contract_map
        if refused_open:
            doc["position"]["refused_open"] = refused_open  # the job ends the alert with it
        if verdict is not None and verdict.dry_run:  # dry_run (risk file): recorded, nothing is sent
            message = "dry run: would send " + (describe_legs(plan.legs, symbol) or "nothing")
            if refused_open:
                message += f"; opening part refused: {refused_open}"
            self._write(self._finish_without_order, job.alert_id, doc, message)
            return AlertStatus.CANCELLED.value
        self._write(self._store_decision, job.alert_id, doc, decision.reason)
        job.plan, job.decided = doc, doc["position"]
        return None

    def _sizing_default(self, payload: AlertPayload) -> tuple[str, Decimal] | None:
        """The strategy's default sizing from the risk file (``default_sizing``; set by
        worker/runtime.py; None in unit tests without a risk file)."""
        default_of = self.sizing_default
        return default_of(payload) if default_of is not None else None

    def _nothing_to_do(self, job: AlertJob, look: _Look, decision: Any, sizing: Sizing | None = None) -> str:
        """Already at the target, or an exit with nothing held: no order; ``cancelled`` with the
        reason (not a failure: no rejection notice). An exit still cancels what works on the
        contract (a resting entry would otherwise open what the strategy just left)."""
        plan_json = {"kind": "exit" if is_exit(job.payload) else "position", "contract": look.inst.to_json(), "legs": [], "notes": [decision.reason],
                     "position": {"before": _qty(decision.position), "target": _qty(decision.target),
                                  "kind": "none", "close_qty": "0", "open_qty": "0", "reason": decision.reason}}  # fmt: skip
        if sizing is not None:
            plan_json["sizing"] = sizing.to_json()
        if is_exit(job.payload) and self._dry_run(job):  # dry_run (risk file): cancels nothing either
            message = (
                f"dry run: no open position in {job.payload.ticker}; would cancel tv2ib's working orders"
            )
        elif is_exit(job.payload):
            cancelled = self.conn.call(
                self.trading.cancel_working(look.inst.con_id), timeout=self.ib_call_timeout
            )
            plan_json["cancelled"] = [c.order_ref for c in cancelled]
            message = (f"exit: no open position in {job.payload.ticker}; "
                       f"cancelled {len(cancelled)} working order(s)")  # fmt: skip
        else:
            message = decision.reason
        self._write(self._finish_without_order, job.alert_id, plan_json, message)
        return AlertStatus.CANCELLED.value

    async def _act(self, job: AlertJob, spec: ContractSpec) -> _Outcome:
        """On the IB loop: the closing part, then (once it filled) the opening part, each leg by
        its fixed orderRef so that a rerun adopts what a previous run sent."""
        # contracts: act on the month decided on (a roll since, or a held old month)
        contract, inst = await self.trading.instrument(decided_spec(spec, job.plan))
        with self._guard_off(inst.con_id):
            return await self._act_on(job, contract, inst)

    async def _act_on(self, job: AlertJob, contract: Contract, inst: Instrument) -> _Outcome:
        trading, alert_id, con_id = self.trading, job.alert_id, inst.con_id
        doc = dict(job.plan or {})
        stored = job.decided or {}
        before, target = Decimal(stored["before"]), Decimal(stored["target"])
        close_qty, open_qty = Decimal(stored["close_qty"]), Decimal(stored["open_qty"])
        legs = [Leg.from_json(leg) for leg in doc.get("legs") or []]
        close_leg = next((leg for leg in legs if leg.leg in ("close", "exit")), None)
        open_legs = [leg for leg in legs if leg is not close_leg]
        outcome = _Outcome(plan=doc)
        record = job.record_placement(self.recorder, doc)
        # -------------------------------------------------------------- the closing part
        if close_leg is not None:
            close_ref = order_ref(alert_id, close_leg.leg)
            if close_ref not in trading.known_refs([close_ref]):
                now = trading.position_of(con_id)
                qty = _close_part(now, before, target, close_qty)
                if qty > 0:
                    mine = f"tv2ib:{alert_id}:"
                    resting = [
                        t for t in trading.resting_entries(con_id) if not t.order.orderRef.startswith(mine)
                    ]
                    if resting:  # a reversal while the previous entry rests: that entry goes first
                        await trading.cancel_and_wait(resting)
                        now = trading.position_of(con_id)
                        qty = _close_part(now, before, target, close_qty)
                    leaves = now - qty if now > 0 else now + qty
                    changes = exit_changes(leaves, trading.working_exits(con_id))
                    reprice = _prices((stored.get("protection_after") or {}).get("prices"))
                    terms = orders_from_json((stored.get("protection_after") or {}).get("orders"))
                    await trading.apply_exit_changes(contract, changes, alert_id=alert_id,
                                                     prices=reprice if target * before > 0 else {},
                                                     oca_group=trading.exit_oca_group(con_id, alert_id),
                                                     orders=terms if target * before > 0 else {})  # fmt: skip
                    crash_point("after_exits_cancelled")
                    if qty > 0:
                        outcome.placements.append(await trading.place_legs(
                            alert_id, contract, [replace(close_leg, quantity=qty)], OCA_TYPE,
                            on_leg_sent=job.leg_sent, record=record))  # fmt: skip
                        job.mark("on_wire")
                        self._observe_on_wire(job, outcome.placements[-1])
            else:  # sent by an earlier run: adopt it (recorded), then follow it like a fresh one
                outcome.placements.append(await trading.place_legs(
                    alert_id, contract, [close_leg], OCA_TYPE, on_leg_sent=job.leg_sent, record=record))  # fmt: skip
            if close_ref in trading.known_refs([close_ref]):
                refused_open = stored.get("refused_open")  # the risk gate refused the opening part
                reversal = open_qty > 0 or bool(refused_open)
                result, trade = await self._await_close(close_ref, reversal)
                if result == "filled":
                    crash_point("after_close_filled")
                    if refused_open:
                        outcome.ended = (AlertStatus.REJECTED,
                                         f"{refused_open}; the close went through: the position is flat, not reversed")  # fmt: skip
                        return outcome
                elif result == "working" or (result == "timeout" and not reversal):
                    # a resting limit close, or a market close IB has not filled yet (closed
                    # market): it stays working, its exits already fit what it leaves; the alert
                    # follows it (recorder). Only a reversal gives up: nothing may open after it
                    return outcome
                else:
                    if trade is not None and trade.orderStatus.status not in IB_DONE_STATUSES:
                        await trading.cancel_and_wait([trade])  # no half-done reversal later on
                    outcome.ended = await self._close_failed(
                        job, contract, inst, close_leg, trade, result, doc
                    )
                    return outcome
        # -------------------------------------------------------------- the opening part
        after = stored.get("protection_after")
        if open_legs:
            refs = [order_ref(alert_id, leg.leg) for leg in open_legs]
            known = trading.known_refs(refs)
            qty = open_qty
            if not known:
                mine = f"tv2ib:{alert_id}:"
                against = [t for t in trading.resting_entries(con_id)
                           if t.order.action != open_legs[0].action and not t.order.orderRef.startswith(mine)]  # fmt: skip
                if against:  # an entry resting on the other side would undo this one when it fills
                    await trading.cancel_and_wait(against)
                now = trading.position_of(con_id)
                qty = _open_part(now, target, open_qty)
            if known or qty > 0:
                self._protect(inst, alert_id, after)
                sized = [replace(leg, quantity=qty) for leg in open_legs] if not known else open_legs
                crash_point("before_place")
                outcome.placements.append(await trading.place_legs(
                    alert_id, contract, sized, OCA_TYPE, on_leg_sent=job.leg_sent, record=record))  # fmt: skip
                job.mark("on_wire")
                self._observe_on_wire(job, outcome.placements[-1])
            if stored.get("kind") == "add" and after and after.get("prices"):
                await self._reprice(contract, inst, alert_id, _prices(after["prices"]),
                                    orders_from_json(after.get("orders")))  # fmt: skip
        elif after is not None and target != 0:
            self._protect(inst, alert_id, after)  # a reduce keeps (or re-prices) the protection
            if job.payload.stop_loss or job.payload.take_profit:
                # an exit of another kind than the working one (STP -> TRAIL) is replaced, not modified
                await self._reprice(contract, inst, alert_id, _prices(after["prices"]),
                                    orders_from_json(after.get("orders")))  # fmt: skip
        if not outcome.placements:
            outcome.ended = self._nothing_left(job, stored, trading.position_of(con_id))
        return outcome

    async def _await_close(self, ref: str, reversal: bool) -> tuple[str, Trade | None]:
        """Follow the closing order: ``filled`` (completely), ``ended`` (refused or cancelled, maybe
        after a partial fill), ``working`` (a limit close IB acknowledged; only when no opening part
        waits for it) or ``timeout`` (not completely filled within REVERSAL_FILL_TIMEOUT_SECONDS)."""
        deadline = time.monotonic() + self.reversal_fill_timeout
        trade = None
        while True:
            item = self.trading.known_refs([ref]).get(ref)
            trade = item.trade if item is not None else trade
            if trade is not None:
                status = trade.orderStatus.status
                total = num(trade.order.totalQuantity) or Decimal(0)
                filled = num(trade.orderStatus.filled) or Decimal(0)
                if status == "Filled" or (total and filled >= total):
                    return "filled", trade
                if status in IB_ENDED_UNFILLED_STATUSES:
                    return "ended", trade
                if (
                    not reversal
                    and trade.order.orderType != "MKT"
                    and status in ("Submitted", "PreSubmitted")
                ):
                    return "working", trade
            if time.monotonic() > deadline:
                return "timeout", trade
            self.conn.require_connected()
            await asyncio.sleep(0.02)

    async def _close_failed(self, job: AlertJob, contract: Contract, inst: Instrument, close_leg: Leg,
                            trade: Trade | None, result: str, doc: dict[str, Any]) -> tuple[AlertStatus, str]:  # fmt: skip
        """The closing order did not fill completely: nothing opens; the position keeps (or gets
        back) its old protection for whatever is left; the alert ends with the reason."""
        con_id = inst.con_id
        position = self.trading.position_of(con_id)
        stored = doc.get("position") or {}
        before = stored.get("protection_before")
        restored = await self._restore(contract, inst, job.alert_id, before, position)
        crash_point("after_exits_restored")
        filled = num(trade.orderStatus.filled) if trade is not None else None
        total = num(trade.order.totalQuantity) if trade is not None else close_leg.quantity
        error = _ib_error(trade)
        if result == "timeout":
            what = (f"the {close_leg.leg} order did not fill completely within {self.reversal_fill_timeout:g}s "
                    f"({_qty(filled)}/{_qty(total)} filled; the rest cancelled)")  # fmt: skip
        elif error:
            what = f"IB refused the {close_leg.leg} order: {error}"
        else:
            what = f"the {close_leg.leg} order ended unfilled at IB ({_qty(filled)}/{_qty(total)} filled)"
        kept = (
            "not reversed; " if Decimal(stored.get("open_qty") or 0) > 0 or stored.get("refused_open") else ""
        )
        reason = f"{what}; {kept}position left {describe(position)}{'; ' + restored if restored else ''}"
        doc["position"] = {**stored, "protection_after": before, "outcome": reason}
        return AlertStatus.REJECTED, reason

    async def _restore(self, contract: Contract, inst: Instrument, alert_id: str,
                       before: dict[str, Any] | None, position: Decimal) -> str:  # fmt: skip
        """Put the old protection back for ``position`` (the guard when it runs: it also owns the
        spec; else directly). Returns what was done, for the notice."""
        if self.guard is not None:
            from worker.recording.protection import (
                ProtectionSpec,  # the guard's module (worker/recording/protection.py)
            )

            spec = ProtectionSpec.from_json(before) if before else None
            return await self.guard.restore(
                inst.con_id, spec, "the order that was to change the position failed"
            )
        if position == 0:
            return ""
        prices = _prices((before or {}).get("prices"))
        side = 1 if position > 0 else -1
        if before and before.get("side") != side:
            prices = {}
        changes = exit_changes(position, self.trading.working_exits(inst.con_id), frozenset(prices))
        if not changes:
            return "its exits are in place" if prices else ""
        await self.trading.apply_exit_changes(contract, changes, alert_id=alert_id, prices=prices,
                                              oca_group=self.trading.exit_oca_group(inst.con_id, alert_id),
                                              orders=orders_from_json((before or {}).get("orders")))  # fmt: skip
        return "its exits were put back: " + ", ".join(
            f"{c.role} {c.action} {_qty(c.quantity)}" for c in changes if c.quantity > 0
        )

    async def _reprice(self, contract: Contract, inst: Instrument, alert_id: str, prices: dict[str, Decimal],
                       orders: dict[str, ExitOrder] | None = None) -> None:  # fmt: skip
        """An ``add`` with take-profit / stop-loss moves the existing exits to its prices now (their
        size grows after the add fills, by the guard). An exit whose order type the add changes
        (a STP that becomes a TRAIL) is cancelled, then placed anew: IB modifies prices, not kinds;
        never both at once (two stops would exceed the position). A TRAIL is re-trailed only for
        another trail (its stop moves with the market, not to a price)."""
        changes = []
        current = self.trading.exit_prices(inst.con_id)
        working_terms = self.trading.exit_orders(inst.con_id)
        for ex in self.trading.working_exits(inst.con_id):
            if ex.role not in prices:
                continue
            wanted = (orders or {}).get(ex.role) or default_exit_order(ex.role)
            working = working_terms.get(ex.role) or default_exit_order(ex.role)
            if wanted.order_type != working.order_type:
                changes += [ExitChange(ex.ref, ex.role, ex.action, Decimal(0)),
                            ExitChange(None, ex.role, ex.action, ex.quantity)]  # fmt: skip
            elif working.order_type == "TRAIL":
                if not wanted.same_trail(working.trail_amount, working.trail_percent):
                    changes.append(ExitChange(ex.ref, ex.role, ex.action, ex.quantity))
            elif current.get(ex.role) != prices[ex.role] or wanted.limit_price != working.limit_price:
                changes.append(ExitChange(ex.ref, ex.role, ex.action, ex.quantity))
        if changes:
            await self.trading.apply_exit_changes(contract, changes, alert_id=alert_id, prices=prices,
                                                  oca_group=self.trading.exit_oca_group(inst.con_id, alert_id),
                                                  orders=orders)  # fmt: skip

    def _protect(self, inst: Instrument, alert_id: str, after: dict[str, Any] | None) -> None:
        """Hand the protection the position should have to the guard (worker/execution/guard.py), which keeps
        the exits equal to it after fills and reconnects. No guard (unit tests): nothing to do."""
        guard = self.guard
        if guard is None or after is None:
            return
        from worker.recording.protection import ProtectionSpec

        guard.protect(ProtectionSpec.from_json(after))

    def _dry_run(self, job: AlertJob) -> bool:
        """The risk file puts this alert's strategy / account in dry run (send nothing)."""
        account = self.trading.account or job.payload.account
        return self.risk is not None and self.risk.rules_for(job.payload.strategy, account or None).dry_run

    def _guard_off(self, con_id: int) -> Any:
        """Keep the guard off the contract while the job changes its exits step by step."""
        guard = self.guard
        return guard.busy(con_id) if guard is not None else contextlib.nullcontext()

    def _nothing_left(
        self, job: AlertJob, stored: dict[str, Any], position: Decimal
    ) -> tuple[AlertStatus, str] | None:
        """A rerun found nothing to send and nothing to adopt: the position moved meanwhile."""
        if STATUS_RANK[job.status] >= STATUS_RANK[AlertStatus.SUBMITTED]:
            return None  # its orders are recorded; the alert follows them
        return (AlertStatus.CANCELLED,
                f"nothing sent: IB reports {describe(position)} (the decision was {stored.get('reason')})")  # fmt: skip

    # ------------------------------------------------------------------ writes of the protocol

    def _store_decision(self, uow: UnitOfWork, alert_id: str, doc: dict[str, Any], reason: str) -> None:
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = doc
        self._mark_processing(uow, alert_id)
        self.recorder.note(uow, alert_id, f"decided: {reason}")

    def _end(
        self, uow: UnitOfWork, alert_id: str, status: AlertStatus, reason: str, doc: dict[str, Any]
    ) -> None:
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = doc
        self._mark_processing(uow, alert_id)
        self.recorder.advance(uow, alert_id, status, f"{status.value}: {reason}", reason=reason)

    def _finish_without_order(self, uow: UnitOfWork, alert_id: str, plan_json: dict[str, Any],
                              message: str) -> None:  # fmt: skip
        alert = uow.session.get(Alert, alert_id)
        if alert is not None:
            alert.plan = plan_json
        self._mark_processing(uow, alert_id)
        self.recorder.advance(uow, alert_id, AlertStatus.CANCELLED, message, reason=message)

    def _observe_on_wire(self, job: AlertJob, placement: Placement) -> None:
        """Alert -> wire latency, for legs sent now (not adopted after a restart); memory only."""
        if self.metrics is not None and placement.placed:
            self.metrics.observe_alert_to_wire(time.time() - job.received_at.timestamp())

    # ------------------------------------------------------------------ outcomes

    def reject(self, alert_id: str, reason: str, plan: dict[str, Any] | None = None) -> str:
        """End the alert ``rejected`` with ``reason`` (shown to the trader and in the notice);
        ``plan``: what was decided before the refusal (the risk gate's or the margin check's
        numbers), stored with it."""

        def write(uow: UnitOfWork) -> None:
            if plan is not None and (alert := uow.session.get(Alert, alert_id)) is not None:
                alert.plan = plan
            self._mark_processing(uow, alert_id)
            self.recorder.advance(uow, alert_id, AlertStatus.REJECTED, f"rejected: {reason}", reason=reason)

        self._write(write)
        return AlertStatus.REJECTED.value

    def reject_stale(self, alert_id: str, age: float) -> str:
        """Refuse an alert that waited too long (IB down, or the worker was away)."""
        reason = f"stale: {age:.0f}s old (limit {self.stale_after:.0f}s), IB was not available in time"
        return self.reject(alert_id, reason)

    def _mark_processing(self, uow: UnitOfWork, alert_id: str, note: str | None = None) -> None:
        self.recorder.advance(uow, alert_id, AlertStatus.PROCESSING, "picked up by the worker")
        if note:
            self.recorder.note(uow, alert_id, note)

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(uow, *args)`` on the recorder thread and wait for it."""
        return self.recorder.run(lambda uow: fn(uow, *args, **kwargs)).result(30)


@dataclass(frozen=True)
class _Look:
    """IB's view of the contract when the alert is decided."""

    contract: Contract
    inst: Instrument
    position: Decimal
    market: Decimal | None
    source: str
    protection: dict[str, Any] | None  # the protection the position has (ProtectionSpec JSON)
    account: str = ""
    figures: AccountFigures | None = None  # IB's account figures (sizing, issue 11)
    spec: ContractSpec | None = None  # what the ticker resolved to (symbol map, roll rule)
    roll: Pick | None = None  # a continuous future's roll facts
    held: HeldMonth | None = None  # the earlier month the position is held in (after a roll)
    market_data: dict[str, Any] | None = None  # which data type gave the reference price (Quote JSON)


@dataclass
class _Outcome:
    """What one run of the protocol did: its placements (their records are awaited by the job
    thread) and, when the alert ended here, its final state and reason."""

    plan: dict[str, Any]
    placements: list[Placement] = field(default_factory=list)
    ended: tuple[AlertStatus, str] | None = None


def _spec_json(look: _Look, alert_id: str, side: int, prices: dict[str, str], symbol: str,
               orders: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A protection spec (worker/recording/protection.py ``ProtectionSpec.to_json``) for the position after."""
    doc = {"account": look.account, "con_id": look.inst.con_id, "alert_id": alert_id, "side": side,
           "prices": {k: v for k, v in prices.items() if k in ("tp", "sl")}, "symbol": symbol}  # fmt: skip
    kept = {role: terms for role, terms in (orders or {}).items() if role in doc["prices"]}
    if kept:  # the exits' IB terms (order_types.py); absent for plain LMT / STP exits, as before
        doc["orders"] = kept
    return doc


def _orders_json(orders: dict[str, ExitOrder], roles: Any) -> dict[str, Any]:
    """The terms of ``roles``' exits as spec JSON, leaving out plain LMT / STP (the default)."""
    return {role: terms.to_json() for role, terms in orders.items()
            if role in roles and terms != default_exit_order(role)}  # fmt: skip


def _merge_orders(before: dict[str, Any] | None, new: dict[str, ExitOrder], roles: Any) -> dict[str, Any]:
    """The position's exit terms after an alert re-prices ``roles``: theirs replace the old ones."""
    merged = {
        role: terms for role, terms in ((before or {}).get("orders") or {}).items() if role not in roles
    }
    return {**merged, **_orders_json(new, roles)}


def _refused_plan(plan: Plan, open_legs: list[Leg], decision: Decision, verdict: Any) -> dict[str, Any]:
    """The plan stored with a risk refusal: what would have been sent, and the numbers compared."""
    doc = plan.to_json()
    doc["legs"] = []
    doc["refused_legs"] = [leg.to_json() for leg in open_legs]
    doc["notes"] = [decision.reason, *doc["notes"]]
    doc["risk"] = verdict.to_json()
    return doc


def _prices(raw: dict[str, Any] | None) -> dict[str, Decimal]:
    return {role: Decimal(str(value)) for role, value in (raw or {}).items()}


def _close_part(now: Decimal, before: Decimal, target: Decimal, close_qty: Decimal) -> Decimal:
    """What is still to close: nothing once the position left the side it was on (closed by a
    stop, or by this alert before a restart); never more than the recorded closing part."""
    if now == 0 or (now > 0) != (before > 0):
        return Decimal(0)
    return min(close_qty, toward(now, target).close_qty)


def _open_part(now: Decimal, target: Decimal, open_qty: Decimal) -> Decimal:
    """What is still to open toward the target; never more than the recorded opening part (IB's
    position report may trail the close's fill: from either side the opening part is the same)."""
    return min(open_qty, toward(now, target).open_qty)


def _ib_error(trade: Trade | None) -> str:
    """IB's refusal text from the trade's log (``201 Order rejected - ...``), else empty."""
    if trade is None:
        return ""
    for entry in reversed(trade.log):
        if entry.errorCode:
            return f"{entry.errorCode} {(entry.message or '').split(': ', 1)[-1]}"
    return ""


def _qty(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")
