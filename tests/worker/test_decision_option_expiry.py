"""The alarm naming the option positions that expire today: tables (pure)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from worker.decision.option_expiry import (
    DEFAULT_ALARM_TIME,
    EXERCISE_RULE,
    Alarmed,
    OptionPosition,
    describe,
    expiry_alarm,
)
from worker.decision.option_target import HeldOption

D = Decimal
NY = ZoneInfo("America/New_York")
FRIDAY = date(2026, 12, 18)
LATER = date(2027, 1, 15)

CALL = OptionPosition("AAPL", HeldOption(11, "C", FRIDAY, D(195), D(2), "AAPL  261218C00195000"))
PUT = OptionPosition("AAPL", HeldOption(12, "P", FRIDAY, D("187.5"), D(-1), "AAPL  261218P00187500"))
SPY = OptionPosition("SPY", HeldOption(21, "P", FRIDAY, D(600), D(3), "SPY   261218P00600000"))
NEXT_MONTH = OptionPosition("AAPL", HeldOption(13, "C", LATER, D(200), D(1), "AAPL  270115C00200000"))
CLOSED = OptionPosition("AAPL", HeldOption(14, "C", FRIDAY, D(190), D(0), "AAPL  261218C00190000"))


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


def named(positions, now, alarmed=Alarmed(), alarm_time=DEFAULT_ALARM_TIME):
    alarm = expiry_alarm(positions, now, alarm_time, alarmed)
    return None if alarm is None else [p.held.con_id for p in alarm.named]


@pytest.mark.parametrize(
    ("positions", "now", "alarmed", "expected"),
    [
        # the expiry day, from 09:30 New York on: every open position expiring that day, once
        ([CALL, PUT], at(FRIDAY, 9, 30), Alarmed(), [11, 12]),
        ([CALL, PUT], at(FRIDAY, 15, 0), Alarmed(), [11, 12]),
        ([CALL, PUT], at(FRIDAY, 9, 29), Alarmed(), None),  # before the alarm time
        ([CALL, PUT], at(FRIDAY, 15, 0), Alarmed(FRIDAY, frozenset({11, 12})), None),  # raised already
        # a contract opened later that day: one more alarm, naming it alone
        ([CALL, PUT], at(FRIDAY, 13, 0), Alarmed(FRIDAY, frozenset({11})), [12]),
        # closed then reopened the same day: named once that day
        ([CALL], at(FRIDAY, 14, 0), Alarmed(FRIDAY, frozenset({11, 12})), None),
        # yesterday's memory does not count today
        ([CALL], at(FRIDAY, 10, 0), Alarmed(date(2026, 12, 17), frozenset({11})), [11]),
        # not today's expiry, or flat: nothing
        ([NEXT_MONTH], at(FRIDAY, 10, 0), Alarmed(), None),
        ([NEXT_MONTH], at(LATER, 10, 0), Alarmed(), [13]),
        ([CLOSED], at(FRIDAY, 10, 0), Alarmed(), None),
        ([], at(FRIDAY, 10, 0), Alarmed(), None),
        # several underlyings in one alarm, by symbol, right and strike
        ([SPY, PUT, CALL, NEXT_MONTH], at(FRIDAY, 10, 0), Alarmed(), [11, 12, 21]),
    ],
)
def test_which_positions_an_alarm_names(positions, now, alarmed, expected) -> None:
    assert named(positions, now, alarmed) == expected


def test_the_memory_after_an_alarm_holds_every_contract_named_that_day() -> None:
    first = expiry_alarm([CALL], at(FRIDAY, 9, 30), DEFAULT_ALARM_TIME, Alarmed())
    assert first is not None and first.after == Alarmed(FRIDAY, frozenset({11}))
    assert expiry_alarm([CALL], at(FRIDAY, 9, 35), DEFAULT_ALARM_TIME, first.after) is None
    second = expiry_alarm([CALL, PUT], at(FRIDAY, 11, 0), DEFAULT_ALARM_TIME, first.after)
    assert second is not None and [p.held.con_id for p in second.named] == [12]
    assert second.after == Alarmed(FRIDAY, frozenset({11, 12}))


def test_the_alarm_time_is_the_setting_given() -> None:
    assert named([CALL], at(FRIDAY, 12, 59), alarm_time=time(13, 0)) is None
    assert named([CALL], at(FRIDAY, 13, 0), alarm_time=time(13, 0)) == [11]


@pytest.mark.parametrize(
    ("position", "price", "text"),
    [
        (CALL, D("198.10"), "long 2 AAPL 261218C00195000 (call 195, in the money by 3.10 at 198.10)"),
        (CALL, D(190), "long 2 AAPL 261218C00195000 (call 195, out of the money by 5.00 at 190.00)"),
        (CALL, D(195), "long 2 AAPL 261218C00195000 (call 195, at the money at 195.00)"),
        (PUT, D("187.49"), "short 1 AAPL 261218P00187500 (put 187.50, in the money by 0.01 at 187.49)"),
        (PUT, D(190), "short 1 AAPL 261218P00187500 (put 187.50, out of the money by 2.50 at 190.00)"),
        # no price at hand (no kept market-data stream on the underlying): said, not guessed
        (CALL, None, "long 2 AAPL 261218C00195000 (call 195, AAPL's price not at hand)"),
        # no local symbol from IB: the symbol and the expiry
        (OptionPosition("AAPL", HeldOption(15, "C", FRIDAY, D(195), D(1))), None,
         "long 1 AAPL 261218 (call 195, AAPL's price not at hand)"),
    ],
)  # fmt: skip
def test_each_position_as_the_alarm_words_it(position, price, text) -> None:
    assert describe(position, price) == text


def test_the_alarm_text_and_its_dedup_key() -> None:
    alarm = expiry_alarm([PUT, CALL, SPY], at(FRIDAY, 10, 0), DEFAULT_ALARM_TIME, Alarmed())
    assert alarm is not None and alarm.symbols == ["AAPL", "SPY"]
    assert alarm.detail({"AAPL": D("198.10")}) == (
        "long 2 AAPL 261218C00195000 (call 195, in the money by 3.10 at 198.10), "
        "short 1 AAPL 261218P00187500 (put 187.50, out of the money by 10.60 at 198.10), "
        "long 3 SPY 261218P00600000 (put 600, SPY's price not at hand); " + EXERCISE_RULE
    )
    assert EXERCISE_RULE.startswith("IB exercises options in the money by 0.01 or more at the close")
    # one notice per account, day and set of contracts: a restart that finds the same ones writes none
    assert alarm.dedup_key("DU123") == "option_expiry:DU123:2026-12-18:11,12,21"
    again = expiry_alarm([CALL, SPY, PUT], at(FRIDAY, 14, 0), DEFAULT_ALARM_TIME, Alarmed())
    assert again is not None and again.dedup_key("DU123") == alarm.dedup_key("DU123")
