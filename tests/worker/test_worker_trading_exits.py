"""The trading room's position primitives against ibsim over TCP (no guard, no recorder).

What the executor and the protective-order guard build on: which of tv2ib's orders are exits
(dormant bracket children are not), which are resting entries, and applying exit changes at IB
with each change confirmed before the next (cancel, shrink by modification, a new exit under a
fresh orderRef).
"""

from __future__ import annotations

from decimal import Decimal

from support import wait_until
from worker_helpers import IBHandle

from ibsim.testing import run_in_thread
from worker.contracts.tickers import resolve_ticker
from worker.decision.model import Leg
from worker.decision.positions import ExitChange, WorkingExit, exit_changes
from worker.ib.orders import exit_role, leg_of

D = Decimal


def _bracket(entry_type: str = "MKT", limit: Decimal | None = None) -> list[Leg]:
    return [
        Leg("entry", "BUY", entry_type, D(10), limit_price=limit, transmit=False),
        Leg("tp", "SELL", "LMT", D(10), limit_price=D(195), tif="GTC", transmit=False, parent_leg="entry"),
        Leg("sl", "SELL", "STP", D(10), stop_price=D(187), tif="GTC", transmit=True, parent_leg="entry"),
    ]


def _place(session: IBHandle, alert_id: str, legs: list[Leg]):
    async def run():
        inst = await session.trading.instrument(resolve_ticker("AAPL"))
        await session.trading.place_legs(alert_id, inst.con_id, legs, 2, lambda leg: None, lambda p, a: None)
        return inst.con_id, inst

    return session.call(run())


def _orders(sim, alert_id: str) -> dict[str, dict]:
    return {o["orderRef"].rsplit(":", 1)[1]: o for o in sim.state()["orders"] if alert_id in o["orderRef"]}


def _wait(predicate, timeout: float = 10.0):
    return wait_until(predicate, timeout=timeout)


def test_exit_roles_from_order_refs():
    assert [exit_role(f"tv2ib:A1:{leg}") for leg in ("tp", "sl", "tp2", "sl13")] == ["tp", "sl", "tp", "sl"]
    assert [
        exit_role(ref) for ref in ("tv2ib:A1:entry", "tv2ib:A1:close", "tv2ib:A1:tpx", "manual", None)
    ] == [None] * 5
    assert leg_of("tv2ib:A1:close") == "close" and leg_of("other:ref") is None


def test_children_under_a_resting_entry_are_dormant_not_exits(sim, session):
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "RESTING1", _bracket("LMT", D(189)))
    _wait(lambda: _orders(sim, "RESTING1").get("entry", {}).get("status") == "Submitted")
    assert session.on_loop(session.trading.working_exits, inst.con_id) == []
    entries = session.on_loop(session.trading.resting_entries, inst.con_id)
    assert [s.order_ref for s in entries] == ["tv2ib:RESTING1:entry"]
    # the prices the plan asked for are readable (to put them back after a refused close)
    assert session.on_loop(session.trading.exit_prices, inst.con_id) == {"tp": D(195), "sl": D(187)}
    sim.set_price("AAPL", 188.5)  # the entry fills: its children become the position's exits
    _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
    exits = sorted(session.on_loop(session.trading.working_exits, inst.con_id), key=lambda e: e.role)
    assert exits == [
        WorkingExit("tv2ib:RESTING1:sl", "sl", "SELL", D(10)),
        WorkingExit("tv2ib:RESTING1:tp", "tp", "SELL", D(10)),
    ]
    assert session.on_loop(session.trading.resting_entries, inst.con_id) == []


def test_apply_exit_changes_cancel_shrink_and_new_each_confirmed(sim, session):
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "LONG1", _bracket())
    _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
    before = _orders(sim, "LONG1")
    changes = [
        ExitChange("tv2ib:LONG1:tp", "tp", "SELL", D(0)),  # cancel
        ExitChange("tv2ib:LONG1:sl", "sl", "SELL", D(4)),  # shrink, re-priced
        ExitChange(None, "tp", "SELL", D(4)),  # a new take-profit: the ref tp is taken -> tp2
    ]
    snaps = session.call(
        session.trading.apply_exit_changes(
            con_id,
            changes,
            alert_id="LONG1",
            prices={"tp": D(196), "sl": D(186)},
            oca_group="tv2ib:LONG1:x",
        )
    )
    # every change is confirmed by IB when the call returns: no waiting needed here
    assert [(s.order_ref, s.status) for s in snaps][:1] == [("tv2ib:LONG1:tp", "Cancelled")]
    after = _orders(sim, "LONG1")
    assert after["tp"]["status"] == "Cancelled"
    assert after["sl"]["orderId"] == before["sl"]["orderId"]  # modified, not replaced
    assert (after["sl"]["quantity"], after["sl"]["auxPrice"], after["sl"]["status"]) == (
        4,
        186.0,
        "Submitted",
    )
    assert (after["tp2"]["action"], after["tp2"]["orderType"], after["tp2"]["quantity"]) == ("SELL", "LMT", 4)
    assert (after["tp2"]["lmtPrice"], after["tp2"]["ocaGroup"], after["tp2"]["tif"]) == (
        196.0,
        "tv2ib:LONG1:x",
        "GTC",
    )
    exits = sorted(session.on_loop(session.trading.working_exits, inst.con_id), key=lambda e: e.role)
    assert [(e.ref, e.quantity) for e in exits] == [("tv2ib:LONG1:sl", D(4)), ("tv2ib:LONG1:tp2", D(4))]
    assert session.on_loop(session.trading.exit_oca_group, inst.con_id, "OTHER") in (
        "tv2ib:LONG1",
        "tv2ib:LONG1:x",
    )


def test_a_fill_while_the_exits_change_stops_the_changes_computed_before_it(sim, session):
    """Long 10, both exits shrunk to 6 ahead of a close of 4; the target, re-priced through the
    market, fills its 6 at once and IB trims the stop to 4 by OCA. The stop's shrink to 6,
    computed for the position before that fill, is not sent: it would restate 6 on a position of 4."""
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "MOVED1", _bracket())
    _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
    changes = [
        ExitChange("tv2ib:MOVED1:tp", "tp", "SELL", D(6)),  # re-priced to 189: marketable
        ExitChange("tv2ib:MOVED1:sl", "sl", "SELL", D(6)),
    ]
    session.call(session.trading.apply_exit_changes(con_id, changes, alert_id="MOVED1",
                                                    prices={"tp": D(189), "sl": D(185)}, oca_group="tv2ib:MOVED1"))  # fmt: skip
    _wait(lambda: session.on_loop(session.trading.position_of, con_id) == 4)
    after = _orders(sim, "MOVED1")
    assert after["tp"]["status"] == "Filled"
    assert (after["sl"]["status"], after["sl"]["remaining"], after["sl"]["auxPrice"]) == (
        "Submitted",
        4,
        187.0,
    )


def test_a_refused_shrink_cancels_the_exit_instead(sim, session):
    """An exit larger than the position the close leaves must not stay: if IB refuses to shrink
    it, it is cancelled (the guard re-attaches one sized to the position afterwards)."""
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "LONG2", _bracket())
    _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
    exits = session.on_loop(session.trading.working_exits, inst.con_id)
    sim.fault("reject_next", reason="Order rejected - reason:no modifications now", code=201)
    changes = exit_changes(D(3), exits)
    assert {c.quantity for c in changes} == {D(3)}
    session.call(
        session.trading.apply_exit_changes(con_id, changes[:1], alert_id="LONG2", prices={}, oca_group="")
    )
    refused = _orders(sim, "LONG2")[changes[0].role]
    assert (refused["status"], refused["quantity"]) == ("Cancelled", 10)
    session.call(
        session.trading.apply_exit_changes(con_id, changes[1:], alert_id="LONG2", prices={}, oca_group="")
    )
    left = session.on_loop(session.trading.working_exits, inst.con_id)
    assert [(e.role, e.quantity) for e in left] == [(changes[1].role, D(3))]


def test_cancel_and_wait_returns_once_ib_confirmed(sim, session):
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "REST2", _bracket("LMT", D(180)))
    _wait(lambda: _orders(sim, "REST2").get("entry", {}).get("status") == "Submitted")
    entries = session.on_loop(session.trading.resting_entries, inst.con_id)
    snaps = session.call(session.trading.cancel_and_wait(entries))
    assert [s.status for s in snaps] == ["Cancelled"]
    # the dormant children went with their parent
    assert {o["status"] for o in _orders(sim, "REST2").values()} == {"Cancelled"}


def test_a_refused_modification_keeps_ibs_terms_in_view(sim, session):
    """IB refuses to re-price an exit: it keeps working as it was, and the trading room reports
    it as IB has it (not the terms it asked for)."""
    sim.set_price("AAPL", 190.0)
    con_id, inst = _place(session, "LONG3", _bracket())
    _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
    sim.fault("reject_next", reason="Order rejected - reason:no modifications now", code=201)
    change = ExitChange("tv2ib:LONG3:sl", "sl", "SELL", D(10))
    session.call(
        session.trading.apply_exit_changes(
            con_id, [change], alert_id="LONG3", prices={"sl": D(180)}, oca_group=""
        )
    )
    assert (_orders(sim, "LONG3")["sl"]["auxPrice"], _orders(sim, "LONG3")["sl"]["status"]) == (
        187.0,
        "Submitted",
    )
    assert session.on_loop(session.trading.exit_prices, inst.con_id)["sl"] == D(187)
    exits = {e.role: e.quantity for e in session.on_loop(session.trading.working_exits, inst.con_id)}
    assert exits == {"tp": D(10), "sl": D(10)}


def test_exits_this_client_id_placed_on_another_account_are_not_this_accounts():
    """The guard and the jobs touch only their own client id's orders ON their account: the client
    id may have traded another account under an earlier IB_ACCOUNT (docs/scaling.md)."""
    with run_in_thread(port=0, control_port=None, farm_notices=False, accounts=("DU1", "DU2")) as sim:
        session = IBHandle(sim.port)
        session.conn.start()
        try:
            assert session.conn.wait_ready(10) and session.conn.account == "DU1"
            sim.set_price("AAPL", 190.0)
            session.conn.account = "DU2"  # the same client id, serving DU2 then
            con_id, inst = _place(session, "ELSEWHERE", _bracket())
            _wait(lambda: len(session.on_loop(session.trading.working_exits, inst.con_id)) == 2)
            session.conn.account = "DU1"  # and DU1 now: DU2's exits are none of its business
            assert session.on_loop(session.trading.working_exits, inst.con_id) == []
            assert session.on_loop(session.trading.exit_prices, inst.con_id) == {}
            assert session.call(session.trading.cancel_working(None)) == []
            assert {o["status"] for o in _orders(sim, "ELSEWHERE").values() if o["parentId"]} == {"Submitted"}
        finally:
            session.conn.stop()
