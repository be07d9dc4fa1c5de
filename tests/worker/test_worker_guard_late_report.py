"""A late position report never strips a new position's exits (issue 16, item 1).

TWS reports a position a moment after the execution that changed it; ibsim's ``position_delay``
fault widens that moment. The guard checks a contract 0.25 s after a fill: reading IB's raw report
then, it saw "flat" for a position that had just been opened, cancelled the bracket's stop and
target and forgot the position's protection, so not even a restart put them back. The guard now
decides on the same position as the executor: IB's last report plus tv2ib's own executions that
arrived after it (worker/decision/ledger.py).

Each test checks what a trader would: IB's position, the exits ibsim reports working, the
protection the worker keeps, and the notices table.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.models import Notice
from worker.decision.positions import WorkingExit, exits_fit

CLIENT = 7  # worker_env's IB_CLIENT_ID
BRACKET = {"ticker": "AMD", "action": "buy", "quantity": 5, "price": 143,
           "takeProfit": {"percent": 3}, "stopLoss": {"percent": 3}}  # fmt: skip
TARGET = {"ticker": "AMD", "action": "buy", "positionSize": 5, "price": 143,
          "takeProfit": {"percent": 3}, "stopLoss": {"percent": 3}}  # fmt: skip


def _exits(sim) -> list[dict]:
    """tv2ib's exits ibsim has working (Submitted: a PreSubmitted child is dormant)."""
    return [o for o in sim.state()["orders"]
            if o["clientId"] == CLIENT and o["orderRef"].startswith("tv2ib:") and o["status"] == "Submitted"
            and o["orderRef"].rsplit(":", 1)[1].rstrip("0123456789") in ("tp", "sl")]  # fmt: skip


def _position(sim) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == "AMD")


def _roles(sim) -> dict[str, tuple[str, float]]:
    """role -> (leg, remaining) of the working exits, one per role."""
    roles: dict[str, tuple[str, float]] = {}
    for o in _exits(sim):
        leg = o["orderRef"].rsplit(":", 1)[1]
        assert leg[:2] not in roles, f"two working {leg[:2]} exits: {_exits(sim)}"
        roles[leg[:2]] = (leg, o["remaining"])
    return roles


def _invariant_7(sim) -> str | None:
    exits = [WorkingExit(o["orderRef"], o["orderRef"].rsplit(":", 1)[1][:2], o["action"],
                         Decimal(str(o["remaining"]))) for o in _exits(sim)]  # fmt: skip
    return exits_fit(Decimal(str(_position(sim))), exits)


def _amd(sim) -> int:
    return sim.call(sim.sim.engine.find_instruments, "AMD", "STK")[0].con_id


def _reported(handle, con_id: int) -> Decimal:
    """The position as IB's last report to the worker says (not counting fills since)."""
    ib = handle.worker.trading.ib
    return sum((Decimal(str(p.position)) for p in ib.positions() if p.contract.conId == con_id), Decimal(0))


def _quiet(handle) -> bool:
    """The guard has nothing scheduled or running (its checks after the last event are done)."""
    return handle.worker.guard.idle()


def _notices(ctx, kind: str) -> list[Notice]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice).where(Notice.kind == kind)))


def _ib_cancels(sim, order_ref: str) -> None:
    """IB cancels one of our orders by itself: the owner hears orderStatus Cancelled, as from TWS."""
    [order] = [o for o in sim.state()["orders"] if o["orderRef"] == order_ref]
    server = sim.sim

    def run() -> None:
        engine = server.engine
        server.apply(engine._cancel(engine.orders[(order["clientId"], order["orderId"])], "Cancelled by IB"))

    sim.call(run)


def _opened_with_late_report(sim, handle, payload: dict, delay_ms: int) -> str:
    """Open long 5 with a bracket while IB's position reports trail the fill by ``delay_ms``; return
    once the report reached the worker and the guard's checks after it are done."""
    sim.set_price("AMD", 143.0)
    sim.fault("position_delay", ms=delay_ms)
    alert_id = add_alert(handle.ctx, payload)
    wait_until(lambda: alert_status(handle.ctx, alert_id) == "filled", timeout=20)
    con_id = _amd(sim)
    wait_until(lambda: _reported(handle, con_id) == 5, timeout=10)  # the late report is in
    wait_until(lambda: _quiet(handle), timeout=10)
    return alert_id


@pytest.mark.e2e
@pytest.mark.parametrize("payload", [BRACKET, TARGET], ids=["bracket", "positionSize"])
@pytest.mark.parametrize("delay_ms", [400, 1000])
def test_late_position_report_keeps_the_new_positions_exits(sim, worker_env, payload, delay_ms):
    handle = WorkerThread(worker_env).start()
    try:
        alert_id = _opened_with_late_report(sim, handle, payload, delay_ms)
        assert _position(sim) == 5
        roles = _roles(sim)
        assert roles == {"tp": ("tp", 5), "sl": ("sl", 5)}, roles  # the bracket's own, untouched
        assert _invariant_7(sim) is None
        [spec] = handle.worker.protection.all()  # the protection record is kept
        assert spec.alert_id == alert_id and spec.wanted_roles == {"tp", "sl"}
        assert _notices(handle.ctx, "unprotected") == []
    finally:
        handle.stop()
    sim.fault("position_delay", ms=0)
    handle = WorkerThread(worker_env).start()  # a restart finds the same protection
    try:
        wait_until(lambda: handle.worker.guard.checks > 0 and _quiet(handle), timeout=10)
        assert _roles(sim) == {"tp": ("tp", 5), "sl": ("sl", 5)} and _invariant_7(sim) is None
        [spec] = handle.worker.protection.all()
        assert spec.alert_id == alert_id
    finally:
        handle.stop()


@pytest.mark.e2e
def test_exits_ib_cancels_after_a_late_report_are_reattached_once_then_alarmed(sim, running_worker):
    ctx = running_worker.ctx
    alert_id = _opened_with_late_report(sim, running_worker, BRACKET, 400)
    assert set(_roles(sim)) == {"tp", "sl"}
    _ib_cancels(sim, f"tv2ib:{alert_id}:sl")
    wait_until(lambda: _roles(sim).get("sl") == ("sl2", 5))  # re-attached once, for the whole position
    assert _invariant_7(sim) is None and _notices(ctx, "unprotected") == []
    _ib_cancels(sim, f"tv2ib:{alert_id}:sl2")  # and cancelled again: the guard does not loop
    [notice] = wait_until(lambda: _notices(ctx, "unprotected"))
    assert "AMD" in notice.text and "long 5" in notice.text and "stop-loss" in notice.text
    assert _position(sim) == 5 and set(_roles(sim)) == {"tp"} and _invariant_7(sim) is None


@pytest.mark.e2e
@pytest.mark.parametrize("delay_ms", [400, 1000])
def test_a_close_whose_report_trails_gets_no_exits_back(sim, running_worker, delay_ms):
    """Long 5 with its exits; an ``exit`` alert closes it while IB's report still says long 5: the
    guard must not re-attach a stop and a target for 5 to the flat position (they would open a
    short if the price crossed them). Once the report shows flat, the protection is forgotten."""
    ctx = running_worker.ctx
    _opened_with_late_report(sim, running_worker, BRACKET, 0)
    assert set(_roles(sim)) == {"tp", "sl"}
    sim.fault("position_delay", ms=delay_ms)
    close_id = add_alert(ctx, {"ticker": "AMD", "action": "exit"})
    wait_until(lambda: alert_status(ctx, close_id) == "filled", timeout=20)
    con_id = _amd(sim)
    wait_until(lambda: _reported(running_worker, con_id) == 0, timeout=10)  # the late report is in
    wait_until(lambda: _quiet(running_worker) and running_worker.worker.protection.all() == [], timeout=10)
    assert _position(sim) == 0 and _exits(sim) == []
    placed = [o["orderRef"].rsplit(":", 1)[1] for o in sim.state()["orders"] if o["clientId"] == CLIENT]
    assert not [leg for leg in placed if leg[:2] in ("tp", "sl") and leg not in ("tp", "sl")], placed
    assert _notices(ctx, "unprotected") == []
