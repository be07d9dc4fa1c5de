"""The protective-order guard through a real worker thread and ibsim over TCP (issue 10).

Each test checks what a trader would: IB's position, the exits ibsim reports working (invariant 7
with ``exits_fit``), and the notices table.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_status

from config.settings import Settings
from core import events
from core.models import Alert, Notice, Order
from core.notices import mode_of
from core.payload import AlertPayload
from worker.decision.drift import drift_event, drift_message, report_drift
from worker.decision.positions import WorkingExit, exits_fit
from worker.notify.compose import compose
from worker.recording.protection import ProtectionSpec

CLIENT = 7  # worker_env's IB_CLIENT_ID
BRACKET = {
    "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190.0,
    "takeProfit": {"limitPrice": 195}, "stopLoss": {"stopPrice": 185},
}  # fmt: skip


# ------------------------------------------------------------------ helpers


def _ours(sim) -> list[dict]:
    return [
        o for o in sim.state()["orders"] if o["clientId"] == CLIENT and o["orderRef"].startswith("tv2ib:")
    ]


def _working_exits(sim) -> list[dict]:
    """tv2ib's exits ibsim has working (Submitted: a PreSubmitted child under a resting entry is
    dormant, not an exit yet)."""
    return [
        o
        for o in _ours(sim)
        if o["orderRef"].rsplit(":", 1)[1].rstrip("0123456789") in ("tp", "sl") and o["status"] == "Submitted"
    ]


def _position(sim, con_id: int | None = None) -> float:
    total = 0.0
    for pos in sim.state()["positions"]:
        if con_id is None or pos["conId"] == con_id:
            total += pos["position"] if "position" in pos else pos["quantity"]
    return total


def _invariant_7(sim) -> str | None:
    exits = [
        WorkingExit(
            o["orderRef"], o["orderRef"].rsplit(":", 1)[1][:2], o["action"], Decimal(str(o["remaining"]))
        )
        for o in _working_exits(sim)
    ]
    return exits_fit(Decimal(str(_position(sim))), exits)


def _roles(sim) -> dict[str, tuple[str, float, float | None]]:
    """role -> (leg, remaining, price) of the working exits (one per role expected)."""
    roles = {}
    for o in _working_exits(sim):
        leg = o["orderRef"].rsplit(":", 1)[1]
        role = leg[:2]
        assert role not in roles, f"two working {role} exits: {_working_exits(sim)}"
        roles[role] = (leg, o["remaining"], o["lmtPrice"] if role == "tp" else o["auxPrice"])
    return roles


def _ib_cancels(sim, order_ref: str, reason: str = "Cancelled by IB") -> None:
    """IB cancels one of our orders by itself (a risk check, an exchange purge): the owner hears
    orderStatus Cancelled and error 202, as it would from TWS."""
    [order] = [o for o in sim.state()["orders"] if o["orderRef"] == order_ref]
    server = sim.sim

    def run() -> None:
        engine = server.engine
        server.apply(engine._cancel(engine.orders[(order["clientId"], order["orderId"])], reason))

    sim.call(run)


def _notices(ctx, kind: str) -> list[Notice]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice).where(Notice.kind == kind)))


def _protect(handle, alert_id: str) -> ProtectionSpec:
    """The spec the alert's job handed the guard when it planned (``Guard.protect``): the plan's
    take-profit and stop-loss prices, for a long, named after the alert."""

    def stored_plan():
        with handle.ctx.sessions() as session:
            return session.get(Alert, alert_id).plan

    plan = wait_until(stored_plan)
    legs = {leg["leg"]: leg for leg in plan["legs"]}
    con_id = plan["contract"]["con_id"]
    spec = wait_until(lambda: handle.worker.protection.get(handle.worker.ib.account, con_id), timeout=5)
    assert spec.alert_id == alert_id and spec.side == 1
    assert spec.prices == {"tp": Decimal(legs["tp"]["limit_price"]), "sl": Decimal(legs["sl"]["stop_price"])}
    return spec


def _bracket_filled(sim, handle) -> str:
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(handle.ctx, BRACKET)
    wait_until(lambda: alert_status(handle.ctx, alert_id) == "filled")
    wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
    _protect(handle, alert_id)
    return alert_id


def _entry_filled_4_of_10(sim, handle) -> str:
    """The bracket of 10 whose entry IB fills 4 of (the rest resting): the alert's id, once the guard
    holds its spec."""
    sim.set_price("AAPL", 190.0)
    sim.set_fill_limit(4, symbol="AAPL")
    alert_id = add_alert(handle.ctx, BRACKET)
    wait_until(lambda: _position(sim) == 4)
    _protect(handle, alert_id)
    return alert_id


def _exits_for_the_4_held(sim) -> dict[str, tuple[str, float, float | None]]:
    """Waits for a take-profit and a stop-loss of 4 at the plan's prices (long 4, invariant 7 kept)."""
    wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
    roles = _roles(sim)
    assert roles["tp"][1:] == (4, 195.0) and roles["sl"][1:] == (4, 185.0)
    assert _position(sim) == 4 and _invariant_7(sim) is None
    return roles


def _con_id(sim) -> int:
    return next(o["conId"] for o in _ours(sim))


# ------------------------------------------------------------------ the guard through the worker


def test_partial_entry_fill_then_remainder_cancelled_resizes_exits(sim, running_worker):
    """IB fills 4 of 10, then expires the rest of the DAY entry (its bracket children go with it):
    the guard attaches a take-profit and a stop-loss for the 4 held, at the plan's prices."""
    ctx = running_worker.ctx
    alert_id = _entry_filled_4_of_10(sim, running_worker)
    assert _working_exits(sim) == []  # the children wait dormant under the resting entry
    sim.end_of_day()  # the entry's remainder expires; IB cancels its children with it
    roles = _exits_for_the_4_held(sim)
    assert roles["tp"][0] != "tp" and roles["sl"][0] != "sl"  # new, unique orderRefs

    def legs() -> set[str]:
        with ctx.sessions() as session:
            return {o.leg for o in session.scalars(select(Order).where(Order.alert_id == alert_id))}

    # recorded under the alert that planned them (the recorder writes a moment after IB reports)
    wait_until(lambda: {roles["tp"][0], roles["sl"][0]} <= legs(), what=lambda: f"recorded legs: {legs()}")
    assert _notices(ctx, "unprotected") == []


def test_partial_entry_fill_then_cancel_alert_resizes_exits(sim, running_worker):
    """The trader's ``cancel`` alert cancels the rest of a partly filled entry (not the position):
    the exits come back sized to the 4 held."""
    ctx = running_worker.ctx
    _entry_filled_4_of_10(sim, running_worker)
    cancel_id = add_alert(ctx, {"ticker": "AAPL", "action": "cancel"})
    wait_until(lambda: alert_status(ctx, cancel_id) == "cancelled")
    _exits_for_the_4_held(sim)


def test_refused_reversal_puts_the_old_exits_back(sim, running_worker):
    """Long 10; ``sell 20`` (a reversal): the job cancels the exits, IB refuses the close; the
    position is still long 10, and it must not stay naked: its exits come back at their prices."""
    ctx = running_worker.ctx
    _bracket_filled(sim, running_worker)
    sim.fault("reject_next", reason="Simulated margin check")
    reversal = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "quantity": 20, "orderType": "market"})
    wait_until(lambda: alert_status(ctx, reversal) in ("rejected", "cancelled", "failed"))
    wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
    roles = _roles(sim)
    assert roles["tp"][1:] == (10, 195.0) and roles["sl"][1:] == (10, 185.0)
    assert _position(sim) == 10 and _invariant_7(sim) is None
    assert _notices(ctx, "unprotected") == []
    with ctx.sessions() as session:  # the trader reads why, and that the exits are back
        reason = session.get(Alert, reversal).reason
    assert "Simulated margin check" in reason and "re-attached stop-loss SELL 10 @ 185" in reason


def test_exits_grow_with_an_add_only_as_it_fills(sim, running_worker):
    """Long 10 protected; ``add 5`` fills 2, 2, then 1: after each fill the guard grows the exits to
    the position (modifying them: same orders), never beyond it."""
    ctx = running_worker.ctx
    _bracket_filled(sim, running_worker)
    sim.set_fill_limit(2, symbol="AAPL")
    add_id = add_alert(ctx, {"ticker": "AAPL", "action": "add", "quantity": 5, "orderType": "market"})
    for held in (12, 14, 15):
        wait_until(lambda held=held: _position(sim) == held)
        assert _invariant_7(sim) is None
        wait_until(lambda held=held: {r[1] for r in _roles(sim).values()} == {held})
        assert _invariant_7(sim) is None
        sim.set_price("AAPL", 190.0)  # the next match fills the next 2
    # the recorder writes the alert's state a moment after IB reports the last fill
    wait_until(lambda: alert_status(ctx, add_id) == "filled")
    assert {r[0] for r in _roles(sim).values()} == {"tp", "sl"}  # the bracket's own orders, grown


def test_exit_cancelled_by_ib_is_reattached_once(sim, running_worker):
    ctx = running_worker.ctx
    alert_id = _bracket_filled(sim, running_worker)
    tp_group = next(o["ocaGroup"] for o in _working_exits(sim) if o["orderRef"].endswith(":tp"))
    _ib_cancels(sim, f"tv2ib:{alert_id}:sl")
    wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
    roles = _roles(sim)
    assert roles["sl"] == ("sl2", 10, 185.0) and roles["tp"] == ("tp", 10, 195.0)
    sl2 = next(o for o in _working_exits(sim) if o["orderRef"].endswith(":sl2"))
    assert sl2["ocaGroup"] == tp_group and sl2["action"] == "SELL" and sl2["tif"] == "GTC"
    assert _invariant_7(sim) is None and _position(sim) == 10
    # the re-attached stop still protects: a drop through it closes the position, and the OCA
    # group takes the take-profit with it (nothing left working, nothing overshoots)
    sim.set_price("AAPL", 184.0)
    wait_until(lambda: _position(sim) == 0)
    wait_until(lambda: _working_exits(sim) == [])
    assert _notices(ctx, "unprotected") == []


def test_reattach_refused_raises_the_unprotected_alarm(sim, running_worker):
    ctx = running_worker.ctx
    alert_id = _bracket_filled(sim, running_worker)
    sim.fault("reject_next", reason="Simulated risk check")
    _ib_cancels(sim, f"tv2ib:{alert_id}:sl")
    [notice] = wait_until(lambda: _notices(ctx, "unprotected"))
    assert "AAPL" in notice.text and "long 10" in notice.text and "stop-loss" in notice.text
    assert alert_id in notice.text and "FLATTEN_UNPROTECTED is off" in notice.text

    # re-attached once, not in a loop; the position is left as it is with its take-profit
    def stops():
        with ctx.sessions() as session:
            rows = session.scalars(
                select(Order).where(Order.alert_id == alert_id, Order.leg.startswith("sl"))
            )
            return {o.leg: (o.status, o.last_error) for o in rows}

    wait_until(lambda: stops().get("sl2", ("",))[0] in ("Cancelled", "Inactive"))
    assert set(stops()) == {"sl", "sl2"} and "Simulated risk check" in stops()["sl2"][1]
    assert _position(sim) == 10 and set(_roles(sim)) == {"tp"}
    assert _invariant_7(sim) is None


def test_flatten_unprotected_closes_the_position(sim, worker_env):
    handle = WorkerThread({**worker_env, "FLATTEN_UNPROTECTED": "true"}).start()
    try:
        ctx = handle.ctx
        alert_id = _bracket_filled(sim, handle)
        sim.fault("reject_next", reason="Simulated risk check")
        _ib_cancels(sim, f"tv2ib:{alert_id}:sl")
        wait_until(lambda: _position(sim) == 0)
        wait_until(lambda: _working_exits(sim) == [])  # the lone take-profit is cancelled first
        [notice] = wait_until(lambda: _notices(ctx, "unprotected"))
        assert "closing it at market" in notice.text
        closing = [o for o in _ours(sim) if o["orderRef"].endswith(":flatten")]
        assert [(o["action"], o["quantity"], o["status"]) for o in closing] == [("SELL", 10, "Filled")]
        wait_until(lambda: handle.worker.protection.all() == [])  # flat: the spec has served
    finally:
        handle.stop()


def test_restart_restores_missing_exits_from_the_persisted_spec(sim, worker_env):
    handle = WorkerThread(worker_env).start()
    try:
        alert_id = _bracket_filled(sim, handle)
    finally:
        handle.stop()
    _ib_cancels(sim, f"tv2ib:{alert_id}:sl")  # while no worker is connected
    assert set(_roles(sim)) == {"tp"}
    handle = WorkerThread(worker_env).start()
    try:
        wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
        roles = _roles(sim)
        # the take-profit that kept working is not doubled; the stop comes back at the plan's price
        assert roles["tp"] == ("tp", 10, 195.0) and roles["sl"] == ("sl2", 10, 185.0)
        assert _invariant_7(sim) is None
        [spec] = handle.worker.protection.all()
        assert spec.alert_id == alert_id and spec.wanted_roles == {"tp", "sl"}
    finally:
        handle.stop()


def test_restart_on_postgresql_keeps_the_spec(sim, worker_env, own_pg_url):
    env = {**worker_env, "DATABASE_URL": own_pg_url}
    handle = WorkerThread(env).start()
    try:
        alert_id = _bracket_filled(sim, handle)
    finally:
        handle.stop()
    for leg in ("tp", "sl"):
        _ib_cancels(sim, f"tv2ib:{alert_id}:{leg}")
    handle = WorkerThread(env).start()
    try:
        wait_until(lambda: set(_roles(sim)) == {"tp", "sl"})
        assert {r[0] for r in _roles(sim).values()} == {"tp2", "sl2"} and _invariant_7(sim) is None
    finally:
        handle.stop()


def test_reconnect_puts_back_an_exit_cancelled_while_disconnected(sim, running_worker):
    alert_id = _bracket_filled(sim, running_worker)
    sim.fault("refuse", seconds=2.0)  # drops the worker and keeps it out for 2 s
    wait_until(lambda: not running_worker.worker.ib.ready)
    _ib_cancels(sim, f"tv2ib:{alert_id}:tp")
    wait_until(lambda: set(_roles(sim)) == {"tp", "sl"}, timeout=15)
    assert _roles(sim)["tp"] == ("tp2", 10, 195.0) and _invariant_7(sim) is None


def test_drift_alarm_lands_in_the_notices_table(sim, running_worker):
    ctx = running_worker.ctx
    payload = {"ticker": "AAPL", "action": "sell", "quantity": 20, "prevMarketPosition": "long",
               "prevMarketPositionSize": 10, "strategy": "rsi"}  # fmt: skip
    alert_id = add_alert(ctx, payload, enqueue=False)
    payload = AlertPayload.from_json(payload)  # as the worker loads it
    assert report_drift(running_worker.worker.recorder, alert_id, payload, Decimal(10), account="DU1") is None
    done = report_drift(running_worker.worker.recorder, alert_id, payload, Decimal(-3), account="DU1")
    done.result(10)
    [notice] = _notices(ctx, "position_drift")
    assert "strategy expected long 10, IB has <b>short 3</b>" in notice.text and alert_id in notice.text
    with ctx.sessions() as session:
        messages = [e.message for e in session.get(Alert, alert_id).events]
    assert any(m.startswith("position drift: the strategy expected long 10") for m in messages)
    # once per alert: a rerun of the job does not alarm twice
    report_drift(running_worker.worker.recorder, alert_id, payload, Decimal(-3), account="DU1").result(10)
    assert len(_notices(ctx, "position_drift")) == 1


def test_drift_through_the_job_alarms_and_the_alert_goes_to_its_target(sim, running_worker):
    """The strategy believes it is long 3; IB has long 7 (a manual buy). ``positionSize: 5`` still
    goes to 5 (sells 2), and the alarm says what differed."""
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    sim.trade(7, symbol="AAPL")
    wait_until(lambda: running_worker.worker.trading.position_of(_aapl(sim)) == 7)
    alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "positionSize": 5, "orderType": "market",
                               "prevMarketPosition": "long", "prevMarketPositionSize": 3})  # fmt: skip
    wait_until(lambda: _position(sim) == 5)
    [notice] = wait_until(lambda: _notices(ctx, "position_drift"))
    assert "expected long 3, IB has <b>long 7</b>" in notice.text and "goes on to its target" in notice.text
    # no drift, no alarm
    quiet = add_alert(ctx, {"ticker": "AAPL", "action": "sell", "positionSize": 4, "orderType": "market",
                            "prevMarketPosition": "long", "prevMarketPositionSize": 5})  # fmt: skip
    wait_until(lambda: _position(sim) == 4)
    wait_until(lambda: alert_status(ctx, quiet) == "filled")
    assert len(_notices(ctx, "position_drift")) == 1 and alert_status(ctx, alert_id) == "filled"


def _aapl(sim) -> int:
    return sim.call(sim.sim.engine.find_instruments, "AAPL", "STK")[0].con_id


def test_flat_position_drops_the_spec_and_stray_exits(sim, running_worker):
    """A manual trade closes the position: the guard cancels the exits (they would open a short)."""
    _bracket_filled(sim, running_worker)
    sim.trade(-10, symbol="AAPL")
    wait_until(lambda: _working_exits(sim) == [])
    wait_until(lambda: running_worker.worker.protection.all() == [])
    assert _position(sim) == 0


def test_manual_flip_cancels_the_exits_and_alarms_without_closing(sim, worker_env):
    """The trader flips long 10 to short 5 by hand: the long's SELL exits would add to the short,
    so they go; tv2ib planned nothing for a short, so it alarms and (even with
    FLATTEN_UNPROTECTED) leaves the trader's position alone."""
    handle = WorkerThread({**worker_env, "FLATTEN_UNPROTECTED": "true"}).start()
    try:
        _bracket_filled(sim, handle)
        sim.trade(-15, symbol="AAPL")
        wait_until(lambda: _working_exits(sim) == [])
        [notice] = wait_until(lambda: _notices(handle.ctx, "unprotected"))
        assert "short 5" in notice.text and "manual trade" in notice.text
        assert _position(sim) == -5 and not [o for o in _ours(sim) if o["orderRef"].endswith(":flatten")]
    finally:
        handle.stop()


def test_manual_partial_close_shrinks_the_exits(sim, running_worker):
    _bracket_filled(sim, running_worker)
    sim.trade(-4, symbol="AAPL")
    wait_until(lambda: {r[1] for r in _roles(sim).values()} == {6})
    assert _invariant_7(sim) is None and _roles(sim)["tp"][0] == "tp"  # modified, not replaced


# ------------------------------------------------------------------ drift, notices, settings (pure)


@pytest.mark.parametrize(
    ("prev", "size", "ib", "expected"),
    [
        ("long", 10, Decimal(10), None),
        ("long", 10, Decimal(-3), "the strategy expected long 10 before this alert"),
        ("flat", None, Decimal(5), "the strategy expected flat"),
        ("flat", 0, Decimal(0), None),
        ("short", None, Decimal(-2), None),
        ("short", None, Decimal(2), "expected short"),
        (None, 4, Decimal(-4), None),
        (None, None, Decimal(7), None),
    ],
)
def test_drift_message(prev, size, ib, expected):
    payload = {"ticker": "AAPL", "action": "sell"}
    if prev is not None:
        payload["prevMarketPosition"] = prev
    if size is not None:
        payload["prevMarketPositionSize"] = size
    message = drift_message(AlertPayload.from_json(payload), ib)
    if expected is None:
        assert message is None
    else:
        assert expected in message and "IB has" in message


def test_drift_and_unprotected_notices_read_well():
    event = drift_event("01J", AlertPayload.from_json({"ticker": "AAPL", "action": "sell", "prevMarketPosition": "long",
                        "prevMarketPositionSize": 10, "positionSize": -10, "strategy": "<rsi>"}), Decimal(-3),
                        account="DU1")  # fmt: skip
    draft = compose(event)
    assert draft.kind == "position_drift" and draft.dedup_key == "position_drift:01J"
    assert "expected long 10, IB has <b>short 3</b>" in draft.text and "&lt;rsi&gt;" in draft.text
    assert "goes on to its target" in draft.text
    draft = compose(events.unprotected(account="DU1", con_id=265598, symbol="BRK.B", alert_id="01J",
                                       position=Decimal(10), position_text="long 10", missing=["sl"],
                                       detail="refused", action_taken="left as it is", raised_at=1))  # fmt: skip
    assert draft.kind == "unprotected" and "Position unprotected" in draft.text and "stop-loss" in draft.text


def test_money_alarms_stay_on_when_everything_else_is_off(base_env):
    settings = Settings.from_mapping({**base_env, "NOTIFY": "*=off"})
    assert mode_of(settings, "fill") == "off"
    assert mode_of(settings, "unprotected") == "on" and mode_of(settings, "position_drift") == "on"
    settings = Settings.from_mapping({**base_env, "NOTIFY": "*=off,unprotected=silent"})
    assert mode_of(settings, "unprotected") == "silent"


def test_flatten_unprotected_setting(base_env):
    assert Settings.from_mapping(base_env).flatten_unprotected is False
    assert Settings.from_mapping({**base_env, "FLATTEN_UNPROTECTED": "true"}).flatten_unprotected is True
    with pytest.raises(ValueError, match="FLATTEN_UNPROTECTED"):
        Settings.from_mapping({**base_env, "FLATTEN_UNPROTECTED": "maybe"})


def test_spec_round_trips_through_json():
    spec = ProtectionSpec("DU1", 265598, "01J", 1, {"tp": Decimal("195.5"), "sl": Decimal("185")}, "AAPL")
    assert ProtectionSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError):
        ProtectionSpec("DU1", 1, "01J", 0, {})
