"""The session-end flatten: a strategy's positions closed ``flatten_before_close`` minutes before
their exchange's close (risk file; the close from the exchange calendar, holidays and early closes
counted: worker/risk/session_end.py).

Run by the housekeeping thread (worker/housekeeping.py) every few seconds, with the trading room's
clock (which tests set). Whose position: the one its protection record names (the alert whose plan
set the position's exits, or asked for none: worker/recording/protection.py, persisted, so a
restart knows it). That alert's strategy and account give the rules. A position no tv2ib alert made
(a manual trade) has no record and is never flattened; neither is one on the other side than its
record's (flipped by hand).

Closing one position, on the IB loop, the guard kept off the contract and no job running (the
worker's job lock): tv2ib's working orders on the contract are cancelled (IB confirms each), the
position goes out at market (leg ``flatten``, ``tv2ib:<alert>:flatten``, DAY), and the fill is
awaited. A close IB refuses or that does not fill in time is cancelled, the exits are put back
(the guard restores the record) and the notice says it was NOT closed; it is not tried again that
session by this run. Each position is closed once: a position already flat is skipped, and so is
one whose flatten order still works at IB (a restart at the minute adopts nothing and sends nothing).

The notice (``session_flatten``) lists what was closed; each alert's history says it too. Entries
of the strategy are refused from the flatten minute to the close (worker/risk/checks.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from core import events
from core.models import IB_ENDED_UNFILLED_STATUSES, Alert
from worker.decision.positions import describe, side_closing
from worker.execution.guard import Guard
from worker.ib.contracts import ContractNotFound
from worker.ib.trading import Trading
from worker.notify import Notifier
from worker.recording.protection import ProtectionRegistry, ProtectionSpec
from worker.recording.recorder import Recorder, UnitOfWork
from worker.recording.snapshots import Venue
from worker.risk.closing import Closing
from worker.risk.gate import RiskGate
from worker.risk.session_end import closing_at, describe_when

log = logging.getLogger(__name__)

FILL_WAIT_SECONDS = 30.0  # a market close in the session fills at once; past this it is cancelled
KEY = "flatten_before_close"


@dataclass(frozen=True)
class Due:
    """A position whose flatten minute has come."""

    spec: ProtectionSpec
    strategy: str | None
    minutes: int
    source: str
    closing: Closing
    venue: Venue


class SessionFlatten:
    """Remembers the strategies of the alerts it looked up and what it gave up on this session;
    :meth:`check` is one look (called on the housekeeping thread)."""

    def __init__(self, trading: Trading, guard: Guard, registry: ProtectionRegistry, risk: RiskGate,
                 recorder: Recorder, sessions: sessionmaker[Session], notifier: Notifier,
                 lock: threading.Lock, ib_call_timeout: float = 30.0) -> None:  # fmt: skip
        self.trading, self.guard, self.registry, self.risk = trading, guard, registry, risk
        self.recorder, self.sessions, self.notifier = recorder, sessions, notifier
        self.lock = lock  # the worker's job lock: never beside an alert's job
        self.ib_call_timeout = ib_call_timeout
        self._strategies: dict[str, str | None] = {}  # alert id -> its strategy
        self._venues: dict[int, Venue] = {}  # conId -> where it trades
        self._given_up: set[tuple[int, str]] = set()  # (conId, the close) not closed this session
        self._alarmed: set[tuple[int, str]] = set()  # (conId, day): no calendar, said once a day

    def check(self) -> str | None:
        """Close what is due; returns the notice's gist (for the log and the tests)."""
        trading = self.trading
        if not trading.ready or not self.guard.active() or not self._any_rule():
            return None
        account = trading.account or ""
        specs = [s for s in self.registry.all() if s.account == account]
        due = self._due(account, specs) if specs else []
        if not due:
            return None
        with self.lock:  # the job in hand finishes first; no alert trades the contract meanwhile
            closed = [c for c in (self._close(d) for d in due) if c is not None]
        if not closed:
            return None
        self._report(account, closed)
        gist = "; ".join(f"{c['action']} {c['quantity']} {c['symbol']}: {c['result']}" for c in closed)
        log.warning("session-end flatten: %s", gist)
        return gist

    def _any_rule(self) -> bool:
        risk = self.risk.risk_file
        sections = [risk.defaults, *risk.strategies.values(), *risk.accounts.values()]
        return any(section.get(KEY) for section in sections)

    def _due(self, account: str, specs: list[ProtectionSpec]) -> list[Due]:
        due = []
        now = self.trading.clock()
        for spec in specs:
            strategy = self._strategy_of(spec.alert_id)
            rules = self.risk.rules_for(strategy, account or None)
            minutes = rules.flatten_before_close
            if not minutes:
                continue
            venue = self._venue(spec.con_id)
            if venue is None:  # flat meanwhile: nothing to close
                continue
            closing = closing_at(venue.sec_type, venue.exchange, now, primary_exchange=venue.primary_exchange,
                                 currency=venue.currency)  # fmt: skip
            if closing.state == "unknown":
                self._no_calendar(account, spec, venue, closing, strategy)
            elif closing.due(minutes) and (spec.con_id, str(closing.closes)) not in self._given_up:
                due.append(Due(spec, strategy, minutes, rules.source_of(KEY), closing, venue))
        return due

    def _venue(self, con_id: int) -> Venue | None:
        if con_id not in self._venues:
            try:
                self._venues[con_id] = self.trading.conn.call(
                    self.trading.venue(con_id), timeout=self.ib_call_timeout
                )
            except ContractNotFound:
                return None
        return self._venues[con_id]

    def _strategy_of(self, alert_id: str) -> str | None:
        if alert_id not in self._strategies:
            with self.sessions() as session:
                alert = session.get(Alert, alert_id)
                self._strategies[alert_id] = alert.strategy if alert is not None else None
        return self._strategies[alert_id]

    def _close(self, due: Due) -> events.SessionClose | None:
        """Close one position (on the IB loop); None: nothing to do (flat, not the strategy's
        any more, or a flatten of an earlier run still works)."""
        trading, guard, spec = self.trading, self.guard, due.spec
        con_id = spec.con_id

        async def close() -> tuple[Decimal, str, str] | None:
            with guard.busy(con_id):
                await guard.settle(con_id)
                position = await trading.settled_position(con_id)
                record = self.registry.get(spec.account, con_id)
                if (
                    position == 0
                    or record is None
                    or record.alert_id != spec.alert_id
                    or not record.protects(position)
                ):
                    return None
                if trading.closing_refs(con_id):
                    return None
                closed, ref = await trading.close_position(con_id, spec.alert_id)
                return (closed, ref, await self._await_fill(ref)) if ref else None

        try:
            done = trading.conn.call(close(), timeout=FILL_WAIT_SECONDS + self.ib_call_timeout)
        except Exception as exc:  # noqa: BLE001 - said in the notice; the exits are put back
            log.exception("session-end flatten of conId %s failed", con_id)
            done = (Decimal(0), "", f"not closed: {exc}")
        if done is None:
            return None
        position, ref, result = done
        if result != "filled":
            self._given_up.add((con_id, str(due.closing.closes)))
            result = f"{result}; {self._restore(spec)}: close it by hand"
        return {"con_id": con_id, "symbol": due.venue.label, "alert_id": spec.alert_id, "strategy": due.strategy,
                "position": describe(position) if position else "?", "action": side_closing(position) if position else "?",
                "quantity": format(abs(position).normalize(), "f") if position else "?", "order_ref": ref,
                "when": describe_when(due.closing, due.minutes), "source": due.source, "result": result}  # fmt: skip

    def _restore(self, spec: ProtectionSpec) -> str:
        """Put the position's exits back (its record, unchanged, restored by the guard)."""
        why = "the session-end flatten did not fill"
        try:
            restored = self.trading.conn.call(
                self.guard.restore(spec.con_id, spec, why), timeout=self.ib_call_timeout
            )
        except Exception as exc:  # noqa: BLE001 - the guard checks the contract again by itself
            log.exception("session-end flatten: the exits of conId %s not put back", spec.con_id)
            return f"the exits not put back yet ({exc})"
        return restored or "the exits are put back"

    async def _await_fill(self, ref: str) -> str:
        """``filled``, or why not (the order cancelled when it still works: never beside the exits)."""
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        while True:
            state = self.trading.order_state(ref)
            if state is not None and state.status == "Filled":
                return "filled"
            if state is not None and state.status in IB_ENDED_UNFILLED_STATUSES:
                return f"not closed: IB ended the order {state.status}{': ' + state.error if state.error else ''}"
            if time.monotonic() > deadline:
                if state is not None:
                    await self.trading.cancel_and_wait([state])
                return f"not closed: not filled within {FILL_WAIT_SECONDS:g} s (cancelled)"
            await asyncio.sleep(0.05)

    def _report(self, account: str, closed: list[events.SessionClose]) -> None:
        """The notice, and a line on each alert's history (the recorder writes them)."""
        event = events.session_flatten(account, closed)

        def write(uow: UnitOfWork) -> None:
            for c in closed:
                self.recorder.note(uow, c["alert_id"], f"session-end flatten ({c['when']}; {KEY} {c['source']}): "
                                   f"{c['action']} {c['quantity']} {c['symbol']}, {c['result']}")  # fmt: skip
            uow.emit(event)

        self.recorder.run(write).result(30)

    def _no_calendar(self, account: str, spec: ProtectionSpec, venue: Venue, closing: Closing,
                     strategy: str | None) -> None:  # fmt: skip
        """A position that should be flat at the close on an exchange without a calendar: an
        alarm, once a day."""
        day = closing.now.date().isoformat()
        if (spec.con_id, day) in self._alarmed:
            return
        self._alarmed.add((spec.con_id, day))
        detail = (f"{venue.label} (strategy {strategy or '(none)'}, alert {spec.alert_id}): {closing.detail}; "
                  f"its close is unknown, so it is not flattened before it: close it by hand")  # fmt: skip
        log.error("session-end flatten: %s", detail)
        self.notifier.enqueue_event(events.alarm("Cannot flatten before the close", detail,
                                                 dedup_key=f"no_close:{account}:{spec.con_id}:{day}"))  # fmt: skip

    def __repr__(self) -> str:  # the housekeeping log names its checks
        return "session-end flatten (flatten_before_close)"
