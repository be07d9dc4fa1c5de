"""IB's everyday connection failures, played by ibsim's faults (ibsim/server/connection_faults.py)
against a real worker (its IB connection over TCP, its executor, its notifier writing the outbox
on SQLite, real Redis): what a trader checks is the alerts' ends and reasons, the orders at IB, the
client id IB sees, the market-data streams ibsim lists and the alarm notices."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, add_alert, alert_ends, alert_status

from core.models import Notice
from core.services import get_alert, request_flatten

AAPL = 265598
# a market bracket without a price: its take-profit needs IB's price (a market-data stream)
PRICED_BY_IB = {"ticker": "AAPL", "action": "buy", "quantity": 5, "takeProfit": {"percent": 1}}


def notices(handle: WorkerThread, kind: str) -> list[str]:
    with handle.ctx.sessions() as session:
        return list(session.scalars(select(Notice.text).where(Notice.kind == kind).order_by(Notice.id)))


def streams(sim) -> list[int]:
    """The conIds of the market-data streams client 7 (the worker) has open at ibsim."""
    return sorted(line["conId"] for line in sim.state()["marketDataLines"] if line["clientId"] == 7)


def reason(handle: WorkerThread, alert_id: str) -> str:
    return str(get_alert(handle.ctx.sessions, alert_id)["reason"])


def test_reset_window_entries_go_stale_exits_and_flatten_go_out_when_ib_is_back(sim, start_worker):
    handle = start_worker(STALE_ALERT_SECONDS="2")
    ctx, ib = handle.ctx, handle.worker.ib
    sim.set_price("AAPL", 190.0)
    sim.set_price("MSFT", 420.0)
    alert_ends(ctx, PRICED_BY_IB, "filled")
    alert_ends(ctx, {"ticker": "MSFT", "action": "buy", "quantity": 3, "price": 420}, "filled")
    wait_until(lambda: streams(sim) == [AAPL])
    opened = sim.state()["stats"]["mkt_data_streams"]
    # the outage outlasts the worker's longest reconnect backoff (5 s): it reconnects into the 1100
    sim.fault("reset_window", refuseSeconds=2, outageSeconds=6, code=1102)
    wait_until(lambda: not ib.ready, timeout=5)
    exit_id = add_alert(ctx, {"ticker": "AAPL", "action": "exit"})
    entry_id = add_alert(ctx, {"ticker": "TSLA", "action": "buy", "quantity": 1, "price": 250})
    request_flatten(ctx.redis, None, by="test")
    # the exit waits past the 2 s stale limit and goes out once IB is back; the entry goes stale
    wait_until(lambda: alert_status(ctx, exit_id) == "filled", timeout=30)
    assert "waiting for the IB connection" in str(get_alert(ctx.sessions, exit_id)["events"])
    wait_until(lambda: alert_status(ctx, entry_id) == "rejected", timeout=30)
    assert reason(handle, entry_id).startswith("stale:")
    assert not [o for o in sim.state()["orders"] if entry_id in o["orderRef"]]
    wait_until(lambda: not sim.state()["positions"], timeout=30)  # the flatten closed MSFT
    # the same client id throughout; the AAPL stream subscribed again after the reconnect and
    # again after 1102 ("data maintained": IB sent no prices during the outage)
    assert sim.state()["clients"] == [7] and not sim.state()["faults"]["outage"]
    wait_until(lambda: streams(sim) == [AAPL] and sim.state()["stats"]["mkt_data_streams"] >= opened + 2,
               what=lambda: f"streams {streams(sim)}, opened {opened} -> {sim.state()['stats']}")  # fmt: skip


def test_326_after_a_quick_reconnect_is_retried_with_the_same_id_and_alarmed(sim, start_worker):
    handle = start_worker(IB_ALARM_AFTER_SECONDS="1", IB_ALARM_REPEAT_SECONDS="1")
    ib = handle.worker.ib
    sim.fault("hold_session", clientId=7, seconds=6)
    wait_until(lambda: not ib.ready, timeout=5)
    wait_until(
        lambda: any("client id 7 is still in use at IB" in t for t in notices(handle, "ib_lost")), timeout=20
    )
    assert any("IB 326" in t for t in notices(handle, "ib_lost"))
    wait_until(lambda: ib.ready, timeout=30)
    state = sim.state()
    assert state["stats"]["client_id_in_use"] >= 1 and state["clients"] == [7]  # never another id
    wait_until(lambda: notices(handle, "ib_restored"), timeout=10)
    sim.set_price("AAPL", 190.0)
    alert_ends(handle.ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190}, "filled")


def test_a_competing_session_is_named_in_the_alarm_and_recovery_follows(sim, start_worker):
    handle = start_worker(IB_ALARM_AFTER_SECONDS="0.5")
    ctx, ib = handle.ctx, handle.worker.ib
    sim.set_price("AAPL", 190.0)
    alert_ends(ctx, PRICED_BY_IB, "filled")
    wait_until(lambda: streams(sim) == [AAPL])
    connects = ib.connects
    assert sim.fault("competing_session", seconds=3)["streamsEnded"] == 1
    wait_until(lambda: not ib.ready, timeout=5)
    wait_until(lambda: notices(handle, "ib_lost"), timeout=10)
    [lost] = notices(handle, "ib_lost")
    assert "another login took the IB session" in lost and "10197" in lost
    wait_until(lambda: ib.ready, timeout=15)
    wait_until(lambda: notices(handle, "ib_restored"), timeout=10)
    assert ib.connects == connects  # the socket stayed up: no reconnect
    wait_until(lambda: streams(sim) == [AAPL])  # 1101: the stream IB ended is opened again
    alert_ends(ctx, {"ticker": "AAPL", "action": "exit"}, "filled")


@pytest.mark.parametrize("what", ["positions", "openOrders"])
def test_a_connect_whose_answer_never_comes_times_out_reconnects_and_alarms(sim, start_worker, what):
    handle = start_worker(IB_ALARM_AFTER_SECONDS="1", IB_ALARM_REPEAT_SECONDS="1")
    ib = handle.worker.ib
    connects = ib.connects
    sim.fault("stall_sync", what=what, seconds=6)
    wait_until(lambda: not ib.ready, timeout=5)
    wanted = "did not answer the start-up requests"
    wait_until(lambda: any(wanted in t for t in notices(handle, "ib_lost")), timeout=20)
    wait_until(lambda: ib.ready, timeout=30)  # the stall is over: the next connect completes
    assert ib.connects == connects + 1 and sim.state()["clients"] == [7]
    wait_until(lambda: notices(handle, "ib_restored"), timeout=10)


def test_farm_messages_stay_data_only_and_an_entry_needing_a_price_is_refused_naming_the_farm(
    sim, start_worker
):
    handle = start_worker()
    ctx, ib = handle.ctx, handle.worker.ib
    sim.set_price("AAPL", 190.0)
    sim.set_price("MSFT", 420.0)
    connects = ib.connects
    for farm in ("hmds", "secdef"):
        sim.fault("farm", farm=farm, seconds=1)
    sim.fault("farm", farm="market", seconds=10)  # outlasts the two alerts below on a loaded machine
    wait_until(lambda: sim.state()["faults"]["marketFarmBroken"])
    refused = alert_ends(ctx, {**PRICED_BY_IB, "ticker": "MSFT"}, "rejected")
    assert "market data farm is down (IB 2103 Market data farm connection is broken:usfarm)" in reason(
        handle, refused
    )
    # an entry that needs no price from IB goes out: trading is not market data
    alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190}, "filled")
    assert ib.ready and ib.connects == connects  # no reconnect, no teardown
    wait_until(lambda: not sim.state()["faults"]["marketFarmBroken"], timeout=20)
    alert_ends(ctx, {**PRICED_BY_IB, "ticker": "MSFT"}, "filled")
    assert ib.connects == connects and not notices(handle, "ib_lost")


def test_gateway_down_for_hours_repeats_the_alarm_and_announces_what_was_missed(sim, start_worker):
    handle = start_worker(
        STALE_ALERT_SECONDS="1.5", IB_ALARM_AFTER_SECONDS="0.5", IB_ALARM_REPEAT_SECONDS="1"
    )
    ctx, ib = handle.ctx, handle.worker.ib
    sim.set_price("AAPL", 190.0)
    sim.fault("refuse", seconds=6)  # the weekly re-login, in seconds
    wait_until(lambda: not ib.ready, timeout=5)
    stale = [
        add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190}) for _ in range(2)
    ]
    for alert_id in stale:
        wait_until(lambda alert_id=alert_id: alert_status(ctx, alert_id) == "rejected", timeout=15)
        assert reason(handle, alert_id).startswith("stale:")
    wait_until(lambda: len(notices(handle, "ib_lost")) >= 3, timeout=15)
    lost = notices(handle, "ib_lost")
    assert "IB connection lost" in lost[0] and "IB connection still lost (alarm 2)" in lost[1]
    wait_until(lambda: ib.ready, timeout=20)
    wait_until(lambda: notices(handle, "ib_restored"), timeout=10)
    [restored] = notices(handle, "ib_restored")
    assert "missed while down: 2 alerts went stale" in restored
    assert all(alert_id in restored for alert_id in stale)
