"""One job's lifecycle: load the alert → wait for IB → look → decide → write it down → act → record.

Runs on the consumer (main) thread. IB work is handed to the IB thread through
:meth:`IBConnection.call`; database writes go to the :class:`Recorder` thread. Per-job state lives in
an :class:`AlertJob`, not on the long-lived executor. A refusal is raised as
:class:`~worker.errors.Refused` anywhere below and caught here once. The rooms it calls, in order:

1. the look (worker/execution/gather.py): what IB and the database say, gathered first;
2. the decision core (worker/decision/core.py), pure: the position move, the sizing, the legs, the
   risk rules' verdicts, what the margin check needs; a cached per-unit figure or the what-if
   round trip (worker/execution/what_if.py) and its pure judgement settle the margin;
3. **the decision is written down first**, awaited, BEFORE any order goes out (its absolute
   target, worker/decision/stored.py: a rerun cannot read a relative ``sell 20`` twice); nothing to
   do (already there, an exit while flat) or a dry run ends ``cancelled`` with the reason;
4. the execution protocol (worker/execution/protocol.py) works the stored decision at IB: close →
   confirm → open, restore, reprice. A rerun (SIGKILL, retry) never decides again: it resumes.

Exactly once (invariant 2) rests on three checks, in this order:

1. the alert's state: terminal, or ``submitted`` without a position decision (an old plan), and
   the job only re-reads; with a decision, a rerun resumes (every step is idempotent);
2. IB's own view of the legs' ``orderRef`` (open orders, completed orders, executions, all fetched
   on connect and kept current from events), checked on the IB loop in the same step that sends
   (worker/ib/placement.py);
3. the queue merely delivers at least once: a job whose worker died is run again and the checks
   above make the rerun harmless.

What reached IB is always read from IB's reports, and recorded by the single recorder thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import DEFAULT_FUTURES_ROLL_DAYS
from core.dbapi import compile_query
from core.models import STATUS_RANK, Alert, AlertStatus, Control, staleness_start
from core.payload import AlertPayload, PayloadError
from core.services import PAUSED_KEY
from worker.contracts.effects import chart_position, decided_spec
from worker.contracts.symbol_map import SymbolResolver
from worker.contracts.tickers import ContractSpec
from worker.decision.core import (
    DecisionConfig,
    Proposal,
    RiskRefused,
    propose,
    rehearsal,
    rehearsal_reason,
    with_margin,
)
from worker.decision.drift import report_drift
from worker.decision.express import off_express
from worker.decision.intent import alert_kind
from worker.decision.look import Look
from worker.decision.order_types import OrderRules
from worker.decision.positions import is_exit
from worker.decision.stored import StoredDecision
from worker.errors import Refused, TemporaryError
from worker.execution.alert_job import AlertJob
from worker.execution.cancel_entries import EntryCanceller
from worker.execution.exit_update import ExitUpdater
from worker.execution.gather import Gatherer
from worker.execution.guard import Guard
from worker.execution.job_writes import WRITE_TIMEOUT_SECONDS, JobWrites
from worker.execution.option_orders import OptionOrders, OptionRules, is_option_alert
from worker.execution.option_reversal import OptionReversal
from worker.execution.protocol import ExecutionProtocol, Outcome, Run, crash_point
from worker.execution.readiness import JobLimits, Readiness, Requeue, RetryLater, Stale
from worker.execution.what_if import MarginAsker
from worker.ib import IBConnection, Placement, Trading
from worker.metrics import WorkerMetrics
from worker.recording.recorder import Recorder
from worker.risk.gate import RiskGate

log = logging.getLogger(__name__)

_ALERTS, _CONTROL = Alert.__table__, Control.__table__
# The job's first read, in one round trip: the alert, the pause switch, and where its staleness
# counts from (its approval when it waited for one, else its arrival). Run through the DB-API
# (core/dbapi.py): SQLAlchemy's execution machinery was a third of it, 0.2 ms of an alert's path on
# a machine whose idle caches make every line of it count (bench/README.md, bench/cold_code.py)
_LOAD_ALERT = (
    select(_ALERTS.c.status, _ALERTS.c.payload, staleness_start(), _CONTROL.c.value, _ALERTS.c.plan)
    .outerjoin(_CONTROL, _CONTROL.c.key == PAUSED_KEY)
    .where(_ALERTS.c.id == bindparam("alert_id"))
)  # fmt: skip


class Executor:
    """Executes alerts; one instance per worker process (its state is its dependencies)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        recorder: Recorder,
        conn: IBConnection,
        trading: Trading,
        limits: JobLimits,
        stopping: threading.Event,
        *,
        max_order_quantity: Decimal | None = None,
        metrics: WorkerMetrics | None = None,
        symbols: SymbolResolver | None = None,
        order_rules: OrderRules | None = None,
        margin: MarginAsker | None = None,
        guard: Guard | None = None,
        risk: RiskGate | None = None,
        option_rules: OptionRules | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        self.load_alert = compile_query(_LOAD_ALERT, self.engine.dialect)
        self.recorder = recorder
        self.writes = JobWrites(recorder)  # the job's writes, each awaited (worker/execution/job_writes.py)
        self.conn = conn
        self.trading = trading
        self.limits = limits
        self.readiness = Readiness(conn, trading, self.writes, limits, stopping)
        self.metrics = metrics
        # TradingView ticker → IB contract: the symbol map (SYMBOL_MAP_FILE) and the futures roll
        # rule (FUTURES_ROLL_DAYS); worker/contracts/symbol_map.py
        self.symbols = symbols or SymbolResolver(None, DEFAULT_FUTURES_ROLL_DAYS)
        self.margin = margin  # IB's what-if before an opening (worker/execution/what_if.py); None: unchecked
        self.risk = risk  # the risk file's limits (worker/risk/gate.py); None (unit tests): no limits
        self.config = DecisionConfig(order_rules or OrderRules(), max_order_quantity,
                                     None if margin is None else margin.enabled)  # fmt: skip
        registry = guard.registry if guard is not None else None
        self.gather = Gatherer(conn, trading, protection=registry, risk=risk, timeout=limits.ib_call,
                               prefetch=None if margin is None else margin.prefetch)  # fmt: skip
        # close → confirm → open; the guard (worker/execution/guard.py) keeps the exits after it
        self.protocol = ExecutionProtocol(trading, guard, reversal_fill_timeout=limits.reversal_fill)
        # an option alert becomes an alert on one option contract first (option_orders.py, option_reversal.py)
        self.options = OptionOrders(trading, option_rules or OptionRules())
        self.reversals = OptionReversal(sessions, conn, trading, self.execute_alert, limits.reversal_fill)
        self.updates = ExitUpdater(conn, trading, guard, self.writes, limits.ib_call)
        self.cancels = EntryCanceller(conn, trading, self.writes, limits.ib_call)

    # ------------------------------------------------------------------ the job

    def execute_alert(self, alert_id: str) -> str:
        """Run one alert to the point where IB has its orders (or it is refused); returns its state."""
        started, picked_up_at = time.perf_counter(), time.time()
        row = self.load_alert.one(self.engine, {"alert_id": alert_id})
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
        job = AlertJob(
            alert_id, payload, received_at, paused, {"start": started}, picked_up_at, status=status
        )
        if status.is_terminal:  # only re-read: its plan is not even parsed
            log.info("alert %s is already %s; nothing to do", alert_id, status.value)
            return status.value
        try:  # the stored decision (a hand-edited, unreadable plan fails the alert, nothing is sent)
            job.decision = StoredDecision.from_json(plan) if plan else None
            job.resumed = job.decided is not None
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            log.exception("alert %s: the stored plan is unreadable", alert_id)
            self.writes.failed(alert_id, exc)
            return AlertStatus.FAILED.value
        job.mark("loaded")
        submitted = STATUS_RANK[status] >= STATUS_RANK[AlertStatus.SUBMITTED]
        if submitted and job.decided is None:
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
        except Refused as exc:  # a test alert's refusal says it was a test ("test: would be refused: ...")
            return self.reject(alert_id, rehearsal_reason(payload, str(exc)), plan=getattr(exc, "plan", None))
        except Stale as exc:
            return self.reject_stale(alert_id, exc.age, payload)
        except Exception as exc:
            if job.sent:
                # never call an alert failed once its orders are at IB: retry and adopt them
                log.exception("alert %s: orders sent but not recorded; retrying later", alert_id)
                raise RetryLater(alert_id) from exc
            log.exception("alert %s failed", alert_id)
            self.writes.failed(alert_id, exc)
            return AlertStatus.FAILED.value

    def _run(self, job: AlertJob) -> str:
        kind = alert_kind(job.payload)
        spec = self.symbols.resolve(job.payload.ticker, job.payload.exchange)
        opening = job.payload.action in ("buy", "sell", "add") and not is_exit(job.payload)
        if opening and job.paused and job.decided is None:
            raise Refused("trading paused")
        while True:  # wait for IB, up to the stale limit; then try; retry if IB drops meanwhile
            self.readiness.wait_for_ib(job)
            try:
                if job.resumed:  # its legs may be another client's (a dead worker's): see them all
                    self.conn.call(self.trading.see_other_clients(), timeout=self.limits.ib_call)
                self.readiness.check_stale_decision(job)
                if kind == "cancel":
                    return self.cancels.run(job, spec, self._rehearsal(job))
                if kind == "update":  # moves the position's exits (worker/execution/exit_update.py)
                    return self.updates.run(job, spec, self._rehearsal(job))
                target = self._option_contract(job, spec) if is_option_alert(job.payload, spec) else spec
                if isinstance(target, str):
                    return target
                return self._position(job, target)
            except (TemporaryError, ConnectionError, TimeoutError) as exc:
                log.warning("alert %s: IB unavailable (%s); waiting", job.alert_id, exc)
                time.sleep(0.2)

    def _option_contract(self, job: AlertJob, spec: ContractSpec) -> ContractSpec | str:
        """The option an option alert acts on (worker/execution/option_orders.py); ``cancelled``
        with the reason when nothing is to be sent (an exit with no option held)."""
        label = self._rehearsal(job)
        target = self.options.for_job(job, spec, self.conn, self.limits.ib_call, self.reversals.close, label)
        if isinstance(target, ContractSpec):
            return target
        self.writes.without_order(job.alert_id, StoredDecision("exit", notes=(target,)),
                                  f"{label}: {target}" if label else target)  # fmt: skip
        return AlertStatus.CANCELLED.value

    # ------------------------------------------------------------------ cancel

    # ------------------------------------------------------------------ the position

    def _position(self, job: AlertJob, spec: ContractSpec) -> str:
        """Decide against IB's position and write the decision down (first run), then have the
        protocol move the position toward the recorded target (every run)."""
        timeout = self.limits.ib_call + self.limits.reversal_fill + 15 + WRITE_TIMEOUT_SECONDS
        outcome = None
        if job.decided is None:  # the common case runs whole on the IB loop; the rest comes back
            outcome = self.conn.call(self._express(job, spec), timeout=timeout)
            if isinstance(outcome, Look):
                done = self._decide(job, spec, self.gather.with_counters(outcome))
                if done is not None:
                    return done
                outcome = None
        if outcome is None:
            outcome = self.conn.call(self._act(job, spec), timeout=timeout)
        job.mark("placed")
        for placement in outcome.placements:
            if placement.recorded is not None:
                placement.recorded.result(30)
        if outcome.ended is not None:
            status, reason = outcome.ended
            self.writes.ended(job.alert_id, status, reason, outcome.decision)
            crash_point("after_recorded")
            return status.value
        crash_point("after_recorded")
        log.info(
            "alert %s: %s", job.alert_id, job.timing_line(sum(len(p.placed) for p in outcome.placements))
        )
        return AlertStatus.SUBMITTED.value

    async def _express(self, job: AlertJob, spec: ContractSpec) -> Outcome | Look:
        """On the IB loop: look, decide, have the decision written and act, when nothing in the
        decision needs the loop to wait (worker/decision/express.py); else the look, for the job
        thread's path (:meth:`_decide`), which nothing here has acted on yet."""
        look = await asyncio.wait_for(
            self.gather.look_on_loop(job.alert_id, job.payload, spec), self.limits.ib_call
        )
        job.mark("on_loop")
        counted = self.gather.counted_on_loop(look)
        seen = counted or look  # what the job thread's path goes on from
        try:
            proposal = propose(seen, job.payload, self.config)
        except Exception:  # noqa: BLE001 - the job thread's path decides again and words it
            return seen
        margin, asker = None, self.margin if proposal.margin_ask is not None else None
        if asker is not None and proposal.margin_ask is not None:
            margin = asker.at_hand(look, proposal.margin_ask)
        if off_express(proposal, option=job.option_plan is not None, counters_at_hand=counted is not None,
                       margin_at_hand=None if asker is None else margin is not None) is not None:  # fmt: skip
            return seen
        self._before_deciding(job, look)
        if asker is not None and margin is not None:
            asker.reserve(look, margin)
            proposal = with_margin(proposal, margin)
        self._write_decision(job, proposal)
        return await self._act(job, spec)

    def _write_decision(self, job: AlertJob, proposal: Proposal) -> None:
        """The decision's write, handed to the recorder: :meth:`_act` awaits it on the IB loop
        before the first order (the loop is the next to act anyway)."""
        stored = proposal.stored()
        job.mark("decided")
        assert stored.position is not None
        job.decision_write = self.writes.decided(job.alert_id, stored, stored.position.reason)
        job.decision = stored

    def _decide(self, job: AlertJob, spec: ContractSpec, look: Look) -> str | None:
        """Decide (pure) on the job thread, from the look the express path took, and write the
        decision down BEFORE any order goes out (awaited). Returns the final state when nothing
        is to be sent."""
        self._before_deciding(job, look)
        proposal = propose(look, job.payload, self.config)
        if proposal.missing:  # a risk rule needs counters the look lacks or another quote
            proposal = propose(
                self.gather.more(look, job.payload, proposal.missing), job.payload, self.config
            )
        if job.option_plan is not None:  # the option chosen and why, in the plan
            proposal = replace(proposal, option=job.option_plan)
        if proposal.nothing_to_do:
            return self._nothing_to_do(job, proposal)
        self._halt_if_due(proposal)
        if proposal.risk_refusal:  # an alert that only opens: refused whole
            raise RiskRefused(proposal.risk_refusal, plan=proposal.refused_record())
        if proposal.margin_ask is not None and self.margin is not None:
            proposal = with_margin(proposal, self.margin.ask(look, proposal.margin_ask))
        if proposal.dry_run:  # test (the alert) / dry_run (risk file): recorded, nothing is sent
            job.mark("decided")
            self.writes.without_order(job.alert_id, proposal.stored(), proposal.dry_run_message())
            return AlertStatus.CANCELLED.value
        self._write_decision(job, proposal)
        return None

    def _before_deciding(self, job: AlertJob, look: Look) -> None:
        """What is said whatever the decision (written by the recorder, not awaited): the strategy's
        previous position against IB's (an alarm, never a refusal: worker/decision/drift.py), and a
        strategy the risk file does not know (a warning, never a refusal)."""
        payload = job.payload
        report_drift(self.recorder, job.alert_id, payload, chart_position(look.position, look.spec),
                     account=look.account or None, symbol=look.symbol)  # fmt: skip
        if self.risk is not None:
            self.risk.warn_unknown_strategy(
                job.alert_id, payload.strategy, look.account or payload.account or None
            )

    def _halt_if_due(self, proposal: Proposal) -> None:
        """Today's loss reached the account's limit: halt entries, alarm, flatten if asked
        (worker/risk/gate.py), before the alert is refused."""
        risk, inputs = proposal.risk, proposal.look.risk
        if risk is not None and risk.halt_due is not None and inputs is not None and self.risk is not None:
            self.risk.halt(inputs.account, inputs.rules, risk.halt_due, inputs.now)

    def _nothing_to_do(self, job: AlertJob, proposal: Proposal) -> str:
        """Already at the target, or an exit with nothing held: no order; ``cancelled`` with the
        reason (not a failure: no rejection notice). An exit still cancels what works on the
        contract (a resting entry would otherwise open what the strategy just left)."""
        stored = proposal.stored()
        label = self._rehearsal(job) if is_exit(job.payload) else None
        if label:  # test (the alert) / dry_run (risk file): cancels nothing either
            message = (
                f"{label}: no open position in {job.payload.ticker}; would cancel tv2ib's working orders"
            )
        elif is_exit(job.payload):
            cancelled = self.conn.call(
                self.trading.cancel_working(proposal.look.inst.con_id), timeout=self.limits.ib_call
            )
            stored = replace(stored, cancelled=tuple(c.order_ref for c in cancelled))
            message = (
                f"exit: no open position in {job.payload.ticker}; cancelled {len(cancelled)} working order(s)"
            )
        else:
            message = f"test: {proposal.decision.reason}" if job.payload.test else proposal.decision.reason
        self.writes.without_order(job.alert_id, stored, message)
        return AlertStatus.CANCELLED.value

    async def _act(self, job: AlertJob, spec: ContractSpec) -> Outcome:
        """On the IB loop: the protocol on the month decided on (a roll since, or a held old month)."""
        assert job.decision is not None
        if job.decision_write is not None:  # the decision is durable before any order goes out
            # shielded: this coroutine cancelled (a timeout, the worker stopping) must not cancel
            # the recorder's write, which a retry of the job awaits again
            written = asyncio.shield(asyncio.wrap_future(job.decision_write))
            await asyncio.wait_for(written, WRITE_TIMEOUT_SECONDS)
            job.decision_write = None
            job.mark("written")
            crash_point("after_decision_recorded")
        inst = await self.trading.instrument(decided_spec(spec, job.decision.con_id))
        submitted = STATUS_RANK[job.status] >= STATUS_RANK[AlertStatus.SUBMITTED]
        run = Run(job.alert_id, job.decision, bool(job.payload.stop_loss or job.payload.take_profit), submitted,
                  job.leg_sent, job.record_placement(self.recorder, job.decision), lambda p: self._on_wire(job, p))  # fmt: skip
        return await self.protocol.run(run, inst.con_id)

    def _on_wire(self, job: AlertJob, placement: Placement) -> None:
        """Alert -> wire latency, for legs sent now (not adopted after a restart); memory only."""
        job.mark("on_wire")
        if self.metrics is not None and placement.placed:
            self.metrics.observe_alert_to_wire(time.time() - job.received_at.timestamp())

    def _rehearsal(self, job: AlertJob) -> str | None:
        """``"test"`` (the alert's) / ``"dry run"`` (the risk file's for its strategy / account): send nothing."""
        account = self.trading.account or job.payload.account
        risk = self.risk
        return rehearsal(
            job.payload, risk is not None and risk.rules_for(job.payload.strategy, account or None).dry_run
        )

    # ------------------------------------------------------------------ outcomes

    def reject(self, alert_id: str, reason: str, plan: StoredDecision | None = None) -> str:
        """End the alert ``rejected`` with ``reason`` (shown to the trader and in the notice);
        ``plan``: what was decided before the refusal (the risk gate's or the margin check's
        numbers), stored with it."""
        self.writes.ended(alert_id, AlertStatus.REJECTED, reason, plan)
        return AlertStatus.REJECTED.value

    def reject_stale(self, alert_id: str, age: float, payload: AlertPayload | None = None) -> str:
        """Refuse an alert that waited too long (IB down, or the worker was away)."""
        reason = f"stale: {age:.0f}s old (limit {self.limits.stale_after:.0f}s), IB was not available in time"
        return self.reject(alert_id, reason if payload is None else rehearsal_reason(payload, reason))
