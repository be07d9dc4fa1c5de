"""The protective-order guard: the exits working at IB match the position and its protection spec.

It runs on the IB loop and makes tv2ib's working exits on a contract equal
``exit_changes(position, working_exits, wanted_roles)`` (worker/decision/positions.py): exits on the wrong
side or for a flat position are cancelled, exits larger than the position shrink (before anything
grows), exits smaller than the position grow (after a fill of an ``add``), and an exit the spec
wants but IB no longer works is re-attached, sized to the whole position. What to do is decided by
the pure :func:`worker.decision.guard_rules.guard_decision`; this module gathers its input and acts on it.

How it reads the position: exactly as the executor does (``Trading.settled_view``,
worker/ib/position_reader.py): IB's last position report PLUS the live executions of tv2ib's
orders that arrived after it (worker/decision/ledger.py), after waiting (at most ``SETTLE_SECONDS``) for
IB's report to agree with them. IB reports a position a moment after the fill (a second or more
on a busy gateway); a guard that read the report alone saw a position just opened as flat and
cancelled its new stop and target (issue 16). Past the wait it decides on the report plus the
executions, never on the report alone; and it clears a position's spec only when IB's report
shows it flat too (a flat that only the executions show yet cancels the exits, and keeps the
spec until the report comes: its arrival triggers the next check).

When it runs (each trigger only schedules a check a moment later, so a burst of IB events is one
check, and position updates that follow an execution are in by then):

* after every execution and position change on a contract with a spec, tv2ib exits, or tv2ib
  executions IB's report does not show yet;
* after one of tv2ib's exits ends unfilled at IB (cancelled, expired, refused);
* after every (re)connect, once IB's orders and positions are synchronised (every spec);
* when the job asks (:meth:`Guard.restore`: a refused reversal puts the old exits back).

It stays away from a contract while a job is executing (the job's own protocol changes the exits
step by step and waits for IB at each; the guard checks after the job) and while an entry with
dormant bracket children still rests (the children cover the entry once it fills; if IB cancels
the rest of the entry, it cancels the children too and the guard re-attaches exits sized to what
was filled).

Once, not forever: each wanted exit is re-attached at most ONCE per spec (a new orderRef,
``tv2ib:<alert>:sl2``). If IB refuses it or cancels it again, the guard does not loop: it raises
the ``unprotected`` alarm naming the position (worker/execution/unprotected.py), and with
``FLATTEN_UNPROTECTED=true`` it cancels tv2ib's exits on the contract and closes the position at
market (orderRef ``tv2ib:<alert>:flatten``).

How a job uses it (the execution protocol, worker/execution/protocol.py; the runtime,
worker/runtime.py, hands the guard to the executor at construction), all on the IB loop:

* ``previous = guard.protect(ProtectionSpec(...))`` when the job plans a position's exits, for
  EVERY plan that changes the position (an empty ``prices`` when the alert asks for no exits: the
  guard then leaves the position without exits, and an old spec for the other side is not used);
* ``await guard.restore(con_id, previous, why)`` when the order that was to reduce, close or
  reverse the position is refused or does not fill: the old exits come back for the unchanged
  position (one re-attach each, then the alarm), and the returned sentence goes into the notice;
* ``with guard.busy(con_id):`` / ``await guard.settle(con_id)`` to keep the guard off the
  contract while the job changes its exits step by step (the guard already waits while any job
  is executing; these make it explicit);
* :func:`worker.decision.drift.report_drift` for the drift check.

Whose orders: the guard changes only tv2ib's orders of its own connection on its account (client
id: IB reports an order only to the client that placed it, and only that client can modify it;
worker/ib/orders.py ``OrderBook.ours``), and it acts only while its worker holds the claim of that
account (``active``: worker/claims.py, one live worker per IB account). So it never sees a position whose exits another connection
placed: a second worker on the account would see no exits and attach a second set (two stops for
one position, a fill of both reverses it), which is why that second worker refuses to start. Exits
a previous run placed under another ``IB_CLIENT_ID`` are invisible to it too: keep a worker's
client id fixed (docs/scaling.md).

The guard never waits on the database: audit lines and alarms go to the recorder thread
(``recorder.run``), and the spec's persistence is the registry's (worker/recording/protection.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.models import IB_ENDED_UNFILLED_STATUSES
from worker.decision.guard_rules import GuardInput, guard_decision
from worker.decision.positions import ExitChange, describe, exits_fit
from worker.errors import TemporaryError
from worker.execution.unprotected import UnprotectedAlarm
from worker.ib.orders import exit_role
from worker.ib.position_reader import SETTLE_SECONDS
from worker.ib.trading import Trading
from worker.recording.protection import ProtectionRegistry, ProtectionSpec
from worker.recording.recorder import Recorder, UnitOfWork

log = logging.getLogger(__name__)

# Wait this long after a trigger before checking: IB sends the position update after the
# execution, and a bracket releases its children right after the parent's fill.
CHECK_DELAY_SECONDS = 0.25
# While a job works on the account, look again this often.
BUSY_RETRY_SECONDS = 0.5
# IB did not acknowledge a change in time (TemporaryError): check again after this long.
RETRY_AFTER_TEMPORARY_SECONDS = 2.0
ROLE_NAMES = {"tp": "take-profit", "sl": "stop-loss"}


@dataclass(frozen=True)
class GuardSettings:
    """How the guard acts (FLATTEN_UNPROTECTED) and how long it waits before and during a check."""

    flatten_unprotected: bool = False
    check_delay: float = CHECK_DELAY_SECONDS
    settle_wait: float = SETTLE_SECONDS


class Host(Protocol):
    """What the guard asks the worker it runs in (worker/runtime.py)."""

    def job_running(self) -> bool:
        """A job is executing: the guard leaves the exits to it."""
        ...

    def serves_alone(self) -> bool:
        """The worker holds its account's claim (see "Whose orders" above)."""
        ...


class _Alone:
    """A host without jobs that always holds its account (tests of the guard alone)."""

    def job_running(self) -> bool:
        return False

    def serves_alone(self) -> bool:
        return True


class Guard:
    """One per worker; every method except :meth:`busy` runs on the IB loop."""

    def __init__(self, trading: Trading, registry: ProtectionRegistry, recorder: Recorder,
                 settings: GuardSettings | None = None, host: Host | None = None) -> None:  # fmt: skip
        self.trading = trading
        self.registry = registry
        self.recorder = recorder
        self.settings = settings or GuardSettings()
        self.host = host or _Alone()
        self._scheduled: dict[int, asyncio.TimerHandle] = {}
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._busy: dict[int, int] = {}
        # per spec (its identity: a new spec starts afresh): roles re-attached once; the alarm
        # remembers for which spec and missing roles it was raised
        self._attached: dict[tuple[str, int], tuple[ProtectionSpec | None, set[str]]] = {}
        self.alarm = UnprotectedAlarm(trading, recorder, self.settings.flatten_unprotected)
        self.checks = 0  # for tests and metrics: checks that ran to the end

    def active(self) -> bool:
        """The worker holds its account's claim: the guard may act (see "Whose orders" above)."""
        return self.host.serves_alone()

    # ------------------------------------------------------------------ the job's side

    @contextlib.contextmanager
    def busy(self, con_id: int) -> Iterator[None]:
        """Keep the guard off ``con_id`` while the caller changes its exits step by step (the
        guard checks the contract when the block ends). Usable on the IB loop or another thread."""
        self._busy[con_id] = self._busy.get(con_id, 0) + 1
        try:
            yield
        finally:
            self._busy[con_id] -= 1
            if self._busy[con_id] <= 0:
                del self._busy[con_id]
            self.trading.call_soon(self.poke, con_id)

    def protect(self, spec: ProtectionSpec) -> ProtectionSpec | None:
        """Make ``spec`` the position's protection (the job, when it plans); returns the previous
        spec, to hand to :meth:`restore` if the order that was to change the position fails."""
        return self.registry.set(spec)

    async def restore(self, con_id: int, previous: ProtectionSpec | None, why: str = "") -> str:
        """The order that was to reduce, close or reverse the position was refused (or did not
        fill): the position is what it was, so make ``previous`` its protection again and put its
        exits back now. Returns one sentence for the alert's notice. Runs on the IB loop; never
        raises for IB trouble (the guard then checks again by itself)."""
        self.registry.restore(self.trading.account, con_id, previous)
        account = self.trading.account or ""
        self._attached.pop((account, con_id), None)  # a fresh chance to attach, and to alarm
        self.alarm.forget(account, con_id)
        await self.settle(con_id)  # a check already under way finishes first: never two re-attaches
        self._running.add(con_id)
        try:
            return await self.check(con_id, why or "restore after a refused order", forced=True)
        except Exception as exc:  # noqa: BLE001 - the job's outcome stands; the guard retries
            log.warning("guard: restoring the exits of conId %s failed (%s); checking again", con_id, exc)
            asyncio.get_event_loop().call_later(RETRY_AFTER_TEMPORARY_SECONDS, self.poke, con_id)
            return f"the old exits are being put back (IB did not answer yet: {exc})"
        finally:
            self._running.discard(con_id)
            if con_id in self._again:
                self.poke(con_id)

    async def settle(self, con_id: int, timeout: float = 10.0) -> None:
        """Wait (bounded) until no guard check is changing ``con_id``'s exits: a job calls this
        before its own changes so the two never interleave at IB."""
        deadline = time.monotonic() + timeout
        while con_id in self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ triggers (IB loop)

    def poke(self, con_id: int) -> None:
        """Check ``con_id`` a moment from now (coalesces bursts of events)."""
        if con_id in self._running:
            self._again.add(con_id)
            return
        if con_id in self._scheduled:
            return
        loop = asyncio.get_event_loop()
        self._scheduled[con_id] = loop.call_later(self.settings.check_delay, self._start_check, con_id)

    def watches(self, con_id: int) -> bool:
        """Whether events on ``con_id`` concern the guard: a spec, tv2ib exits working, or our
        executions IB has not reported in a position yet (the report that follows them is the
        moment the position settles: it is checked, whatever it shows)."""
        if self.registry.get(self.trading.account, con_id) is not None:
            return True
        try:
            return bool(self.trading.working_exits(con_id)) or not self.trading.position_view(con_id).settled
        except Exception:  # noqa: BLE001 - a trigger never raises into ib_async's event loop
            return False

    def idle(self) -> bool:
        """No check scheduled or running (for tests and the status: the guard has caught up)."""
        return not self._scheduled and not self._running

    def on_position(self, con_id: int) -> None:
        if self.watches(con_id):
            self.poke(con_id)

    def on_fill(self, con_id: int) -> None:
        if self.watches(con_id):
            self.poke(con_id)

    def on_order_ended(self, con_id: int, order_ref: str, status: str) -> None:
        """An order of ours ended; an exit that ended unfilled is the guard's business."""
        if status in IB_ENDED_UNFILLED_STATUSES and exit_role(order_ref) is not None:
            self.poke(con_id)
        elif exit_role(order_ref) is None and self.watches(con_id):
            self.poke(con_id)  # an entry ended (its remainder cancelled): exits may be due now

    def on_reconciled(self) -> None:
        """After a (re)connect: check every contract with a spec or working exits."""
        con_ids = set(self.registry.con_ids(self.trading.account))
        with contextlib.suppress(Exception):
            con_ids |= self.trading.exit_con_ids()
        for con_id in con_ids:
            self.poke(con_id)

    def _start_check(self, con_id: int) -> None:
        self._scheduled.pop(con_id, None)
        if not self.active():  # not (or no longer) the account's only worker: hands off
            return
        asyncio.ensure_future(self._check_task(con_id))

    async def _check_task(self, con_id: int) -> None:
        if con_id in self._running:
            self._again.add(con_id)
            return
        self._running.add(con_id)
        try:
            while True:
                self._again.discard(con_id)
                await self.check(con_id, "event")
                if con_id not in self._again:
                    break
        except TemporaryError as exc:
            log.warning("guard: IB did not confirm a change on conId %s (%s); checking again", con_id, exc)
            asyncio.get_event_loop().call_later(RETRY_AFTER_TEMPORARY_SECONDS, self.poke, con_id)
        except Exception:  # noqa: BLE001 - the guard must never take the IB loop down
            log.exception("guard check of conId %s failed", con_id)
            asyncio.get_event_loop().call_later(RETRY_AFTER_TEMPORARY_SECONDS, self.poke, con_id)
        finally:
            self._running.discard(con_id)

    # ------------------------------------------------------------------ the check

    async def check(self, con_id: int, why: str, *, forced: bool = False) -> str:
        """Make the exits on ``con_id`` match the position; returns what was done (one sentence)."""
        if not self.trading.ready:
            return "IB not connected: checked after the reconnect"
        if not forced and self._taken(con_id):
            asyncio.get_event_loop().call_later(BUSY_RETRY_SECONDS, self.poke, con_id)
            return "a job is working on the contract"
        account = self.trading.account or ""
        if self.registry.get(account, con_id) is None and not self.trading.working_exits(con_id):
            return "nothing to guard"
        # the same position the executor decides on: IB's report once it includes our executions
        # (bounded wait), else the report PLUS the executions since, never a report that trails them
        view = await self.trading.settled_view(con_id, self.settings.settle_wait)
        if not forced and self._taken(con_id):  # a job took the contract while we waited
            asyncio.get_event_loop().call_later(BUSY_RETRY_SECONDS, self.poke, con_id)
            return "a job is working on the contract"
        spec = self.registry.get(account, con_id)
        position = view.position
        state = GuardInput(
            position=position,
            exits=tuple(self.trading.working_exits(con_id)),
            side=spec.side if spec is not None else None,
            wanted=spec.wanted_roles if spec is not None else frozenset(),
            settled=view.settled,
            entry_resting=bool(self.trading.resting_entries(con_id)),
            dormant_bracket=self.trading.has_dormant_bracket(con_id),
            attached=frozenset(self._attempts(account, con_id, spec)),
        )
        decision = guard_decision(state)
        if spec is None and not state.exits:
            return decision.note
        changes = list(decision.changes)
        done = ""
        if changes:
            done, applied = await self._apply(con_id, spec, position, changes, why, forced)
            self._attempts(account, con_id, spec).update(c.leg for c in applied if c.ref is None)
            if len(applied) < len(changes):  # a job took the contract: it works from IB's view now
                asyncio.get_event_loop().call_later(BUSY_RETRY_SECONDS, self.poke, con_id)
                return done or "a job is working on the contract"
        self.checks += 1
        if decision.clear_record:
            # flat, IB's report says so too, and no entry on its way: the spec has served
            self.registry.clear(account, con_id)
            self._attached.pop((account, con_id), None)
        elif decision.alarm:
            return await self.alarm.raise_for(con_id, position, spec, list(decision.alarm))
        return done or decision.note

    def _attempts(self, account: str, con_id: int, spec: ProtectionSpec | None) -> set[str]:
        held = self._attached.get((account, con_id))
        if held is None or held[0] != spec:
            held = (spec, set())
            self._attached[(account, con_id)] = held
        return held[1]

    def _taken(self, con_id: int) -> bool:
        """A job works on the contract (or any job runs): the guard steps aside."""
        return bool(self._busy.get(con_id)) or self.host.job_running()

    async def _apply(
        self,
        con_id: int,
        spec: ProtectionSpec | None,
        position: Decimal,
        changes: list[ExitChange],
        why: str,
        forced: bool,
    ) -> tuple[str, list[ExitChange]]:
        """Apply ``changes`` one at a time (each acknowledged by IB), stopping early when a job
        takes the contract meanwhile; returns the sentence and the changes applied."""
        alert_id = spec.alert_id if spec is not None else ""
        prices = dict(spec.prices) if spec is not None else {}
        orders = dict(spec.orders) if spec is not None else {}  # a TRAIL stays a TRAIL (order_types.py)
        oca_group = self._oca_group(con_id, spec)
        snaps = []
        applied: list[ExitChange] = []
        for change in changes:
            if applied and not forced and self._taken(con_id):
                break
            snaps += await self.trading.apply_exit_changes(
                con_id, [change], alert_id=alert_id, prices=prices, oca_group=oca_group, orders=orders
            )
            applied.append(change)
        parts = []
        for change in applied:
            what = ROLE_NAMES[change.role]
            if change.ref is None:
                kind = spec.order_for(change.role).order_type if spec is not None else ""
                kind = f" {kind}" if kind in ("STP LMT", "TRAIL") else ""  # a plain STP / LMT: as before
                parts.append(f"re-attached {what} {change.action} {_num(change.quantity)}{kind} @ "
                             f"{_num(prices.get(change.role))}")  # fmt: skip
            elif change.quantity == 0:
                parts.append(f"cancelled {what} {change.ref.rsplit(':', 1)[-1]}")
            else:
                parts.append(f"resized {what} {change.ref.rsplit(':', 1)[-1]} to {_num(change.quantity)}")
        refused = [s for s in snaps if s.status in IB_ENDED_UNFILLED_STATUSES and exit_role(s.order_ref)
                   and s.order_ref not in {c.ref for c in changes}]  # fmt: skip
        sentence = f"guard ({why}): {'; '.join(parts)} for {describe(position)}"
        if refused:
            sentence += "; IB refused " + ", ".join(s.order_ref.rsplit(":", 1)[-1] for s in refused)
        log.warning("%s (conId %s)", sentence, con_id)
        left = exits_fit(position, self.trading.working_exits(con_id))
        if left is not None:  # never expected: the protocol shrinks first; say so loudly
            log.error("guard: exits still do not fit conId %s after the check: %s", con_id, left)
        if alert_id:
            self.recorder.run(self._note, alert_id, sentence)
        return sentence, applied

    def _oca_group(self, con_id: int, spec: ProtectionSpec | None) -> str:
        """The group of the exits still working (one protective set), else a fresh one: IB may
        refuse an order joining a group whose members are all done."""
        alert_id = spec.alert_id if spec is not None else "guard"
        if self.trading.working_exits(con_id):
            return self.trading.exit_oca_group(con_id, alert_id)
        return f"tv2ib:{alert_id}:{int(time.time())}"

    def _note(self, uow: UnitOfWork, alert_id: str, message: str) -> None:
        self.recorder.note(uow, alert_id, message)


def _num(value: Decimal | None) -> str:
    if value is None:
        return "?"
    return format(value.normalize(), "f")
