"""The position a decision reads (worker/decision/ledger.py) and the guard's decision (worker/decision/guard_rules.py),
as tables (pure: no IB, no database).

The ledger rows are sequences of what the worker hears: ``+5`` / ``-5`` an execution of one of
its orders, ``r5`` IB's position report of 5. Each row says the position a decision then reads and
whether IB's report agrees with it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.decision.guard_rules import GuardInput, guard_decision
from worker.decision.ledger import ExecutionLedger, PositionView
from worker.decision.positions import ExitChange, WorkingExit, shrank, stop_first

D = Decimal


def _heard(events: str, start: int | None = 0) -> PositionView:
    ledger = ExecutionLedger()
    if start is not None:
        ledger.report("DU1", 1, D(start))
    for n, event in enumerate(events.split()):
        if event.startswith("r"):
            ledger.report("DU1", 1, D(event[1:]))
        else:
            ledger.execution("DU1", 1, f"x{n}", D(event))
    return ledger.view("DU1", 1)


LEDGER = [
    # events, the position a decision reads, IB's report agrees
    ("+5", 5, False),  # the entry filled; its report trails: long 5, not flat
    ("+5 r5", 5, True),
    ("+5 r0", 5, False),  # a report repeating the old position does not undo the fill
    ("+2 +3 r5", 5, True),  # one report for two fills
    ("+2 +3 r2", 5, False),  # the first fill's report: the second still counts
    ("+5 -5", 0, True),  # filled, then its exit filled, neither reported: flat, as IB says
    ("+5 -5 r5", 0, False),  # the entry's report arrives after the exit's fill: still flat
    ("+5 -5 r5 r0", 0, True),
    ("+5 -5 +5 r5", 5, True),
    ("+5 -5 +5 r5 r0", 5, False),  # in-order reports taken before the last fill: still long 5
    ("+5 -5 +5 r5 r0 r5", 5, True),
    ("-4 -6 r6", 0, False),  # closing 10 in two fills; the first report shows 6
    ("+5 r7", 7, True),  # someone else bought 2 too: IB's report is the word
]


@pytest.mark.parametrize(("events", "position", "agrees"), LEDGER)
def test_ledger_reads_the_report_plus_the_executions_since(events, position, agrees) -> None:
    start = 10 if events.startswith("-4") else 0
    view = _heard(events, start)
    assert (view.position, view.settled) == (D(position), agrees), view


def test_ledger_counts_an_execution_once_per_account_and_forgets_on_reset() -> None:
    ledger = ExecutionLedger()
    ledger.execution("DU1", 1, "x1", D(5))
    ledger.execution("DU1", 1, "x1", D(5))  # IB repeats an execution
    ledger.execution("DU2", 1, "x2", D(3))
    assert ledger.view("DU1", 1).position == 5 and ledger.view("DU2", 1).position == 3
    assert ledger.view("DU1", 2) == PositionView(D(0))
    ledger.reset()  # the connection dropped: the snapshot after the reconnect is the truth
    ledger.report("DU1", 1, D(5))
    assert ledger.view("DU1", 1) == PositionView(D(5))
    assert "IB reported 0; executions since: +5" in str(_heard("+5"))


def test_ledger_remembers_recent_execution_ids_only_and_lists_open_contracts() -> None:
    from worker.decision.ledger import SEEN_EXECUTIONS

    ledger = ExecutionLedger()
    for n in range(SEEN_EXECUTIONS + 50):  # a long session: every execution reported in turn
        ledger.execution("DU1", 1, f"x{n}", D(1))
        ledger.report("DU1", 1, D(n + 1))
    last = f"x{SEEN_EXECUTIONS + 49}"
    ledger.execution("DU1", 1, last, D(1))  # a repeat of a recent one is still recognised
    assert ledger.view("DU1", 1).position == SEEN_EXECUTIONS + 50
    assert len(ledger._seen) == SEEN_EXECUTIONS  # bounded, whatever the session's length
    ledger.execution("DU1", 2, "y", D(-2))  # a position only our execution shows yet
    ledger.report("DU2", 3, D(4))  # another account's
    ledger.report("DU1", 4, D(0))
    assert ledger.con_ids("DU1") == {1, 2}


# ------------------------------------------------------------------ the guard's decision


def tp(qty: int, action: str = "SELL", ref: str = "tp") -> WorkingExit:
    return WorkingExit(f"tv2ib:A:{ref}", "tp", action, D(qty))


def sl(qty: int, action: str = "SELL", ref: str = "sl") -> WorkingExit:
    return WorkingExit(f"tv2ib:A:{ref}", "sl", action, D(qty))


BOTH = frozenset({"tp", "sl"})

GUARD = [
    # name, input, changes as (ref leg or None, role, action, qty), clear the record, alarm
    ("nothing to guard", GuardInput(D(5)), [], False, ()),
    ("exits match the position", GuardInput(D(5), (tp(5), sl(5)), 1, BOTH), [], False, ()),
    ("a new position whose report trails: its exits stay",
     GuardInput(D(5), (tp(5), sl(5)), 1, BOTH, settled=False), [], False, ()),
    ("flat, IB agrees, no entry: exits go, the record has served",
     GuardInput(D(0), (tp(5), sl(5)), 1, BOTH), [("tp", "tp", "SELL", 0), ("sl", "sl", "SELL", 0)], True, ()),
    ("flat by executions IB has not reported: exits go, the record stays",
     GuardInput(D(0), (tp(5), sl(5)), 1, BOTH, settled=False),
     [("tp", "tp", "SELL", 0), ("sl", "sl", "SELL", 0)], False, ()),
    ("closed by fills while the report still shows 5: nothing re-attached for 5",
     GuardInput(D(0), (), 1, BOTH, settled=False), [], False, ()),
    ("flat with an entry on its way: the record stays", GuardInput(D(0), (), 1, BOTH, entry_resting=True),
     [], False, ()),
    ("no exits: re-attached for the whole position", GuardInput(D(5), (), 1, BOTH),
     [(None, "sl", "SELL", 5), (None, "tp", "SELL", 5)], False, ()),
    ("a short's exits buy", GuardInput(D(-3), (tp(3, "BUY"),), -1, BOTH), [(None, "sl", "BUY", 3)], False, ()),
    ("re-attached once already: alarmed, not placed again",
     GuardInput(D(5), (tp(5),), 1, BOTH, attached=frozenset({"sl"})), [], False, ("sl",)),
    ("an add filled: exits grow", GuardInput(D(8), (tp(5), sl(5)), 1, BOTH),
     [("tp", "tp", "SELL", 8), ("sl", "sl", "SELL", 8)], False, ()),
    ("part closed: exits shrink", GuardInput(D(3), (tp(5), sl(5)), 1, BOTH),
     [("tp", "tp", "SELL", 3), ("sl", "sl", "SELL", 3)], False, ()),
    ("an exit on the opening side goes", GuardInput(D(5), (tp(5), sl(5, "BUY")), 1, frozenset({"tp"})),
     [("sl", "sl", "BUY", 0)], False, ()),
    ("deliberately unprotected: nothing added, no alarm", GuardInput(D(5), (), 1, frozenset()), [], False, ()),
    ("the record is for a long, IB has a short: its exits go, alarmed",
     GuardInput(D(-5), (tp(5), sl(5)), 1, BOTH), [("tp", "tp", "SELL", 0), ("sl", "sl", "SELL", 0)], False,
     ("sl", "tp")),
    ("an entry with its bracket rests: nothing added", GuardInput(D(2), (), 1, BOTH, entry_resting=True,
     dormant_bracket=True), [], False, ()),
    ("an entry with its bracket rests: only what exceeds shrinks",
     GuardInput(D(2), (tp(4),), 1, BOTH, entry_resting=True, dormant_bracket=True),
     [("tp", "tp", "SELL", 2)], False, ()),
    ("stray exits without a record on a flat position go", GuardInput(D(0), (tp(5),)),
     [("tp", "tp", "SELL", 0)], False, ()),
]  # fmt: skip


@pytest.mark.parametrize(("name", "state", "changes", "clear", "alarm"), GUARD, ids=[row[0] for row in GUARD])
def test_guard_decision(name, state, changes, clear, alarm) -> None:
    decision = guard_decision(state)
    got = [
        (c.ref.rsplit(":", 1)[1] if c.ref else None, c.role, c.action, c.quantity) for c in decision.changes
    ]
    assert got == [(ref, role, action, D(qty)) for ref, role, action, qty in changes]
    assert (decision.clear_record, decision.alarm) == (clear, alarm), decision
    if not changes and not clear and not alarm:
        assert decision.note  # says why nothing is done


@pytest.mark.parametrize(
    ("before", "now", "stop"),
    [
        (10, 4, True),  # a take-profit filled part: exits sized for 10 may exceed 4
        (10, 0, True),  # flat
        (10, -2, True),  # past flat: exits on the opening side
        (-6, -2, True),
        (10, 15, False),  # an add's own entry filled: exits sized for 10 never exceed 15
        (-6, -9, False),
        (10, 10, False),
        (0, 5, False),  # from flat: nothing was sized for a position
    ],
)
def test_exit_changes_stop_once_the_position_shrinks_under_them(before, now, stop):
    assert shrank(Decimal(before), Decimal(now)) is stop


def test_repricing_moves_the_stops_before_the_targets_keeping_each_roles_order():
    changes = [ExitChange("tp", "tp", "SELL", Decimal(5)), ExitChange("sl", "sl", "SELL", Decimal(0)),
               ExitChange(None, "sl", "SELL", Decimal(5)), ExitChange("tp2", "tp", "SELL", Decimal(5))]  # fmt: skip
    assert [(c.ref, c.role) for c in stop_first(changes)] == [
        ("sl", "sl"), (None, "sl"), ("tp", "tp"), ("tp2", "tp")
    ]  # fmt: skip
