"""When the guard cannot protect a position: the ``unprotected`` alarm, once per spec and set of
missing exits, and with ``FLATTEN_UNPROTECTED=true`` the position closed at market (orderRef
``tv2ib:<alert>:flatten``). A position on the other side than its spec's (a manual trade, most
likely) is never closed by the guard: tv2ib never planned it.

Runs on the IB loop (worker/execution/guard.py calls it); the alarm is written by the recorder
thread, never awaited.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from core import events
from worker.decision.positions import describe, side_closing
from worker.ib.trading import Trading
from worker.recording.protection import ProtectionSpec
from worker.recording.recorder import Recorder, UnitOfWork

log = logging.getLogger(__name__)


class UnprotectedAlarm:
    """The guard's alarm (one per worker)."""

    def __init__(self, trading: Trading, recorder: Recorder, flatten: bool) -> None:
        self.trading = trading
        self.recorder = recorder
        self.flatten = flatten  # FLATTEN_UNPROTECTED
        self._raised: set[tuple[str, int, str]] = set()

    def forget(self, account: str, con_id: int) -> None:
        """A fresh chance to alarm for the contract (its protection was put back by a job)."""
        self._raised = {key for key in self._raised if key[:2] != (account, con_id)}

    async def raise_for(
        self, con_id: int, position: Decimal, spec: ProtectionSpec | None, missing: list[str]
    ) -> str:
        """The alarm (once per spec and role set) and, if asked, closing the position."""
        account = self.trading.account or ""
        alert_id = spec.alert_id if spec is not None else ""
        key = (account, con_id, f"{alert_id}:{','.join(missing)}")
        if key in self._raised:
            return "unprotected (alarm already raised)"
        self._raised.add(key)
        raised_at = int(time.time())
        symbol = (spec.symbol if spec is not None else "") or str(con_id)
        wrong_side = spec is not None and not spec.protects(position)
        if wrong_side:
            assert spec is not None
            detail = (f"the protection planned by alert {alert_id} is for a {'long' if spec.side > 0 else 'short'}; "
                      f"IB has {describe(position)} (a manual trade?): tv2ib placed no exits for it")  # fmt: skip
        else:
            detail = (
                "IB cancelled or refused the exit, and refused it again when the guard re-attached it once"
            )
        if wrong_side:
            # tv2ib never planned this position (the trader flipped it by hand, most likely): closing
            # it is not the guard's call, even with FLATTEN_UNPROTECTED
            action_taken = "left as it is: protect or close it by hand"
        elif self.flatten:
            action_taken = await self._close(con_id, position, spec)
        else:
            action_taken = "left as it is (FLATTEN_UNPROTECTED is off): protect or close it by hand"
        event = events.unprotected(
            account=account, con_id=con_id, symbol=symbol, alert_id=alert_id or None, position=position,
            position_text=describe(position), missing=missing, detail=detail, action_taken=action_taken,
            raised_at=raised_at,
        )  # fmt: skip
        log.error("UNPROTECTED %s %s (missing %s): %s; %s", symbol, describe(position), missing, detail,
                  action_taken)  # fmt: skip

        def write(uow: UnitOfWork) -> None:
            if alert_id:
                self.recorder.note(uow, alert_id, f"unprotected {describe(position)}: missing "
                                   f"{', '.join(missing)}; {action_taken}")  # fmt: skip
            uow.emit(event)

        self.recorder.run(write)
        return f"unprotected: {action_taken}"

    async def _close(self, con_id: int, position: Decimal, spec: ProtectionSpec | None) -> str:
        """Cancel tv2ib's exits on the contract, then close the position at market."""
        try:
            position = await self.trading.close_unprotected(con_id, spec.alert_id if spec else "guard")
        except Exception as exc:  # noqa: BLE001 - the alarm must go out whatever happens here
            log.exception("guard: closing the unprotected position on conId %s failed", con_id)
            return f"closing it at market FAILED ({exc}): close it by hand"
        if position == 0:
            return "the position is flat now: nothing to close"
        return f"closing it at market (FLATTEN_UNPROTECTED): {side_closing(position)} {format(abs(position).normalize(), 'f')}"
