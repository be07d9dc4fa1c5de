"""A fill while the worker's socket is down (ibsim's fault ``fill_while_away``): on reconnect the
worker asks IB for its executions and records the missed fill exactly once: the alert's state, the
fill row with its commission, one Telegram notice (the fake Bot API), and the guard's exits sized
to what is held (invariant 7). A reconnect that missed nothing records nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fakes.telegram_api import FakeTelegramAPI
from sqlalchemy import func, select
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from core.models import Fill, Notice
from core.services import get_alert
from worker.decision.positions import WorkingExit, exits_fit

OWNER = 111
CLIENT = 7  # worker_env's IB_CLIENT_ID
LIMIT_BRACKET = {
    "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "limit", "limitPrice": 189.5,
    "takeProfit": {"limitPrice": 195}, "stopLoss": {"stopPrice": 185},
}  # fmt: skip


@pytest.fixture
def tg_worker(worker_env: dict[str, str], fake_tg: FakeTelegramAPI) -> Iterator[WorkerThread]:
    env = {**worker_env, **fake_tg.settings(OWNER)}
    handle = WorkerThread(env).start()
    yield handle
    handle.stop()


def _exits(sim) -> dict[str, tuple[float, float]]:
    """role (tp / sl) -> (remaining, price) of tv2ib's working exits at ibsim (one per role)."""
    roles: dict[str, tuple[float, float]] = {}
    for o in sim.state()["orders"]:
        role = o["orderRef"].rsplit(":", 1)[-1][:2]
        if o["clientId"] == CLIENT and role in ("tp", "sl") and o["status"] == "Submitted":
            assert role not in roles, f"two working {role} exits"
            roles[role] = (o["remaining"], o["lmtPrice"] if role == "tp" else o["auxPrice"])
    return roles


def _position(sim) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == "AAPL")


def _fills(ctx, alert_id: str) -> list[Fill]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Fill).where(Fill.alert_id == alert_id)))


def _fill_notices(fake_tg: FakeTelegramAPI, alert_id: str) -> list[str]:
    """The alert's fill notices (each names its commission)."""
    return [
        m.text
        for m in fake_tg.messages(OWNER)
        if f"<code>{alert_id}</code>" in m.text and "commission" in m.text
    ]


def _reconnect(handle: WorkerThread, sim, **fault) -> None:
    """Let ``fault`` drop the worker, and wait until it is back and its reconciliation written."""
    connects = handle.worker.ib.connects
    sim.fault(**fault)
    wait_until(lambda: handle.worker.ib.connects > connects and handle.worker.ib.ready, timeout=20)
    handle.worker.recorder.run(lambda uow: None).result(30)  # barrier: what the reconnect found is written


def test_an_entry_filled_while_away_is_recorded_once_and_protected(sim, tg_worker, fake_tg):
    ctx = tg_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, LIMIT_BRACKET)  # rests below the market; its exits wait under it
    wait_until(lambda: alert_status(ctx, alert_id) == "submitted")
    entry_ref = f"tv2ib:{alert_id}:entry"
    wait_until(
        lambda: any(o["orderRef"] == entry_ref and o["status"] == "Submitted" for o in sim.state()["orders"])
    )
    # while the worker is away, IB fills 4 of the entry and the day ends: the rest of the entry
    # expires and takes its dormant exits with it; nobody told the worker
    answer = sim.fault("fill_while_away", orderRef=entry_ref, quantity=4, price=189.5, seconds=2.0)
    assert answer["filled"] == 4 and answer["dropped"] == 1
    sim.end_of_day()
    assert _position(sim) == 4 and _exits(sim) == {}
    assert _fills(ctx, alert_id) == []
    wait_until(lambda: tg_worker.worker.ib.ready, timeout=20)

    # the fill, once, with its commission; the alert ends with a reason; one notice
    [fill] = wait_until(lambda: _fills(ctx, alert_id), timeout=20)
    wait_until(lambda: _fills(ctx, alert_id)[0].commission is not None)
    assert (fill.leg, fill.side, fill.quantity, fill.price) == ("entry", "BOT", Decimal(4), Decimal("189.5"))
    wait_until(lambda: alert_status(ctx, alert_id) == "cancelled")
    assert get_alert(ctx.sessions, alert_id)["reason"].startswith("entry cancelled after 4/10 filled")
    wait_until(lambda: _fill_notices(fake_tg, alert_id), timeout=20)
    [notice] = _fill_notices(fake_tg, alert_id)
    assert "BUY 4 AAPL @ 189.5" in notice and "commission" in notice, notice
    # the guard sizes the exits to the 4 held, at the plan's prices (invariant 7)
    wait_until(lambda: set(_exits(sim)) == {"tp", "sl"}, timeout=20)
    assert _exits(sim) == {"tp": (4, 195.0), "sl": (4, 185.0)}
    exits = [WorkingExit(role, role, "SELL", Decimal(str(q))) for role, (q, _p) in _exits(sim).items()]
    assert exits_fit(Decimal(str(_position(sim))), exits) is None

    # a reconnect that missed nothing: nothing recorded or sent twice, the exits as they were
    _reconnect(tg_worker, sim, kind="drop")
    assert len(_fills(ctx, alert_id)) == 1 and _exits(sim) == {"tp": (4, 195.0), "sl": (4, 185.0)}
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notice).where(Notice.kind == "fill")) == 1
    assert len(_fill_notices(fake_tg, alert_id)) == 1


def test_a_take_profit_filled_while_away_reduces_the_stop_and_notices_once(sim, tg_worker, fake_tg):
    """IB cuts the stop-loss back with the take-profit's partial fill (one OCA group); the worker
    learns of both on reconnect: the fill once, and the exits still fit the position."""
    ctx = tg_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, {**LIMIT_BRACKET, "orderType": "market", "price": 190.0})
    wait_until(lambda: alert_status(ctx, alert_id) == "filled")
    wait_until(lambda: set(_exits(sim)) == {"tp", "sl"})
    wait_until(lambda: len(_fill_notices(fake_tg, alert_id)) == 1)
    tp_ref = f"tv2ib:{alert_id}:tp"
    _reconnect(tg_worker, sim, kind="fill_while_away", orderRef=tp_ref, quantity=3, price=195.0, seconds=1.5)
    wait_until(lambda: len(_fills(ctx, alert_id)) == 2)
    wait_until(lambda: all(f.commission is not None for f in _fills(ctx, alert_id)))
    tp_fill = next(f for f in _fills(ctx, alert_id) if f.leg == "tp")
    assert (tp_fill.side, tp_fill.quantity) == ("SLD", Decimal(3)) and tp_fill.realized_pnl is not None
    wait_until(lambda: len(_fill_notices(fake_tg, alert_id)) == 2, timeout=20)
    assert "SELL 3 AAPL @ 195" in _fill_notices(fake_tg, alert_id)[1]
    assert _position(sim) == 7 and _exits(sim) == {"tp": (7, 195.0), "sl": (7, 185.0)}
    _reconnect(tg_worker, sim, kind="drop")
    assert len(_fills(ctx, alert_id)) == 2 and len(_fill_notices(fake_tg, alert_id)) == 2
    assert alert_status(ctx, alert_id) == "filled"
