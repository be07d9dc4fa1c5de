"""Options at their expiry, end to end with the real ib_async (and ib_insync) clients over TCP: at
16:00 New York on the expiry day (by the simulator's clock, the control API's /expire or
/end_of_day) an in-the-money long is exercised into the underlying at the strike, an in-the-money
short is assigned, the rest expire worthless, and working orders on the option are cancelled. The
clients hear of it through position and portfolio updates alone, as IB reports it (no execution)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import ib_insync
import pytest
from ib_async import IB, LimitOrder, MarketOrder, Option, Stock
from ibsim_helpers import FakeClock, wait_for

from ibsim.catalog import ContractQuery, build_catalog
from ibsim.engine import Engine
from ibsim.testing import SimThread, run_in_thread

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
#: Monday 2 June 2025, 10:00 in New York; that week's Friday expiry is 20250606
MONDAY = dt.datetime(2025, 6, 2, 10, 0, tzinfo=NEW_YORK).timestamp()
FRIDAY_MORNING = dt.datetime(2025, 6, 6, 10, 0, tzinfo=NEW_YORK).timestamp()
FRIDAY_CLOSE = dt.datetime(2025, 6, 6, 16, 0, tzinfo=NEW_YORK).timestamp()
AAPL_ID = 265598
CLOCK = FakeClock(MONDAY)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    """This module's simulator, on a clock the tests move (back to Monday after each test)."""
    with run_in_thread(port=0, control_port=0, clock=CLOCK) as handle:
        yield handle


@pytest.fixture(autouse=True)
def monday() -> Iterator[None]:
    CLOCK.now = MONDAY
    yield
    CLOCK.now = MONDAY


def option(ib: IB, expiry: str, strike: float, right: str) -> Option:
    (contract,) = ib.qualifyContracts(Option("AAPL", expiry, strike, right, "SMART"))
    return contract


def filled(ib: IB, contract: Option, action: str, quantity: int) -> None:
    trade = ib.placeOrder(contract, MarketOrder(action, quantity))
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")


def held(ib: IB) -> dict[int, tuple[float, float]]:
    """The client's positions: conId -> (position, avgCost)."""
    return {p.contract.conId: (p.position, p.avgCost) for p in ib.positions()}


def cash(sim: SimThread) -> float:
    return next(iter(sim.state()["accountValues"].values()))["TotalCashValue"]


def test_in_the_money_long_call_becomes_shares_at_the_strike_at_fridays_close(
    fresh: SimThread, ib: IB
) -> None:
    call = option(ib, "20250606", 185.0, "C")  # AAPL at 190: five dollars in the money
    filled(ib, call, "BUY", 2)
    take_profit = ib.placeOrder(call, LimitOrder("SELL", 2, 50.0, tif="GTC"))
    wait_for(ib, lambda: take_profit.orderStatus.status == "Submitted")
    errors: list[tuple] = []
    ib.errorEvent += lambda req_id, code, text, *rest: errors.append((req_id, code, text))
    before = cash(fresh)
    CLOCK.now = FRIDAY_CLOSE - 60  # a minute before the close: nothing happens
    ib.sleep(0.6)
    assert held(ib)[call.conId][0] == 2 and take_profit.orderStatus.status == "Submitted"
    CLOCK.now = FRIDAY_CLOSE
    wait_for(ib, lambda: take_profit.orderStatus.status == "Cancelled" and AAPL_ID in held(ib))
    wait_for(ib, lambda: call.conId not in held(ib))
    assert held(ib)[AAPL_ID] == (200.0, 185.0)  # 100 shares a contract, bought at the strike
    assert (take_profit.order.orderId, 202, "Order Canceled - reason:Expired") in errors
    assert len(ib.fills()) == 1  # the option's purchase: an exercise is no execution
    assert not [item for item in ib.portfolio() if item.contract.conId == call.conId]
    (row,) = fresh.state()["expirations"]
    assert (row["outcome"], row["position"], row["shares"], row["underPrice"]) == ("exercised", 2, 200, 190)
    assert (row["conId"], row["strike"], row["expiry"], row["right"]) == (call.conId, 185.0, "20250606", "C")
    assert cash(fresh) == pytest.approx(before - 185.0 * 200)
    # the expired option is listed no more, and an order on its conId finds no contract
    (stock,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    assert ib.reqSecDefOptParams("AAPL", "", "STK", stock.conId)[0].expirations[0] == "20250613"
    late = ib.placeOrder(Option(conId=call.conId, exchange="SMART"), MarketOrder("SELL", 2))
    wait_for(ib, lambda: late.orderStatus.status == "Cancelled")
    assert (late.order.orderId, 200) in {error[:2] for error in errors}


def test_out_of_the_money_long_put_expires_worthless(fresh: SimThread, ib: IB) -> None:
    put = option(ib, "20250606", 180.0, "P")
    (ticker,) = ib.reqTickers(put)
    filled(ib, put, "BUY", 1)
    wait_for(ib, lambda: put.conId in held(ib))
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as http:
        assert http.post("/expire", json={"date": "June"}).status_code == 422
        answer = http.post("/expire", json={"date": "20250606"}).json()
    assert (answer["through"], answer["cancelled"]) == ("20250606", 0)
    (row,) = answer["expirations"]
    assert (row["outcome"], row["position"], row["shares"]) == ("expired", 1, 0)
    wait_for(ib, lambda: put.conId not in held(ib))
    assert AAPL_ID not in held(ib)
    assert not [item for item in ib.portfolio() if item.contract.conId == put.conId]
    values = fresh.state()["accountValues"]["DU1234567"]
    assert values["RealizedPnL"] == pytest.approx(-ticker.ask * 100)  # the premium is lost


def test_short_in_the_money_put_is_assigned_at_the_session_end(fresh: SimThread, ib: IB) -> None:
    CLOCK.now = FRIDAY_MORNING
    short_put = option(ib, "20250606", 195.0, "P")
    short_call = option(ib, "20250606", 200.0, "C")
    next_week = option(ib, "20250613", 195.0, "P")
    for contract in (short_put, short_call, next_week):
        filled(ib, contract, "SELL", 1)
    fresh.set_price("AAPL", 193.0)
    answer = fresh.end_of_day()  # the session of Friday ends: that day's options expire
    outcomes = {(r["conId"], r["outcome"], r["shares"]) for r in answer["expirations"]}
    assert outcomes == {(short_put.conId, "assigned", 100), (short_call.conId, "expired", 0)}
    wait_for(ib, lambda: AAPL_ID in held(ib) and short_put.conId not in held(ib))
    assert held(ib)[AAPL_ID] == (100.0, 195.0)  # the put's writer buys at the strike
    assert short_call.conId not in held(ib)
    assert held(ib)[next_week.conId][0] == -1  # next week's is untouched


def test_ib_insync_sees_a_short_call_assigned(fresh: SimThread, client_id: int) -> None:
    ib = ib_insync.IB()
    ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    try:
        (call,) = ib.qualifyContracts(ib_insync.Option("AAPL", "20250606", 187.5, "C", "SMART"))
        trade = ib.placeOrder(call, ib_insync.MarketOrder("SELL", 3))
        wait_for(ib, lambda: trade.orderStatus.status == "Filled")
        CLOCK.now = FRIDAY_CLOSE + 30
        wait_for(ib, lambda: {p.contract.conId: p.position for p in ib.positions()} == {AAPL_ID: -300})
        (item,) = ib.portfolio()
        assert (item.contract.conId, item.position, item.averageCost) == (AAPL_ID, -300, 187.5)
    finally:
        ib.disconnect()


@pytest.mark.parametrize(
    ("under", "right", "quantity", "outcome", "shares"),
    [
        (190.01, "C", 1, "exercised", 100),  # a cent in the money: OCC's threshold
        (190.005, "C", 1, "expired", 0),  # less than a cent
        (190.01, "C", -2, "assigned", -200),  # the call's writer delivers the shares
        (189.99, "P", -1, "assigned", 100),
        (189.99, "P", 1, "exercised", -100),  # a long put sells the shares
        (190.0, "P", -1, "expired", 0),  # at the money
    ],
)
def test_exercise_threshold_and_directions(
    under: float, right: str, quantity: float, outcome: str, shares: float
) -> None:
    CLOCK.now = FRIDAY_MORNING  # listed on Friday morning, traded by hand
    engine = Engine(build_catalog(dt.date(2025, 6, 2)), clock=CLOCK)
    query = ContractQuery(symbol="AAPL", sec_type="OPT", last_trade_date_or_contract_month="20250606",
                          strike=190.0, right=right, exchange="SMART")  # fmt: skip
    (contract,) = engine.catalog.match(query)
    engine.external_trade("DU1234567", contract.con_id, quantity, 2.0)
    engine.set_price(AAPL_ID, under)
    cash_before = engine.accounts["DU1234567"].cash
    assert engine.expire_options() == []  # not yet: the clock says 10:00
    CLOCK.now = FRIDAY_CLOSE
    engine.expire_options()
    (row,) = engine.expirations
    assert (row.outcome, row.shares) == (outcome, shares)
    assert engine.ledger.quantity("DU1234567", contract.con_id) == 0
    assert engine.ledger.quantity("DU1234567", AAPL_ID) == shares
    assert engine.accounts["DU1234567"].cash == pytest.approx(cash_before - shares * 190.0)
    restored = Engine(engine.catalog, clock=CLOCK)
    restored.load(engine.dump())  # --state keeps what expired
    assert restored.state()["expirations"] == engine.state()["expirations"]
