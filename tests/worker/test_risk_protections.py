"""The protections' locks as pure tables (worker/risk/protections.py): fills and a clock in, the
locks that hold and the refusal they give out; what the watcher says when they begin and end
(worker/risk/lock_watch.py ``changes``); the protections' fills kept in memory (worker/risk/tally.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from core.risk_protections import DrawdownPause, StopLossGuard
from core.risk_rules import RiskRules
from worker.risk.lock_watch import changes
from worker.risk.protections import Lock, dumps, loads, locks_at, protection_checks
from worker.risk.state import ClosedFillRow
from worker.risk.tally import RiskTally

D = Decimal
T0 = datetime(2026, 11, 30, 19, 2, tzinfo=UTC)  # 14:02 New York (a Monday)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stop(
    minute: float, symbol: str = "AAPL", order: str | None = None, realized: str | None = "-100"
) -> ClosedFillRow:
    ref = order or f"tv2ib:{symbol}{minute}:sl"
    return ClosedFillRow(f"x{symbol}{minute}{ref}", "DU1", "trend", symbol, "sl", ref, at(minute),
                         None if realized is None else D(realized))  # fmt: skip


def closed(minute: float, realized: str, symbol: str = "AAPL", leg: str = "exit") -> ClosedFillRow:
    return ClosedFillRow(f"c{symbol}{minute}{leg}", "DU1", "trend", symbol, leg, f"tv2ib:c{minute}:{leg}", at(minute),
                         D(realized))  # fmt: skip


def rules(**protections) -> RiskRules:
    return RiskRules(
        **protections, sources={key: 'strategy "trend"' for key in protections}, strategy="trend"
    )


COOL = rules(stop_out_cooldown_minutes=D(30))
GUARD = rules(stop_loss_guard=StopLossGuard(3, D(120), D(60)))
GUARD_ALL = rules(stop_loss_guard=StopLossGuard(2, D(60), D(45), "strategy"))
PAUSE = rules(drawdown_pause=DrawdownPause(D(1500), D(1440), D(240)))
TARGET = rules(daily_profit_target=D(2000))


# rules, fills, minutes after T0 of "now", the refusals of the locks that hold (in order)
CASES = [
    # a stop-out locks its ticker for the cooldown; the lock holds until its last second
    (COOL, [stop(0)], 0, ['risk: cooldown 30 min after a stop-out (strategy "trend"): AAPL stopped out at 14:02, '
                          "no new entry on AAPL until 14:32 America/New_York"]),
    (COOL, [stop(0)], 29.99, ["...until 14:32 America/New_York"]),
    (COOL, [stop(0)], 30, []),
    # a fill IB stamped a moment ahead of this clock locks already
    (COOL, [stop(0.5)], 0, ["...AAPL stopped out at 14:02, no new entry on AAPL until 14:32 America/New_York"]),
    # an exit or a take-profit is no stop-out, nor is a loss without a stop-loss
    (COOL, [closed(0, "-500"), closed(1, "-50", leg="tp")], 0, []),
    # a partial stop: one stop-out, from its first fill; the later one extends the lock
    (COOL, [stop(0, order="tv2ib:a:sl"), stop(0.2, order="tv2ib:a:sl")], 20, ["...AAPL stopped out at 14:02, ..."]),
    (COOL, [stop(0), stop(10)], 35, ["...AAPL stopped out at 14:12, no new entry on AAPL until 14:42 ..."]),
    # per ticker: one lock each
    (COOL, [stop(0), stop(5, "MSFT")], 1, ["...AAPL stopped out at 14:02...", "...MSFT stopped out at 14:07..."]),
    # a cooldown of 0 is none; a stop-out past midnight shows the date it ends
    (rules(stop_out_cooldown_minutes=D(0)), [stop(0)], 1, []),
    (COOL, [stop(9 * 60 + 50)], 9 * 60 + 51, ["...AAPL stopped out at 23:52, no new entry on AAPL until "
                                              "2026-12-01 00:22 America/New_York"]),
    # stop-loss guard: the third stop-out within 120 minutes locks the ticker for 60
    (GUARD, [stop(0), stop(50)], 51, []),
    (GUARD, [stop(0), stop(50), stop(100)], 101, ['risk: stop_loss_guard 3 stop-outs within 120 min (strategy "trend"): '
                                                  "AAPL stopped out 3 times from 14:02 to 15:42, no new entry on AAPL "
                                                  "until 16:42 America/New_York"]),
    (GUARD, [stop(0), stop(50), stop(100)], 160, []),
    (GUARD, [stop(0), stop(50), stop(121)], 122, []),  # the first is out of the window
    (GUARD, [stop(0), stop(50, "MSFT"), stop(100)], 101, []),  # per ticker
    # ... or the strategy: any ticker counts and every ticker locks
    (GUARD_ALL, [stop(0), stop(30, "MSFT")], 31, ['risk: stop_loss_guard 2 stop-outs within 60 min (strategy "trend"): '
                                                  "2 stop-outs (AAPL, MSFT) from 14:02 to 14:32, no new entry for "
                                                  'strategy "trend" until 15:17 America/New_York']),
    # drawdown pause: the realized PnL over the window 1,500 below its peak
    (PAUSE, [closed(0, "800"), closed(10, "-1000"), closed(20, "-499")], 21, []),
    (PAUSE, [closed(0, "800"), closed(10, "-1000"), closed(20, "-500")], 21,
     ['risk: drawdown_pause 1,500 USD within 1,440 min (strategy "trend"): the realized PnL fell to -700 USD at '
      "14:22, 1,500 below its peak of +800 in the window, no new entry for strategy \"trend\" until 18:22 "
      "America/New_York"]),
    (PAUSE, [closed(0, "800"), closed(10, "-1000"), closed(20, "-500")], 20 + 240, []),
    # a loss from 0 counts from the window's start (peak 0); an open fill (no realized PnL) is not counted
    (PAUSE, [stop(0, realized=None), closed(5, "-1500.50")], 6, ["...fell to -1,500.50 USD at 14:07, 1,500.50 below "
                                                                 "its peak of 0 in the window..."]),
    # the peak of a day ago is out of a 1440-minute window
    (PAUSE, [closed(-1441, "5000"), closed(0, "-1400")], 1, []),
    # daily profit target: reached, locked until the next trading day (here: the next calendar day)
    (TARGET, [closed(0, "1500"), closed(5, "499.99")], 6, []),
    (TARGET, [closed(0, "1500"), closed(5, "600"), closed(6, "-900")], 7,
     ['risk: daily_profit_target 2,000 USD (strategy "trend"): the realized PnL of the trading day 2026-11-30 reached '
      '+2,100 USD at 14:07, no new entry for strategy "trend" until 17:00 America/New_York '
      "(the next trading day)"]),
    (TARGET, [closed(0, "1500"), closed(5, "600")], 178, []),  # 17:00 New York: the next trading day
    (TARGET, [closed(-22 * 60, "3000")], 0, []),  # yesterday's (16:02 New York)
    (TARGET, [closed(-20 * 60, "3000")], 0, ["...trading day 2026-11-30 reached +3,000 USD at 18:02..."]),  # after 17:00: today's
]  # fmt: skip


@pytest.mark.parametrize(("r", "fills", "now", "expected"), CASES)
def test_each_protection_locks_from_its_fill_and_unlocks_when_its_time_is_up(r, fills, now, expected):
    locks = locks_at(r, "trend", sorted(fills, key=lambda f: f.time), at(now))
    texts = [lock.refusal() for lock in locks]
    assert len(texts) == len(expected), texts
    for text, want in zip(texts, expected, strict=True):
        parts = [p for p in want.split("...") if p]
        assert all(p in text for p in parts), (text, want)
        if not want.startswith("..."):
            assert text.startswith(parts[0]), text


def test_a_friday_target_holds_until_the_next_trading_day_of_the_calendar():
    """A Friday's lock ends when Monday's trading day begins (Sunday 17:00 New York)."""
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 11:00 New York
    fill = ClosedFillRow("x1", "DU1", "trend", "AAPL", "exit", "r", friday, D(2500))

    def monday(day: date) -> date:
        assert day == date(2026, 11, 27)
        return date(2026, 11, 30)

    [lock] = locks_at(TARGET, "trend", [fill], friday + timedelta(days=2), next_day=monday)
    assert lock.until == datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # Sunday 17:00 New York
    assert lock.refusal().endswith("until 2026-11-29 17:00 America/New_York (the next trading day)")
    assert locks_at(TARGET, "trend", [fill], lock.until, next_day=monday) == []


@pytest.mark.parametrize(
    ("r", "fills", "names", "refused"),
    [
        (COOL, [stop(0)], {"AAPL", "NASDAQ:AAPL"}, "stop_out_cooldown_minutes"),
        (COOL, [stop(0)], {"MSFT"}, None),  # another ticker of the strategy
        (COOL, [stop(0, "ES")], {"ES1!", "ES", "ESH7"}, "stop_out_cooldown_minutes"),  # IB's symbol: any month
        (GUARD_ALL, [stop(0), stop(1, "MSFT")], {"TSLA"}, "stop_loss_guard"),  # the whole strategy
        (rules(stop_out_cooldown_minutes=D(30), stop_loss_guard=StopLossGuard(1, D(10), D(90))), [stop(0)],
         {"AAPL"}, "stop_out_cooldown_minutes"),  # the first in the order refuses; both are stored
    ],
)  # fmt: skip
def test_the_check_refuses_the_tickers_a_lock_covers_and_records_every_protection(r, fills, names, refused):
    checks = protection_checks(r, locks_at(r, "trend", fills, at(1)), names)
    failed = [c for c in checks if c.passed is False]
    assert (failed[0].rule if failed else None) == refused
    assert {c.rule for c in checks} == {
        k for k in ("stop_out_cooldown_minutes", "stop_loss_guard") if getattr(r, k)
    }
    if failed:
        assert failed[0].message.startswith("risk: ") and failed[0].value["until"]
        assert failed[0].to_json()["limit"] is not None


def test_the_watcher_says_a_lock_once_an_extension_never_and_why_it_ended():
    first = locks_at(COOL, "trend", [stop(0)], at(1))
    current = {lock.key: lock for lock in first}
    said = changes({}, current, at(1))
    assert [(e["state"], e["symbol"], e["until_text"]) for e in said] == [
        ("locked", "AAPL", "14:32 America/New_York")
    ]
    extended = {lock.key: lock for lock in locks_at(COOL, "trend", [stop(0), stop(10)], at(11))}
    assert changes(current, extended, at(11)) == []
    ended = changes(extended, {}, at(45))
    assert [(e["state"], e["detail"]) for e in ended] == [
        ("unlocked", "its time is up (it held on AAPL until 14:42 America/New_York)")
    ]
    assert changes(extended, {}, at(20))[0]["detail"].startswith("the risk file no longer locks it")
    assert {lock.key: lock for lock in loads(dumps(list(extended.values())))} == extended
    assert loads("not json") == [] and loads('[{"rule": 1}]') == []


def test_the_tally_keeps_each_strategys_fills_once_and_takes_the_realized_pnl_when_it_comes():
    tally = RiskTally()
    sl = stop(0, realized=None)
    tally.apply([sl, sl, closed(1, "50"), ClosedFillRow("y", "DU2", "Trend", "AAPL", "sl", "r", at(2), None)])
    tally.apply([ClosedFillRow(sl.exec_id, "DU1", "trend", "AAPL", "sl", sl.order_ref, sl.time, D(-120))])
    mine = tally.closed("DU1")["trend"]
    assert [(f.exec_id, f.realized) for f in mine] == [
        (sl.exec_id, D(-120)),
        (closed(1, "50").exec_id, D(50)),
    ]
    assert tally.counters("DU1", at(3)).closed == {"trend": mine}
    assert [f.exec_id for f in tally.closed("")["trend"]] == [sl.exec_id, closed(1, "50").exec_id, "y"]
    # two weeks later the old fills are forgotten
    tally.apply([ClosedFillRow("z", "DU1", "trend", "AAPL", "exit", "q", at(16 * 24 * 60), D(1))])
    assert [f.exec_id for f in tally.closed("DU1")["trend"]] == ["z"]


def test_a_lock_reads_back_as_it_was_stored():
    lock = Lock("stop_loss_guard", "Trend", "", at(0), at(60), "stop_loss_guard 2 stop-outs within 60 min",
                "2 stop-outs (AAPL, MSFT) from 14:02 to 14:32", "defaults")  # fmt: skip
    assert loads(dumps([lock])) == [lock] and lock.key == ("stop_loss_guard", "trend", "")
    assert lock.covers({"ANY"}) and lock.what == 'for strategy "Trend"'


def test_the_drawdown_pause_in_one_pass_finds_what_each_window_summed_anew_finds():
    """The pause's one pass (prefix sums, the window's peak in a deque) against the plain reading:
    for each fill, the window's PnL summed from 0 and its peak."""
    import random

    rng = random.Random(21)
    pause = DrawdownPause(D(700), D(90), D(60))
    r = rules(drawdown_pause=pause)
    for _ in range(60):
        minute, fills = 0.0, []
        for n in range(rng.randint(1, 40)):
            minute += rng.choice([0, 0.5, 3, 20, 45])
            fills.append(closed(minute + n * 1e-6, str(rng.randint(-600, 500))))
        now = at(rng.uniform(0, minute + 70))
        expected = None
        for fill in fills:
            window = [f for f in fills if fill.time - timedelta(minutes=90) < f.time <= fill.time]
            running = [sum((f.realized for f in window[:k]), D(0)) for k in range(len(window) + 1)]
            if max(running) - running[-1] >= pause.max_drawdown and fill.time + timedelta(minutes=60) > now:
                expected = fill.time + timedelta(minutes=60)
        found = locks_at(r, "trend", fills, now)
        assert [lock.until for lock in found] == ([expected] if expected else [])
