"""``stopLoss.breakEven``: the stop moves to the entry once the market has gone the distance in the
position's favour; the pure rule as a table, and the real worker (in a thread) against ibsim."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from support import wait_until
from worker_helpers import add_alert, alert_status

from core.models import AlertEvent
from core.payload import BreakEven
from worker.decision.break_even import break_even_move
from worker.decision.rounding import PriceGrid

D = Decimal
CENT = PriceGrid(D("0.01"))


@pytest.mark.parametrize(
    ("rule", "position", "entry", "market", "stop", "expected", "spent"),
    [
        # a long: 1 % above 190 is 191.90
        (BreakEven(percent=D(1)), D(10), D(190), D("191.89"), D(186), None, False),
        (BreakEven(percent=D(1)), D(10), D(190), D("191.90"), D(186), D(190), True),
        (BreakEven(percent=D(1), offset_ticks=D(2)), D(10), D(190), D(192), D(186), D("190.02"), True),
        (BreakEven(amount=D(2), offset_amount=D("0.005")), D(10), D(190), D(192), D(186), D("190.01"), True),
        # a short: the mirror image, the offset below the entry
        (BreakEven(ticks=D(100), offset_percent=D("0.1")), D(-5), D(190), D(189), D(194), D("189.81"), True),
        (BreakEven(ticks=D(100)), D(-5), D(190), D("189.01"), D(194), None, False),
        # the stop already at or past break-even: nothing moves, the rule is spent
        (BreakEven(percent=D(1)), D(10), D(190), D(193), D("190.50"), None, True),
        # an offset the market has not passed: it waits
        (BreakEven(amount=D(1), offset_amount=D(3)), D(10), D(190), D(192), D(186), None, False),
        (BreakEven(percent=D(1)), D(0), D(190), D(193), None, None, False),
    ],
)
def test_when_and_where_the_stop_moves(rule, position, entry, market, stop, expected, spent):
    move = break_even_move(rule, position, entry, market, stop, CENT)
    assert (move.stop, move.spent) == (expected, spent), move.why


def _stop(sim) -> dict | None:
    working = [o for o in sim.state()["orders"]
               if o["status"] in ("Submitted", "PreSubmitted") and o["orderRef"].rsplit(":", 1)[1][:2] == "sl"]  # fmt: skip
    return working[0] if len(working) == 1 else None


@pytest.mark.e2e
def test_the_stop_moves_to_break_even_once_and_the_trader_hears_of_it(sim, watching_worker):
    ctx = watching_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                               "takeProfit": {"percent": 5},
                               "stopLoss": {"percent": 2, "breakEven": {"percent": 1, "offsetTicks": 2}}})  # fmt: skip
    wait_until(lambda: alert_status(ctx, alert_id) == "filled", timeout=20)
    wait_until(lambda: _stop(sim) is not None and _stop(sim)["auxPrice"] == 186.2, timeout=10)
    sim.set_price("AAPL", 191.0)  # not yet 1 % in favour
    time.sleep(1.0)  # five looks of the watcher
    assert _stop(sim)["auxPrice"] == 186.2
    sim.set_price("AAPL", 192.0)  # past 191.90: the stop goes to the entry + 2 ticks
    wait_until(lambda: (_stop(sim) or {}).get("auxPrice") == 190.02, timeout=15)
    assert _stop(sim)["quantity"] == 10
    sim.set_price("AAPL", 195.0)  # once: it does not trail

    def said() -> tuple[list[str], list[str]]:  # the audit line and the notice, written by the recorder
        with ctx.sessions() as session:
            trail = list(session.scalars(select(AlertEvent.message).where(AlertEvent.alert_id == alert_id)))
            notices = list(session.scalars(select(text("text")).select_from(text("notices"))
                                           .where(text("kind = 'break_even'"))))  # fmt: skip
        moved = [m for m in trail if m.startswith("break-even: stop moved to break-even 190.02")]
        return (moved, notices) if moved and notices else ([], [])

    moved, notices = wait_until(lambda: said() if said()[0] else None, timeout=10)
    assert len(moved) == 1
    assert len(notices) == 1 and "Stop moved to break-even" in notices[0] and "stop from 186.2" in notices[0]
    wait_until(lambda: watching_worker.worker.protection.all()[0].break_even_done, timeout=5)
    assert _stop(sim)["auxPrice"] == 190.02
