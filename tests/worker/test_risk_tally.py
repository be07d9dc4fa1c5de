"""The risk counters in memory (worker/risk/tally.py), pure: rows in, the figures the database's
queries would give out (worker/risk/state.py), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from worker.risk.state import EntryOrderRow, Halt, RealizedFillRow, trading_day
from worker.risk.tally import RiskTally

NOON = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 12:00 New York, trading day 2026-11-30
DAY_START = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # 17:00 New York the evening before
D = Decimal


def fill(exec_id: str, at: datetime, realized: str, account: str = "DU1") -> RealizedFillRow:
    return RealizedFillRow(exec_id, account, at, D(realized))


def entry(ref: str, at: datetime, account: str = "DU1") -> EntryOrderRow:
    return EntryOrderRow(ref, account, at)


def tally_of(*rows: RealizedFillRow | EntryOrderRow) -> RiskTally:
    tally = RiskTally()
    tally.apply(rows)
    return tally


FILLS = [
    fill("a", NOON - timedelta(hours=1), "-1200.50"),
    fill("c", DAY_START + timedelta(minutes=30), "-300"),  # 17:30 New York the day before: today
    fill("d", DAY_START - timedelta(minutes=1), "-5000"),  # 16:59 New York: yesterday
    fill("e", NOON, "-700", account="DU2"),
    fill("f", NOON, "25.125", account=""),  # IB named no account: counted for "" (every account) only
]


@pytest.mark.parametrize(
    ("account", "now", "realized"),
    [
        ("DU1", NOON, D("-1500.50")),
        ("DU2", NOON, D(-700)),
        ("", NOON, D("-2175.375")),  # every account, as the query without an account
        ("DU1", DAY_START, D("-1500.50")),  # 17:00 New York: the new day's first instant
        (
            "DU1",
            DAY_START - timedelta(microseconds=1),
            D("-6500.50"),
        ),  # the day before counts from its start on
        ("DU1", NOON + timedelta(hours=5), D(0)),  # 17:00 New York: the next day
        ("DU3", NOON, D(0)),
    ],
)
def test_realized_pnl_of_the_trading_day_by_account(account, now, realized):
    assert tally_of(*FILLS).realized_today(account, now) == realized


def test_a_fill_counts_once_whoever_records_it_again():
    tally = tally_of(*FILLS)
    tally.apply([fill("a", NOON - timedelta(hours=1), "-1200.50")])  # a reconnect's reconciliation
    tally.load([fill("c", DAY_START + timedelta(minutes=30), "-300")], {})  # the start-up load, late
    assert tally.realized_today("DU1", NOON) == D("-1500.50")


def test_realized_pnl_is_held_to_the_databases_ten_places():
    tally = tally_of(fill("a", NOON, "-0.00000000004"), fill("b", NOON, "-0.00000000006"))
    assert tally.realized_today("DU1", NOON) == D("-0.0000000001")  # 0 + -0.0000000001, as Numeric(24, 10)


@pytest.mark.parametrize(
    ("ages", "account", "count"),
    [
        ([10, 70], "DU1", 1),
        ([0, 59.999999, 60], "DU1", 3),  # created_at >= now - 60 s
        ([60.000001], "DU1", 0),
        ([5, 5], "DU2", 0),  # the rows are DU1's
        ([5, 5], "", 2),  # every account
        ([-3], "DU1", 1),  # created after the reading's now (a clock behind): counted, as the query
    ],
)
def test_opening_orders_of_the_last_minute(ages, account, count):
    rows = [entry(f"tv2ib:{i}:entry", NOON - timedelta(seconds=age)) for i, age in enumerate(ages)]
    assert tally_of(*rows).counters(account, NOON).orders_last_minute == count


def test_an_order_is_counted_once_and_its_account_once_named_stays():
    tally = tally_of(entry("tv2ib:1:entry", NOON, account=""))  # placed: IB has not named the account yet
    assert tally.counters("DU1", NOON).orders_last_minute == 0
    tally.apply([entry("tv2ib:1:entry", NOON), entry("tv2ib:1:entry", NOON)])  # IB's status reports name it
    assert tally.counters("DU1", NOON).orders_last_minute == 1
    tally.load([entry("tv2ib:1:entry", NOON, account="")], {})  # a load that read the row before
    assert tally.counters("DU1", NOON).orders_last_minute == 1


def test_orders_long_out_of_the_window_are_forgotten_and_the_others_kept():
    tally = tally_of(*[entry(f"tv2ib:{i}:entry", NOON + timedelta(seconds=i)) for i in range(300)])
    assert tally.counters("DU1", NOON + timedelta(seconds=299)).orders_last_minute == 61
    assert len(tally._orders) <= 121  # two windows kept, not every order since the start


def test_old_trading_days_are_forgotten_today_is_kept():
    tally = tally_of(*FILLS)
    later = NOON + timedelta(days=3)
    tally.apply([fill("g", later, "-10")])
    assert tally.realized_today("DU1", later) == D(-10)
    assert tally.realized_today("DU1", NOON) == D(-10)  # what was forgotten counts no more
    assert "a" not in tally._fills


def test_the_halt_holds_for_its_trading_day_only():
    halt = Halt(trading_day(NOON), "today's PnL -2,150 reached the daily loss limit 2,000", "t")
    tally = RiskTally()
    tally.set_halt("DU1", halt)
    assert tally.counters("DU1", NOON).halt == halt
    assert tally.halt("DU1", NOON + timedelta(hours=4, minutes=59)) == halt  # 16:59 New York
    assert tally.halt("DU1", NOON + timedelta(hours=5)) is None  # 17:00 New York: lifted
    assert tally.halt("DU2", NOON) is None
    tally.set_halt("DU1", None)
    assert tally.halt("DU1", NOON) is None


def test_the_start_up_load_keeps_a_newer_halt_and_marks_the_tally_loaded():
    today = Halt(trading_day(NOON), "today", "t2")
    tally = RiskTally()
    tally.set_halt("DU1", today)
    assert not tally.loaded
    tally.load([], {"risk:halt:DU1": Halt(trading_day(NOON) - timedelta(days=1), "yesterday", "t1"),
                    "risk:halt:default": today})  # fmt: skip
    assert tally.loaded
    assert tally.halt("DU1", NOON) == today
    assert tally.halt("", NOON) == today  # the account "" is the key "default", as the database's
