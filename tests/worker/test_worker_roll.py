"""The continuous-futures roll (pure): which month ROOT<n>! is on a given day, the exchange's date,
the cache boundary; the quantity multiplier and the held-old-month rule of a decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.payload import AlertPayload
from worker.contracts.effects import chart_position, decided_spec, scale_intent
from worker.contracts.held_month import HeldMonth, RolledPositionHeld, keep_to_held_month
from worker.contracts.roll import exchange_today, is_current, next_midnight, pick_front, roll_date
from worker.contracts.tickers import ContractSpec
from worker.decision.positions import PositionIntent, decide
from worker.ib.contracts import earlier_months_held
from worker.ib.translate import listed_of, pick_details

CHICAGO = "US/Central"
# ES's quarterly months as IB lists them (third Fridays)
ESZ6, ESH7, ESM7 = "20261218", "20270319", "20270618"


def detail(local: str, last: str, zone: str = CHICAGO, con_id: int = 0) -> SimpleNamespace:
    contract = SimpleNamespace(localSymbol=local, symbol=local[:2], lastTradeDateOrContractMonth=last,
                               conId=con_id or int(last))  # fmt: skip
    return SimpleNamespace(contract=contract, timeZoneId=zone, realExpirationDate=last)


ES = [detail("ESH7", ESH7), detail("ESZ6", ESZ6), detail("ESM7", ESM7)]  # IB's order is not by expiry


def at_chicago(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=ZoneInfo("America/Chicago"))


@pytest.mark.parametrize(
    ("today", "roll_days", "index", "expected"),
    [
        ("2026-12-09", 8, 1, "ESZ6"),  # the day before the roll date
        ("2026-12-10", 8, 1, "ESH7"),  # the roll date (18 Dec − 8 days): rolled
        ("2026-12-11", 8, 1, "ESH7"),  # after it
        ("2026-12-10", 8, 2, "ESM7"),  # ES2! moves along with ES1!
        ("2026-12-09", 8, 2, "ESH7"),
        ("2026-12-02", 15, 1, "ESZ6"),  # a per-root N
        ("2026-12-03", 15, 1, "ESH7"),
        ("2026-12-17", 0, 1, "ESZ6"),  # N = 0: rolls on the last trade date itself
        ("2026-12-18", 0, 1, "ESH7"),
        ("2026-12-18", None, 1, "ESZ6"),  # no roll rule: the front through its last trade date
        ("2026-12-19", None, 1, "ESH7"),
    ],
)
def test_front_month_before_on_and_after_the_roll_date(today, roll_days, index, expected):
    pick = pick_front(listed_of(ES), index, at_chicago(today), roll_days)
    assert pick.chosen is not None and pick.chosen.local_symbol == expected


def test_the_plan_names_the_roll():
    pick = pick_front(listed_of(ES), 1, at_chicago("2026-12-11"), 8)
    doc = pick.to_json()
    assert doc["contract"] == "ESH7" and doc["rolled_from"] == "ESZ6" and doc["rolled_on"] == "2026-12-10"
    assert doc["exchange_date"] == "2026-12-11" and doc["time_zone"] == CHICAGO
    assert doc["rule"] == "front by expiry, rolled 8 calendar day(s) before the last trade date"
    assert doc["rolls_on"] == "2027-03-11"


def test_today_is_the_exchanges_date_not_utcs():
    # 01:00 UTC on the roll date is still the evening before in Chicago: not rolled yet
    late = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    assert exchange_today(late, ZoneInfo(CHICAGO)) == date(2026, 12, 9)
    assert pick_front(listed_of(ES), 1, late, 8).chosen.local_symbol == "ESZ6"
    assert pick_front(listed_of(ES), 1, late + timedelta(hours=6), 8).chosen.local_symbol == "ESH7"


def test_unknown_zone_falls_back_to_the_exchanges():
    odd = [detail("ESZ6", ESZ6, zone="Mars/Olympus"), detail("ESH7", ESH7, zone="Mars/Olympus")]
    late = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)  # 9 Dec in Chicago, 10 Dec in New York
    assert pick_front(listed_of(odd), 1, late, 8, exchange="CME").chosen.local_symbol == "ESZ6"


def test_no_contract_left_is_no_pick():
    assert pick_front(listed_of(ES[:1]), 2, at_chicago("2026-12-01"), 8).chosen is None


def test_explicit_month_is_never_rolled():
    spec = ContractSpec("FUT", "ES", "CME", contract_month="202612")
    chosen, roll = pick_details([ES[1]], spec, at_chicago("2026-12-15"))
    assert chosen == [ES[1]] and roll is None
    assert pick_details([ES[1]], spec, at_chicago("2026-12-19"))[0] == []  # expired


def test_the_cache_boundary_is_the_exchanges_next_midnight():
    now = datetime(2026, 12, 9, 23, 30, tzinfo=UTC)  # 17:30 in Chicago
    assert next_midnight(now, ZoneInfo(CHICAGO)) == datetime(2026, 12, 10, 6, 0, tzinfo=UTC)


@given(
    last=st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 1, 1)),
    offset=st.integers(min_value=-400, max_value=400),
    roll_days=st.integers(min_value=0, max_value=365),
)
def test_a_contract_is_current_exactly_until_its_roll_date(last, offset, roll_days):
    today = last + timedelta(days=offset)
    rolls = roll_date(last, roll_days)
    assert is_current(last, today, roll_days) == (today < rolls)
    assert rolls <= last  # never after expiry


# ------------------------------------------------------------------ the quantity multiplier


MNQ_X10 = ContractSpec("FUT", "MNQ", "CME", front_index=1, quantity_multiplier=Decimal(10))


@pytest.mark.parametrize(
    ("raw", "quantity", "position_size"),
    [
        ({"quantity": 1}, Decimal(10), None),
        ({"quantity": 2, "quantityType": "fixed_quantity"}, Decimal(20), None),
        ({"positionSize": -3}, None, Decimal(-30)),
        ({"quantity": 50, "quantityType": "percent_of_position"}, None, None),  # a fraction: as is
        ({"quantity": 60000, "quantityType": "dollar_amount"}, Decimal(60000), None),  # sized on MNQ
    ],
)
def test_alert_contracts_are_multiplied_sized_quantities_are_not(raw, quantity, position_size):
    payload = AlertPayload.from_json({"ticker": "NQ1!", "action": "buy", **raw})
    intent = PositionIntent("buy", quantity=payload.quantity, position_size=payload.position_size)
    if payload.quantity_type == "percent_of_position":
        intent = PositionIntent("buy", percent_of_position=payload.quantity)
    scaled = scale_intent(intent, payload, MNQ_X10)
    assert scaled.position_size == position_size
    if payload.quantity_type != "percent_of_position":
        assert scaled.quantity == quantity
    else:
        assert scaled.percent_of_position == Decimal(50) and scaled.quantity is None


def test_alert_on_nq_of_one_is_a_decision_for_ten_mnq():
    payload = AlertPayload.from_json({"ticker": "NQ1!", "action": "buy", "quantity": 1})
    decision = decide(
        Decimal(0), scale_intent(PositionIntent("buy", Decimal(1)), payload, MNQ_X10), Decimal(1)
    )
    assert (decision.kind, decision.target) == ("open", Decimal(10))
    assert chart_position(Decimal(10), MNQ_X10) == 1  # the drift check compares in NQ


# ------------------------------------------------------------------ a position held in the old month


def position(local: str, last: str, qty: float, con_id: int) -> SimpleNamespace:
    contract = SimpleNamespace(secType="FUT", symbol="ES", conId=con_id, currency="USD",
                               tradingClass="ES", multiplier="50", lastTradeDateOrContractMonth=last,
                               localSymbol=local)  # fmt: skip
    return SimpleNamespace(contract=contract, position=qty)


FRONT = SimpleNamespace(secType="FUT", symbol="ES", conId=3, currency="USD", tradingClass="ES",
                        multiplier="50", lastTradeDateOrContractMonth=ESH7)  # fmt: skip


def test_earlier_months_held_nearest_expiry_first():
    held = earlier_months_held(
        [
            position("ESH7", ESH7, 1, 3),  # the front itself: not "earlier"
            position("ESZ6", ESZ6, 2, 1),
            position("ESU6", "20260918", -1, 4),
            position("ESM7", ESM7, 5, 2),  # later: not this ticker's old month
            SimpleNamespace(
                contract=SimpleNamespace(**{**vars(position("MESZ6", ESZ6, 1, 9).contract), "symbol": "MES"}),
                position=1,
            ),  # another product  # fmt: skip
        ],
        FRONT,
    )
    assert [(c.localSymbol, q) for c, q in held] == [("ESU6", Decimal(-1)), ("ESZ6", Decimal(2))]


HELD = HeldMonth("ES", "ESZ6", 1, Decimal(2), "ESH7")


@pytest.mark.parametrize(
    ("intent", "kind", "target"),
    [
        (PositionIntent("exit"), "close", Decimal(0)),
        (PositionIntent("sell", sentiment="flat"), "close", Decimal(0)),
        (PositionIntent("sell", Decimal(1)), "reduce", Decimal(1)),
        (PositionIntent("sell", Decimal(4)), "close", Decimal(0)),  # a reversal: only its close goes
        (PositionIntent("buy", position_size=Decimal(-2)), "close", Decimal(0)),
    ],
)
def test_closing_alerts_close_the_held_month(intent, kind, target):
    decision = keep_to_held_month(decide(Decimal(2), intent, Decimal(1)), HELD)
    assert (decision.kind, decision.target) == (kind, target)
    if intent.quantity == Decimal(4) or intent.position_size is not None:
        assert "only the close goes: ES position of 2 is held in ESZ6" in decision.reason


@pytest.mark.parametrize(
    "intent", [PositionIntent("add", Decimal(1)), PositionIntent("buy", position_size=Decimal(3))]
)
def test_opening_while_the_old_month_is_held_is_refused(intent):
    with pytest.raises(RolledPositionHeld) as info:
        keep_to_held_month(decide(Decimal(2), intent, Decimal(1)), HELD)
    assert str(info.value) == "ES position of 2 is held in ESZ6; roll it or flatten before opening ESH7"


def test_a_decided_future_acts_on_the_month_it_was_decided_on():
    spec = ContractSpec("FUT", "ES", "CME", front_index=1, roll_days=8)
    pinned = decided_spec(spec, 637002612)
    assert (pinned.con_id, pinned.front_index) == (637002612, 0)
    assert decided_spec(spec, None) == spec
    stock = ContractSpec("STK", "AAPL", "SMART")
    assert decided_spec(stock, 265598) == stock
