"""The execution protocol: how one stored decision is worked at IB (close → confirm → open), like an
execution algorithm in nautilus_trader, apart from the job's lifecycle (worker/execution/executor.py).

It runs on the IB loop, on the decision as stored (worker/decision/stored.py), through the typed
``Trading`` interface (worker/ib/trading.py), and every step is idempotent: a rerun (SIGKILL,
retry) never decides again, it resumes toward the stored target from the position IB reports now,
each part capped by the stored one, each leg by its fixed orderRef.

1. **The closing part first** (reduce, close, reverse): tv2ib's resting entries on the contract
   are cancelled (IB's confirmation awaited), the exits are fitted to the position the close will
   leave (cancelled when that is flat, shrunk by modification otherwise; each change confirmed),
   then the closing order goes out (leg ``close``; ``exit`` for exit alerts),
   ``tv2ib:<alert>:close``. The protocol follows it: a market close until it fills, a limit close
   until IB acknowledges it (a reversal's close until it fills, up to ``REVERSAL_FILL_TIMEOUT_SECONDS``).
   The exits keep their prices until then: a reduce's new prices are applied once its close is
   done or working (a target re-priced through the market fills at once, beside a close sized
   before it). When an exit fills while they are fitted, the close is sized again from the
   position that fill left.
2. **The opening part once the close is done**: from flat (an open, a reversal's second half) the
   bracket as always (``entry`` + ``tp`` / ``sl`` children); an ``add`` is a plain ``entry`` whose
   exits the guard (worker/execution/guard.py) grows to the whole position after it fills, and
   whose prices move the existing exits now (:meth:`ExecutionProtocol.reprice`).
3. **A close that IB refuses, or that does not fill completely in time, opens nothing**: the old
   protection is put back for whatever position remains (:meth:`ExecutionProtocol.restore`) and
   the alert ends ``rejected`` saying so.
4. The protection the position should have after the trade is handed to the guard right before
   the opening part goes out (a reduce: after its close), and the guard is kept off the contract
   while the protocol changes its exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

from core.ids import order_ref
from core.models import IB_DONE_STATUSES, IB_ENDED_UNFILLED_STATUSES, AlertStatus
from worker.decision.levels import sized_legs
from worker.decision.model import OCA_TYPE, Leg
from worker.decision.order_types import ExitOrder, default_exit_order
from worker.decision.positions import ExitChange, describe, exit_changes, stop_first, toward
from worker.decision.stored import PositionMove, StoredDecision
from worker.execution.guard import Guard
from worker.ib.placement import Placement, RecordPlacement
from worker.ib.trading import Trading
from worker.recording.protection import ProtectionSpec
from worker.recording.snapshots import OrderState

log = logging.getLogger(__name__)

CRASH_ENV = "TV2IB_CRASH_AT"
# fitting the exits before a close: an exit that fills meanwhile moves the position, and the
# exits and the close are sized again from it; a third move in a row leaves the rest to the guard
FIT_ATTEMPTS = 3


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


@dataclass(frozen=True)
class Run:
    """One run of the protocol for one alert, with the job's hooks."""

    alert_id: str
    decision: StoredDecision
    reprice: bool  # the alert gives take-profit / stop-loss (a reduce re-prices the exits)
    submitted: bool  # the alert's orders are recorded already (a rerun only follows them)
    leg_sent: Callable[[str], None] = lambda leg: None
    record: RecordPlacement = lambda placed, adopted: None
    on_wire: Callable[[Placement], None] = lambda placement: None

    @property
    def move(self) -> PositionMove:
        move = self.decision.decided
        assert move is not None, "the protocol works a decided move"
        return move


@dataclass
class Outcome:
    """What one run did: its placements (their records are awaited by the job thread), the
    decision as it stands after (a failed close adds its outcome) and, when the alert ended here,
    its final state and reason."""

    decision: StoredDecision
    placements: list[Placement] = field(default_factory=list)
    ended: tuple[AlertStatus, str] | None = None


class ExecutionProtocol:
    """Close → confirm → open, restore, reprice (see the module docstring); one per worker."""

    def __init__(
        self, trading: Trading, guard: Guard | None = None, *, reversal_fill_timeout: float = 30.0
    ) -> None:
        self.trading = trading
        self.guard = guard  # None (unit tests without a guard): the protocol puts exits back itself
        self.reversal_fill_timeout = reversal_fill_timeout  # REVERSAL_FILL_TIMEOUT_SECONDS

    async def run(self, run: Run, con_id: int) -> Outcome:
        """On the IB loop: the closing part, then (once it filled) the opening part, each leg by its
        fixed orderRef so that a rerun adopts what a previous run sent."""
        with self._guard_off(con_id):
            outcome = Outcome(run.decision)
            close_leg = run.decision.close_leg
            if close_leg is not None and await self._close(run, con_id, close_leg, outcome):
                return outcome
            await self._open(run, con_id, outcome)
            if not outcome.placements and not run.submitted:  # recorded orders: the alert follows them
                position = self.trading.position_of(con_id)
                outcome.ended = (AlertStatus.CANCELLED,
                                 f"nothing sent: IB reports {describe(position)} (the decision was {run.move.reason})")  # fmt: skip
            return outcome

    # ------------------------------------------------------------------ the closing part

    async def _close(self, run: Run, con_id: int, close_leg: Leg, outcome: Outcome) -> bool:
        """Send (or adopt) the closing order and follow it; True when the run ends with it."""
        trading, alert_id = self.trading, run.alert_id
        close_ref = order_ref(alert_id, close_leg.leg)
        if close_ref not in trading.known_refs([close_ref]):
            await self._send_close(run, con_id, close_leg, outcome)
        else:  # sent by an earlier run: adopt it (recorded), then follow it like a fresh one
            outcome.placements.append(await trading.place_legs(alert_id, con_id, [close_leg], OCA_TYPE,
                                                               run.leg_sent, run.record))  # fmt: skip
        if close_ref not in trading.known_refs([close_ref]):
            return False
        move = run.move
        result, state = await self._await_close(close_ref, move.reversal)
        if result == "filled":
            crash_point("after_close_filled")
            if move.refused_open:  # the opening part was refused: the close was all
                outcome.ended = (AlertStatus.REJECTED,
                                 f"{move.refused_open}; the close went through: the position is flat, not reversed")  # fmt: skip
                return True
            return False
        if result == "working" or (result == "timeout" and not move.reversal):
            # a resting limit close, or a market close IB has not filled yet (closed market): it
            # stays working, its exits already fit what it leaves; the alert follows it
            # (recorder). Only a reversal gives up: nothing may open after it
            await self._reprice_reduce(run, con_id)
            return True
        if state is not None and state.status not in IB_DONE_STATUSES:
            await trading.cancel_and_wait([state])  # no half-done reversal later on
        outcome.ended, outcome.decision = await self._close_failed(run, con_id, close_leg, state, result)
        return True

    async def _send_close(self, run: Run, con_id: int, close_leg: Leg, outcome: Outcome) -> None:
        """Clear the way (resting entries, exits fitted to what the close leaves), then send it."""
        trading, alert_id, move = self.trading, run.alert_id, run.move
        now = trading.position_of(con_id)
        qty = close_part(now, move)
        if qty <= 0:
            return
        mine = f"tv2ib:{alert_id}:"
        resting = [s for s in trading.resting_entries(con_id) if not s.order_ref.startswith(mine)]
        if resting:  # a reversal while the previous entry rests: that entry goes first
            await trading.cancel_and_wait(resting)
            now = trading.position_of(con_id)
            qty = close_part(now, move)
        for _ in range(FIT_ATTEMPTS):
            # at their present prices: a reduce re-prices after its close (_reprice_reduce)
            leaves = now - qty if now > 0 else now + qty
            changes = exit_changes(leaves, trading.working_exits(con_id))
            if changes:
                await trading.apply_exit_changes(con_id, changes, alert_id=alert_id, prices={},
                                                 oca_group=trading.exit_oca_group(con_id, alert_id), orders={})  # fmt: skip
            again = trading.position_of(con_id)
            if again == now:
                break
            now, qty = again, close_part(again, move)  # an exit filled meanwhile: size from what it left
        crash_point("after_exits_cancelled")
        if qty > 0:
            placement = await trading.place_legs(alert_id, con_id, [replace(close_leg, quantity=qty)], OCA_TYPE,
                                                 run.leg_sent, run.record)  # fmt: skip
            outcome.placements.append(placement)
            run.on_wire(placement)

    async def _await_close(self, ref: str, reversal: bool) -> tuple[str, OrderState | None]:
        """Follow the closing order: ``filled`` (completely), ``ended`` (refused or cancelled, maybe
        after a partial fill), ``working`` (a limit close IB acknowledged; only when no opening part
        waits for it) or ``timeout`` (not completely filled within REVERSAL_FILL_TIMEOUT_SECONDS)."""
        deadline = time.monotonic() + self.reversal_fill_timeout
        state = None
        while True:
            state = self.trading.order_state(ref) or state
            if state is not None:
                total, filled = state.quantity or Decimal(0), state.filled or Decimal(0)
                if state.status == "Filled" or (total and filled >= total):
                    return "filled", state
                if state.status in IB_ENDED_UNFILLED_STATUSES:
                    return "ended", state
                if (
                    not reversal
                    and state.order_type != "MKT"
                    and state.status in ("Submitted", "PreSubmitted")
                ):
                    return "working", state
            if time.monotonic() > deadline:
                return "timeout", state
            self.trading.require_connected()
            await asyncio.sleep(0.02)

    async def _close_failed(self, run: Run, con_id: int, close_leg: Leg, state: OrderState | None,
                            result: str) -> tuple[tuple[AlertStatus, str], StoredDecision]:  # fmt: skip
        """The closing order did not fill completely: nothing opens; the position keeps (or gets
        back) its old protection for whatever is left; the alert ends with the reason."""
        move = run.move
        position = self.trading.position_of(con_id)
        restored = await self.restore(con_id, run.alert_id, move.protection_before, position)
        crash_point("after_exits_restored")
        filled = state.filled if state is not None else None
        total = state.quantity if state is not None else close_leg.quantity
        if result == "timeout":
            what = (f"the {close_leg.leg} order did not fill completely within {self.reversal_fill_timeout:g}s "
                    f"({_qty(filled)}/{_qty(total)} filled; the rest cancelled)")  # fmt: skip
        elif state is not None and state.error:
            what = f"IB refused the {close_leg.leg} order: {state.error}"
        else:
            what = f"the {close_leg.leg} order ended unfilled at IB ({_qty(filled)}/{_qty(total)} filled)"
        kept = "not reversed; " if move.reversal else ""
        reason = f"{what}; {kept}position left {describe(position)}{'; ' + restored if restored else ''}"
        decision = run.decision.with_position(protection_after=move.protection_before, outcome=reason)
        return (AlertStatus.REJECTED, reason), decision

    # ------------------------------------------------------------------ the opening part

    async def _open(self, run: Run, con_id: int, outcome: Outcome) -> None:
        trading, alert_id, move = self.trading, run.alert_id, run.move
        open_legs, after = run.decision.open_legs, move.protection_after
        if not open_legs:
            await self._reprice_reduce(run, con_id)
            return
        known = trading.known_refs([order_ref(alert_id, leg.leg) for leg in open_legs])
        qty = move.open_qty
        if not known:
            mine = f"tv2ib:{alert_id}:"
            against = [s for s in trading.resting_entries(con_id)
                       if s.action != open_legs[0].action and not s.order_ref.startswith(mine)]  # fmt: skip
            if against:  # an entry resting on the other side would undo this one when it fills
                await trading.cancel_and_wait(against)
            qty = open_part(trading.position_of(con_id), move)
        if known or qty > 0:
            self._protect(after)
            sized = open_legs if known else sized_legs(list(open_legs), qty)
            crash_point("before_place")
            placement = await trading.place_legs(alert_id, con_id, sized, OCA_TYPE, run.leg_sent, run.record)
            outcome.placements.append(placement)
            run.on_wire(placement)
        if move.kind == "add" and after is not None and after.prices:
            await self.reprice(con_id, alert_id, dict(after.prices), dict(after.orders))

    async def _reprice_reduce(self, run: Run, con_id: int) -> None:
        """A reduce keeps its protection, at the alert's prices when it gives some: the exits,
        already fitted to what the close leaves, move now that the close is done or working (an
        exit of another kind than the working one, STP -> TRAIL, is replaced)."""
        after, move = run.move.protection_after, run.move
        if after is None or move.target == 0 or move.target * move.before < 0:
            return
        self._protect(after)
        if run.reprice and after.prices:
            await self.reprice(con_id, run.alert_id, dict(after.prices), dict(after.orders))

    def _protect(self, after: ProtectionSpec | None) -> None:
        """Hand the protection the position should have to the guard (worker/execution/guard.py),
        which keeps the exits equal to it after fills and reconnects. No guard: nothing to do."""
        if self.guard is not None and after is not None:
            self.guard.protect(after)

    @contextlib.contextmanager
    def _guard_off(self, con_id: int) -> Iterator[None]:
        """Keep the guard off the contract while the protocol changes its exits step by step."""
        if self.guard is None:
            yield
            return
        with self.guard.busy(con_id):
            yield

    # ------------------------------------------------------------------ restore and reprice

    async def restore(
        self, con_id: int, alert_id: str, before: ProtectionSpec | None, position: Decimal
    ) -> str:
        """Put the old protection back for ``position`` (the guard when it runs: it also owns the
        spec; else directly). Returns what was done, for the notice."""
        if self.guard is not None:
            return await self.guard.restore(
                con_id, before, "the order that was to change the position failed"
            )
        if position == 0:
            return ""
        prices = dict(before.prices) if before is not None else {}
        if before is not None and before.side != (1 if position > 0 else -1):
            prices = {}
        trading = self.trading
        changes = exit_changes(position, trading.working_exits(con_id), frozenset(prices))
        if not changes:
            return "its exits are in place" if prices else ""
        await trading.apply_exit_changes(con_id, changes, alert_id=alert_id, prices=prices,
                                         oca_group=trading.exit_oca_group(con_id, alert_id),
                                         orders=dict(before.orders) if before is not None else {})  # fmt: skip
        return "its exits were put back: " + ", ".join(
            f"{c.role} {c.action} {_qty(c.quantity)}" for c in changes if c.quantity > 0
        )

    async def reprice(self, con_id: int, alert_id: str, prices: dict[str, Decimal],
                      orders: dict[str, ExitOrder] | None = None) -> None:  # fmt: skip
        """An ``add`` with take-profit / stop-loss moves the existing exits to its prices now (their
        size grows after the add fills, by the guard). An exit whose order type the add changes
        (a STP that becomes a TRAIL) is cancelled, then placed anew: IB modifies prices, not kinds;
        never both at once (two stops would exceed the position). A TRAIL is re-trailed only for
        another trail (its stop moves with the market, not to a price)."""
        trading = self.trading
        changes: list[ExitChange] = []
        current = trading.exit_prices(con_id)
        working_terms = trading.exit_orders(con_id)
        for ex in trading.working_exits(con_id):
            if ex.role not in prices or (ex.slice and ex.role == "tp"):  # a level's target keeps its price
                continue
            wanted = (orders or {}).get(ex.role) or default_exit_order(ex.role)
            working = working_terms.get(ex.role) or default_exit_order(ex.role)
            if wanted.order_type != working.order_type:
                changes += [ExitChange(ex.ref, ex.role, ex.action, Decimal(0)),
                            ExitChange(None, ex.role, ex.action, ex.quantity, ex.slice)]  # fmt: skip
            elif working.order_type == "TRAIL":
                if not wanted.same_trail(working.trail_amount, working.trail_percent):
                    changes.append(ExitChange(ex.ref, ex.role, ex.action, ex.quantity))
            elif current.get(ex.role) != prices[ex.role] or wanted.limit_price != working.limit_price:
                changes.append(ExitChange(ex.ref, ex.role, ex.action, ex.quantity))
        if changes:
            await trading.apply_exit_changes(con_id, stop_first(changes), alert_id=alert_id, prices=prices,
                                             oca_group=trading.exit_oca_group(con_id, alert_id), orders=orders)  # fmt: skip


def close_part(now: Decimal, move: PositionMove) -> Decimal:
    """What is still to close: nothing once the position left the side it was on (closed by a
    stop, or by this alert before a restart); never more than the recorded closing part."""
    if now == 0 or (now > 0) != (move.before > 0):
        return Decimal(0)
    return min(move.close_qty, toward(now, move.target).close_qty)


def open_part(now: Decimal, move: PositionMove) -> Decimal:
    """What is still to open toward the target; never more than the recorded opening part (IB's
    position report may trail the close's fill: from either side the opening part is the same)."""
    return min(move.open_qty, toward(now, move.target).open_qty)


def _qty(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")
