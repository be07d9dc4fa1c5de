"""The risk gate: the trader's limits (the risk file) checked against the opening part of every
decision before IB sees it, the daily-loss halt, and the rules reloaded on SIGHUP.

Where it sits (worker/decision/core.py, run by worker/execution/executor.py): look → size → decide →
plan the legs → **risk rules** → margin what-if → **dry run stops here** → store the decision → act.
The rules are checked purely (worker/risk/verdict.py, worker/risk/checks.py) on inputs the look
gathered (worker/execution/gather.py); this gate holds the rules in force, reads the database's
counters, and halts the account when today's loss reaches its limit.

* Only the OPENING part is checked (an entry, an add, a reversal's second half). A decision with
  only a closing part (an exit, a reduce, a close) is never refused by a limit, nor is a flatten.
  A refused opening part of a reversal still lets its close go out: the executor stores a
  close-only decision and ends the alert ``rejected`` once the close filled ("...; the close went
  through: the position is flat, not reversed"), as when IB refuses a reversal's open.
* The numbers come from IB's views that ib_async keeps current (portfolio, working orders, account
  values: no round trip), one quote request when a rule needs a price the alert and the look did
  not give, and the counters the database holds (today's fills, the last minute's orders, the
  halt row), read from memory (worker/risk/tally.py: built at start, kept current from the
  recorder's commits; no query on an alert's path). They are
  stored in the plan: ``plan["risk"] = {"rules": ..., "checks": [{rule, limit, value, passed,
  source}], ...}`` so ``GET /api/alerts/<id>`` shows what was compared.
* The protections (worker/risk/protections.py: a cooldown after a stop-out, the stop-loss guard,
  the drawdown pause, the daily profit target) lock a strategy's entries from its fills, which the
  counters hold; the verdict computes the locks at the alert's instant, and :meth:`watch_locks`
  says when one begins and ends (worker/risk/lock_watch.py).
* ``dry_run``: the alert is planned and recorded and nothing is sent, closing part included (a
  strategy in dry run has no live position of its own to close); it ends ``cancelled`` with
  "dry run: would send BUY 52 AAPL MKT + TP 195.00 + SL 188.00".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import events
from core.events import Event
from core.risk_file import RiskFile, RiskFileError, RiskRules, load_risk_file
from core.risk_protections import PROTECTION_KEYS
from worker.ib.connection import IBConnection
from worker.ib.trading import Trading
from worker.recording.recorder import Recorder, UnitOfWork
from worker.recording.snapshots import AccountFigures
from worker.risk import state
from worker.risk.calendar import session_at
from worker.risk.checks import (
    DailyPnl,
    money,
    signed,
)
from worker.risk.lock_watch import LockWatch, current_locks
from worker.risk.tally import KEEP_DAYS, KEEP_ORDERS, RiskTally

log = logging.getLogger(__name__)

DAILY_LOSS_CHECK_SECONDS = 5.0  # the watcher's period: the alarm and the flatten need no alert


class RiskGate:
    """One per worker: the loaded risk file (swapped whole on reload) and the checks."""

    def __init__(
        self,
        risk_file: RiskFile,
        sessions: sessionmaker[Session],
        conn: IBConnection,
        trading: Trading,
        *,
        recorder: Recorder | None = None,
        clock: Callable[[], datetime] = state.utc_now,
        ib_call_timeout: float = 30.0,
    ) -> None:
        self.risk_file = risk_file
        self.sessions = sessions
        self.conn = conn
        self.trading = trading
        self.recorder = recorder
        self.clock = clock
        self.ib_call_timeout = ib_call_timeout
        self._halting = threading.Lock()  # guards the halt row's read-then-write
        # the counters in memory (worker/risk/tally.py); the worker has the recorder feed them
        self.tally = RiskTally()
        self.flatten: Callable[[str], str] | None = None  # set by worker/runtime.py
        # the protections' notices (worker/risk/lock_watch.py); the locks are recomputed from the fills
        self.locks = LockWatch(self._write_waited if recorder is not None else None)
        self._currency = ""  # the account's base currency, once IB said it (the locks' words)

    # ------------------------------------------------------------------ rules and reload

    def rules_for(self, strategy: str | None, account: str | None) -> RiskRules:
        return self.risk_file.rules_for(strategy, account)

    def reload(self) -> tuple[bool, str]:
        """Re-read the risk file from its path. A bad file keeps the rules in force; returns
        (loaded, what to log)."""
        path = self.risk_file.path
        if path is None:
            return (
                False,
                "no risk file in use (RISK_FILE unset and no config/risk.yaml at start): nothing to reload",
            )
        try:
            new = load_risk_file(path)
        except RiskFileError as exc:
            return False, f"risk file NOT reloaded, the rules in force are kept: {exc}"
        changes = diff(self.risk_file, new)
        self.risk_file = new
        return True, f"risk file {path} reloaded: " + ("; ".join(changes) if changes else "no change")

    def warn_unknown_strategy(self, alert_id: str, strategy: str | None, account: str | None) -> str | None:
        """An alert naming a strategy the file does not know (case aside) is checked against the
        defaults and its account's section only: say so in the log, on the alert and in a notice
        (``unknown_strategy``, once per alert). Never blocks: the recorder writes it."""
        rules = self.rules_for(strategy, account)
        if rules.unknown_strategy is None:
            return None
        warning = rules.notes[0]
        log.warning("alert %s: %s", alert_id, warning)
        risk = self.risk_file
        event = events.unknown_strategy(alert_id, strategy=rules.unknown_strategy, account=account,
                                        risk_file=risk.path or "", known=sorted(risk.strategies, key=str.casefold))  # fmt: skip
        recorder = self.recorder
        if recorder is not None:

            def write(uow: UnitOfWork) -> None:
                recorder.note(uow, alert_id, f"risk file: {warning}")
                uow.emit(event)

            recorder.run(write)
        return warning

    # ------------------------------------------------------------------ the counters

    def load_counters(self) -> None:
        """Build the counters in memory from the database (at the worker's start, before IB
        connects; else at their first reading)."""
        now = self.clock()
        with self.sessions() as session:
            rows, halts = state.tally_rows(session, state.trading_day(now) - timedelta(days=KEEP_DAYS),
                                           now - KEEP_ORDERS)  # fmt: skip
            self.locks.load(session)
        self.tally.load(rows, halts)

    def preload_counters(self) -> None:
        """:meth:`load_counters` at the worker's start; a failure is logged and the load retried at
        the first reading (where a failure fails that alert, as the query did)."""
        try:
            self.load_counters()
        except Exception:  # noqa: BLE001 - trading starts anyway; the first reading loads them
            log.exception("risk counters not loaded at start: they are loaded at their first reading")

    def counters(self, account: str, now: datetime) -> state.RiskCounters:
        """What the rules read for one alert: the database's counters (worker/risk/state.py), from
        memory. A worker that does not know its account (IB named none) asks the database, whose
        rows other workers' accounts write too."""
        if not account:
            with self.sessions() as session:
                return state.counters(session, account, now)
        if not self.tally.loaded:
            self.load_counters()
        return self.tally.counters(account, now)

    def counters_in_memory(self, account: str, now: datetime) -> state.RiskCounters | None:
        """:meth:`counters` when memory has them (the IB loop never queries): None for a worker
        that does not know its account, or before the counters are built."""
        if not account or not self.tally.loaded:
            return None
        return self.tally.counters(account, now)

    # ------------------------------------------------------------------ the daily loss

    def watch_once(self) -> str | None:
        """The periodic check (no alert needed): the protections' locks said (:meth:`watch_locks`),
        today's loss against the account's own limit (defaults < account; a strategy's limit only
        refuses that strategy's entries). Returns what the daily-loss check did, for the log and the
        tests."""
        try:
            self.watch_locks()
        except Exception:  # noqa: BLE001 - said at the next period; the daily loss is checked anyway
            log.exception("the protections' locks were not checked")
        if not self.conn.ready:
            return None
        account = self.trading.account or ""
        rules = self.rules_for(None, account or None)
        if rules.daily_loss_limit is None:
            return None
        now = self.clock()
        counted = self.counters(account, now)
        realized = counted.realized
        if counted.halt is not None:
            return None

        async def figures() -> AccountFigures:
            return self.trading.account_figures()

        unrealized = self.conn.call(figures(), timeout=self.ib_call_timeout).unrealized_pnl
        daily = DailyPnl(realized, unrealized, False, state.describe_end(state.trading_day(now)))
        if -daily.total < rules.daily_loss_limit:
            return None
        return self.halt(account, rules, daily, now)

    # ------------------------------------------------------------------ the protections

    def watch_locks(self) -> list[events.ProtectionEvent]:
        """Say the locks that began or ended since the last pass (worker/risk/lock_watch.py), for
        this worker's account; returns the events."""
        account = self.trading.account or ""
        if not self.tally.loaded or self.locks.announced is None:
            self.load_counters()
        if not (self._protects() or self.locks.said(account)):
            return []
        now = self.clock()
        current = current_locks(lambda strategy: self.rules_for(strategy, account or None),
                                self.tally.closed(account), now, self._base_currency())  # fmt: skip
        return self.locks.watch(account, current, now)

    def _protects(self) -> bool:
        sections = [self.risk_file.defaults, *self.risk_file.strategies.values()]
        return any(section.get(key) for section in sections for key in PROTECTION_KEYS)

    def _base_currency(self) -> str:
        if not self._currency and self.conn.ready:

            async def figures() -> AccountFigures:
                return self.trading.account_figures()

            try:
                self._currency = self.conn.call(figures(), timeout=5).currency or ""
            except Exception:  # noqa: BLE001 - the words say USD until IB says otherwise
                log.debug("base currency not read", exc_info=True)
        return self._currency or "USD"

    def _write_waited(self, write: Callable[[UnitOfWork], None]) -> None:
        assert self.recorder is not None
        self.recorder.run(write).result(30)

    def halt(self, account: str, rules: RiskRules, daily: DailyPnl, now: datetime) -> str:
        """Halt entries for the rest of the trading day (persisted), alarm, flatten if asked."""
        limit = rules.daily_loss_limit
        assert limit is not None
        day = state.trading_day(now)
        reason = (f"today's PnL {signed(daily.total)} (realized {signed(daily.realized)} + unrealized "
                  f"{'?' if daily.unrealized is None else signed(daily.unrealized)}) reached the daily "
                  f"loss limit {money(limit)} ({rules.source_of('daily_loss_limit')})")  # fmt: skip
        halt = state.Halt(day, reason, now.astimezone(UTC).isoformat())
        # the job and the watcher may both find the loss: one halt, one alarm, one flatten
        with self._halting:
            with self.sessions.begin() as session:
                fresh = state.write_halt(session, account, halt)
                stored = state.read_halt(session, account, now)
            self.tally.set_halt(account, stored)
        # the lock is not held while flattening: the flatten waits for the job in hand, which may be
        # waiting here
        if not fresh:
            return "already halted"
        flatten = rules.flatten_on_daily_loss
        action = "entries halted; positions left open (flatten_on_daily_loss is off)"
        if flatten and self.flatten is not None:
            try:
                action = f"entries halted; flatten_on_daily_loss: {self.flatten('risk: daily loss limit')}"
            except Exception as exc:  # noqa: BLE001 - the alarm must go out even if the flatten fails
                log.exception("flatten on daily loss failed")
                action = f"entries halted; flatten_on_daily_loss FAILED: {exc}: close the positions by hand"
        log.error("DAILY LOSS LIMIT account %s: %s; %s until %s", account or "(default)", reason, action,
                  state.describe_end(day))  # fmt: skip
        event = events.daily_loss(
            account=account, day=day.isoformat(), pnl=str(daily.total), realized=str(daily.realized),
            unrealized=None if daily.unrealized is None else str(daily.unrealized), limit=str(limit),
            source=rules.source_of("daily_loss_limit"), action=action, until=state.describe_end(day),
        )  # fmt: skip
        self._emit(event)
        return action

    def _emit(self, event: Event) -> None:
        recorder = self.recorder
        if recorder is None:
            return

        def write(uow: UnitOfWork) -> None:
            uow.emit(event)

        recorder.run(write).result(30)

    def warm(self) -> None:
        """Build the exchange calendars now when some rule uses ``trading_hours`` or
        ``flatten_before_close`` (importing pandas and building a calendar takes about a second:
        not on the first alert's path)."""
        sections = [
            self.risk_file.defaults,
            *self.risk_file.strategies.values(),
            *self.risk_file.accounts.values(),
        ]
        if any(section.get("trading_hours", "always") != "always" or section.get("flatten_before_close")
               for section in sections):  # fmt: skip
            session_at("STK", "SMART", self.clock(), primary_exchange="NYSE", currency="USD")
            session_at("FUT", "CME", self.clock())


def diff(old: RiskFile, new: RiskFile) -> list[str]:
    """What changed between two risk files, per section and key (for the reload log line)."""
    changes: list[str] = []

    def section(name: str, a: Any, b: Any) -> None:
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes.append(f"{name}.{key}: {_show(a.get(key))} -> {_show(b.get(key))}")

    section("defaults", old.defaults, new.defaults)
    for kind, a_all, b_all in (
        ("strategies", old.strategies, new.strategies),
        ("accounts", old.accounts, new.accounts),
    ):
        for name in sorted(set(a_all) | set(b_all)):
            section(f"{kind}.{name}", a_all.get(name, {}), b_all.get(name, {}))
    for name in sorted(set(old.fanout) | set(new.fanout)):
        if old.fanout.get(name) != new.fanout.get(name):
            changes.append(
                f"strategies.{name}.accounts: {_show(old.fanout.get(name))} -> {_show(new.fanout.get(name))}"
            )
    return changes


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if hasattr(value, "to_json"):
        return str(value.to_json())
    return str(value)


def describe_rules(risk_file: RiskFile) -> str:
    """The rules in force, one line (logged at start)."""
    if risk_file.path is None:
        return "no risk file (RISK_FILE unset, no config/risk.yaml): no limits"
    parts = [f"defaults {_section(risk_file.defaults)}"]
    parts += [f"strategy {n} {_section(v)}" for n, v in sorted(risk_file.strategies.items())]
    parts += [f"account {n} {_section(v)}" for n, v in sorted(risk_file.accounts.items())]
    return f"risk file {risk_file.path}: " + "; ".join(parts)


def _section(values: Any) -> str:
    return "{" + ", ".join(f"{k}={_show(v)}" for k, v in values.items()) + "}" if values else "{}"
