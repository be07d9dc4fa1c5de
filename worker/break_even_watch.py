"""The break-even watcher: a position whose alert gave ``stopLoss.breakEven`` has its stop moved to
the entry once the market has gone the distance in its favour, or once a named take-profit level
has filled (``afterTakeProfit``; the rule:
worker/decision/break_even.py).

Run by the housekeeping thread (worker/housekeeping.py) every few seconds, for the protection
records (worker/recording/protection.py) that carry a break-even rule not yet spent. On the IB loop
it reads the position (IB's report plus our executions), the entry's average fill price, the
market (a kept market-data stream after the first look) and the working stop; a move is a
modification of the stop at IB, acknowledged, with the guard kept off the contract meanwhile.
The record takes the new stop price and is marked spent in the same step, so the guard keeps the
new price (a stop IB cancels comes back at break-even) and the move happens once, across restarts.
Each move is written on the opening alert's audit trail and sent as a ``break_even`` notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from core import events
from core.ids import order_ref, slice_leg
from worker.contracts.tickers import ContractSpec
from worker.decision.break_even import BreakEvenMove, break_even_move
from worker.decision.numbers import price as fmt
from worker.decision.positions import ExitChange, describe
from worker.execution.guard import Guard
from worker.ib.trading import Trading
from worker.notify import Notifier
from worker.recording.protection import ProtectionRegistry, ProtectionSpec
from worker.recording.recorder import Recorder, UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Moved:
    spec: ProtectionSpec
    move: BreakEvenMove
    old_stop: str | None
    position: str


class BreakEvenWatch:
    """:meth:`check` is one look at every record with a break-even rule (housekeeping thread)."""

    def __init__(self, trading: Trading, guard: Guard, registry: ProtectionRegistry, recorder: Recorder,
                 notifier: Notifier, ib_call_timeout: float = 15.0) -> None:  # fmt: skip
        self.trading = trading
        self.guard = guard
        self.registry = registry
        self.recorder = recorder
        self.notifier = notifier
        self.ib_call_timeout = ib_call_timeout

    def check(self) -> list[str]:
        """Move the stops that are due; returns what was done (for the log and the tests)."""
        trading = self.trading
        if not trading.ready or not self.guard.active:
            return []
        account = trading.account or ""
        pending = [s for s in self.registry.all() if s.break_even is not None and not s.break_even_done
                   and s.account == account]  # fmt: skip
        if not pending:
            return []
        done = trading.conn.call(self._look(pending), timeout=self.ib_call_timeout)
        for moved in done:
            self._say(moved)
        return [m.move.why for m in done]

    async def _look(self, pending: list[ProtectionSpec]) -> list[_Moved]:
        done = []
        for spec in pending:
            try:
                moved = await self._one(spec)
            except Exception as exc:  # noqa: BLE001 - one position's trouble must not stop the others
                log.warning("break-even of conId %s not checked: %s", spec.con_id, exc)
                continue
            if moved is not None:
                done.append(moved)
        return done

    async def _one(self, spec: ProtectionSpec) -> _Moved | None:
        trading, con_id = self.trading, spec.con_id
        position = trading.position_of(con_id)
        if not spec.protects(position) or spec.break_even is None:
            return None
        entry = trading.entry_price(spec.alert_id, con_id)
        if entry is None:
            return None
        market = (await trading.market_price(con_id)).price
        if market is None:
            return None
        inst = await trading.instrument(ContractSpec("", spec.symbol, "SMART", con_id=con_id))
        current = trading.exit_prices(con_id).get("sl")
        move = break_even_move(
            spec.break_even, position, entry, market, current, inst.grid, self._level_filled(spec)
        )
        if not move.spent:
            return None
        stops = [ex for ex in trading.working_exits(con_id) if ex.role == "sl"]
        if move.stop is None or not stops:  # already at or past break-even (or no stop works)
            self.guard.protect(replace(spec, break_even_done=True))
            return _Moved(spec, move, None if current is None else fmt(current), describe(position))
        new = replace(spec, prices={**spec.prices, "sl": move.stop}, break_even_done=True)
        with self.guard.busy(con_id):
            self.guard.protect(new)  # the guard keeps (and re-attaches at) the new stop from now on
            changes = [ExitChange(ex.ref, "sl", ex.action, ex.quantity) for ex in stops]
            await trading.apply_exit_changes(con_id, changes, alert_id=spec.alert_id, prices=dict(new.prices),
                                             oca_group=trading.exit_oca_group(con_id, spec.alert_id),
                                             orders=dict(spec.orders))  # fmt: skip
        return _Moved(new, move, None if current is None else fmt(current), describe(position))

    def _level_filled(self, spec: ProtectionSpec) -> bool:
        """The take-profit level a rule ``afterTakeProfit`` names has filled at IB (its order
        ``tv2ib:<opening alert>:tp.<n>`` is Filled)."""
        level = spec.break_even.after_take_profit if spec.break_even is not None else None
        if level is None:
            return False
        ref = order_ref(spec.levels_alert or spec.alert_id, slice_leg("tp", f"{level.normalize():f}"))
        state = self.trading.order_state(ref)
        return state is not None and state.status == "Filled"

    def _note(self, uow: UnitOfWork, alert_id: str, message: str) -> None:
        self.recorder.note(uow, alert_id, message)

    def _say(self, moved: _Moved) -> None:
        """The opening alert's audit line, and the notice when the stop moved."""
        spec, move = moved.spec, moved.move
        log.warning("break-even, conId %s: %s", spec.con_id, move.why)
        self.recorder.run(self._note, spec.alert_id, f"break-even: {move.why}")
        if move.stop is None:
            return
        try:
            self.notifier.enqueue_event(events.break_even(
                account=spec.account, con_id=spec.con_id, symbol=spec.symbol, alert_id=spec.alert_id,
                position=moved.position, old_stop=moved.old_stop, new_stop=fmt(move.stop), why=move.why,
            ))  # fmt: skip
        except Exception:  # noqa: BLE001 - the audit line above already says it
            log.exception("the break-even notice was not queued")
