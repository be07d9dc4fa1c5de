"""Position semantics (pure): the action x position table, and invariant 7 as a property.

The property test plays the protocol the worker follows for a decision (exits fitted to what the
closing part leaves, the close, then the open, exits grown after fills, the old protection put back
when IB refuses) with random positions, random working exits (possibly wrong to begin with),
random alerts, random partial fills, refusals and exits triggering in between, and checks after
every step that no stop or target exceeds the position or sits on its opening side.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from worker.decision.guard_rules import GuardInput, guard_decision
from worker.decision.ledger import ExecutionLedger
from worker.decision.positions import (
    PositionIntent,
    PositionRefused,
    WorkingExit,
    decide,
    exit_changes,
    exits_fit,
    toward,
)

D = Decimal


def intent(action: str, qty: int | None = None, **kw) -> PositionIntent:
    return PositionIntent(action=action, quantity=None if qty is None else D(qty), **kw)


TABLE = [
    # position, intent, kind, target, close first, open after
    (0, intent("buy", 10), "open", 10, 0, 10),
    (-10, intent("buy", 4), "reduce", -6, 4, 0),
    (-10, intent("buy", 10), "close", 0, 10, 0),
    (-10, intent("buy", 15), "reverse", 5, 10, 5),
    (-10, intent("buy"), "close", 0, 10, 0),
    (0, intent("sell", 3), "open", -3, 0, 3),
    (10, intent("sell", 4), "reduce", 6, 4, 0),
    (10, intent("sell", 20), "reverse", -10, 10, 10),  # TradingView's reversal: old + new size
    (10, intent("sell"), "close", 0, 10, 0),
    (10, intent("sell", 20, sentiment="bearish"), "reverse", -10, 10, 10),
    (10, intent("sell", 5, sentiment="bullish"), "reduce", 5, 5, 0),
    (10, intent("sell", 20, sentiment="bullish"), "close", 0, 10, 0),  # bullish: never short
    (-10, intent("buy", 3, sentiment="bullish"), "close", 0, 10, 0),  # cannot be long: flat
    (10, intent("sell", 5, sentiment="flat"), "close", 0, 10, 0),
    (10, intent("buy", 1, position_size=D(-10)), "reverse", -10, 10, 10),
    (3, intent("sell", 1, position_size=D(5)), "add", 5, 0, 2),  # positionSize wins over the action
    (5, intent("buy", 5, position_size=D(5)), "none", 5, 0, 0),
    (10, intent("exit"), "close", 0, 10, 0),
    (10, intent("exit", 4), "reduce", 6, 4, 0),
    (10, intent("exit", 40), "close", 0, 10, 0),
    (-10, intent("exit", percent_of_position=D(50)), "reduce", -5, 5, 0),
    (10, intent("exit", percent_of_position=D(33)), "reduce", 7, 3, 0),  # 3.3 rounds down to 3
    (0, intent("exit"), "none", 0, 0, 0),
    (0, intent("buy", 2, sentiment="flat"), "none", 0, 0, 0),
    (10, intent("add", 5), "add", 15, 0, 5),
    (-10, intent("add", 5), "add", -15, 0, 5),
    (-10, intent("add", percent_of_position=D(50)), "add", -15, 0, 5),
    (7, intent("cancel"), "cancel", 7, 0, 0),
    (10, intent("sell", percent_of_position=D(50)), "reduce", 5, 5, 0),  # sell half of a long
    (-9, intent("buy", percent_of_position=D(100)), "close", 0, 9, 0),
]


@pytest.mark.parametrize(("position", "alert", "kind", "target", "close", "opened"), TABLE)
def test_action_by_position_table(position, alert, kind, target, close, opened) -> None:
    decision = decide(D(position), alert)
    assert (decision.kind, decision.target) == (kind, D(target)), decision.reason
    assert (decision.close_qty, decision.open_qty) == (D(close), D(opened))


@pytest.mark.parametrize(
    ("position", "alert", "says"),
    [
        (10, intent("buy", 5), "already long 10: send add or positionSize"),
        (-4, intent("sell", 1), "already short 4"),
        (10, intent("buy", 5, sentiment="bullish"), "already long 10"),
        (0, intent("buy"), "buy needs a quantity when flat"),
        (0, intent("add", 5), "the position is flat"),
        (1, intent("exit", percent_of_position=D(10)), "rounds down to 0"),
        (0, intent("sell", percent_of_position=D(50)), "needs a position: the position is flat"),
        (1, intent("sell", percent_of_position=D(10)), "rounds down to 0"),
    ],
)
def test_refusals_say_why(position, alert, says) -> None:
    with pytest.raises(PositionRefused, match=says):
        decide(D(position), alert)


def test_reasons_read_like_the_trade() -> None:
    assert decide(D(5), intent("buy", 1, position_size=D(5))).reason.startswith("already at target +5")
    assert decide(D(10), intent("sell", 20)).reason == (
        "sell 20: long 10 -> short 10 (close 10, then open 10)"
    )


def test_resuming_toward_a_recorded_target_is_idempotent() -> None:
    """A rerun resumes from IB's position toward the stored absolute target: at the target there
    is nothing left to do, half-way (closed, not yet reopened) only the opening part is left."""
    assert toward(D(-10), D(-10)).kind == "none"
    assert (toward(D(0), D(-10)).close_qty, toward(D(0), D(-10)).open_qty) == (D(0), D(10))
    assert (toward(D(10), D(-10)).close_qty, toward(D(10), D(-10)).open_qty) == (D(10), D(10))


def test_exit_changes_shrink_before_growing_and_drop_wrong_side() -> None:
    exits = [
        WorkingExit("a", "tp", "SELL", D(10)),
        WorkingExit("b", "sl", "SELL", D(4)),
        WorkingExit("c", "sl", "BUY", D(10)),  # on the opening side of a long: must go
    ]
    changes = exit_changes(D(6), exits, frozenset({"tp", "sl"}))
    assert [(c.ref, c.quantity) for c in changes] == [("c", 0), ("a", 6), ("b", 6)]
    assert exit_changes(D(0), exits) == [c for c in exit_changes(D(0), exits) if c.quantity == 0]
    new = exit_changes(D(-3), [], frozenset({"sl"}))
    assert [(c.ref, c.role, c.action, c.quantity) for c in new] == [(None, "sl", "BUY", D(3))]


# ------------------------------------------------------------------ invariant 7 as a property

ACCOUNT, CON_ID = "DU1", 1


class Book:
    """IB's side of one account and contract: the position, tv2ib's working exits, and the
    position reports IB has sent that the worker has not read yet (they trail the executions)."""

    def __init__(self, position: Decimal, exits: list[WorkingExit]) -> None:
        self.position = position
        self.exits = {ex.ref: ex for ex in exits}
        self.serial = 0
        self.executions = 0
        self.ledger = ExecutionLedger()  # the worker's: reports read plus executions since
        self.ledger.report(ACCOUNT, CON_ID, position)
        self.reports: list[Decimal] = []  # sent by IB, not read by the worker yet (in order)

    def apply(self, changes) -> None:
        # a book that already fits must fit after every single change (each is one IB message);
        # one that did not fit (exits left wrong by hand or by a crash) must fit once they are done
        stepwise = exits_fit(self.position, list(self.exits.values())) is None
        for change in changes:
            if change.quantity == 0:
                self.exits.pop(change.ref, None)
            elif change.ref is None:
                self.serial += 1
                ref = f"new{self.serial}"
                self.exits[ref] = WorkingExit(ref, change.role, change.action, change.quantity)
            else:
                old = self.exits[change.ref]
                self.exits[change.ref] = WorkingExit(old.ref, old.role, old.action, change.quantity)
            if stepwise:
                self.check()
        self.check()

    def fill(self, side: str, qty: Decimal) -> None:
        """An execution: the worker hears it at once; IB's position report of it comes later."""
        self.position += qty if side == "BUY" else -qty
        if qty:
            self.executions += 1
            self.ledger.execution(ACCOUNT, CON_ID, f"x{self.executions}", qty if side == "BUY" else -qty)
            self.reports.append(self.position)
        self.check()

    def deliver(self, count: int, coalesce: bool = False) -> None:
        """The next ``count`` reports reach the worker (``coalesce``: only the last of them, as a
        gateway that skips the intermediate ones)."""
        arrived, self.reports = self.reports[:count], self.reports[count:]
        for position in arrived[-1:] if coalesce else arrived:
            self.ledger.report(ACCOUNT, CON_ID, position)

    def trigger(self, role: str, fraction: Decimal) -> None:
        """An exit fills (part of) its quantity. Its own remainder and, by OCA type 2 ("reduce with
        block", IB's overfill protection), its sibling shrink by as much in the same step."""
        of_role = [ex for ex in self.exits.values() if ex.role == role]
        if not of_role:
            return
        ex = of_role[0]
        qty = (ex.quantity * fraction).to_integral_value() or ex.quantity
        for other in list(self.exits.values()):
            left = other.quantity - qty
            if left <= 0:
                del self.exits[other.ref]
            else:
                self.exits[other.ref] = WorkingExit(other.ref, other.role, other.action, left)
        self.fill(ex.action, qty)

    def covered(self) -> set[str]:
        """The roles with an exit on the closing side of the (true) position."""
        closing = "SELL" if self.position > 0 else "BUY"
        return {ex.role for ex in self.exits.values() if self.position and ex.action == closing}

    def check(self) -> None:
        problem = exits_fit(self.position, list(self.exits.values()))
        assert problem is None, problem


class GuardActor:
    """The protective-order guard as an actor (worker/execution/guard.py): it reads the position through the
    ledger (IB's last report read, plus the executions since) and acts on the pure decision
    (worker/decision/guard_rules.py). With ``raw`` it reads the last report alone, as it did before issue
    16 (the property must then fail: see the test below)."""

    def __init__(self, book: Book, raw: bool = False) -> None:
        self.book, self.raw = book, raw
        self.side: int | None = None
        self.wanted: frozenset[str] = frozenset()
        self.attached: set[str] = set()

    def protect(self, position: Decimal, wanted: frozenset[str]) -> None:
        """The job's protection record for a position on ``position``'s side (none when flat)."""
        self.side = (1 if position > 0 else -1) if position else None
        self.wanted, self.attached = wanted, set()

    def look(self) -> None:
        book = self.book
        view = book.ledger.view(ACCOUNT, CON_ID)
        position, settled = (view.reported, True) if self.raw else (view.position, view.settled)
        state = GuardInput(position, tuple(book.exits.values()), self.side, self.wanted, settled,
                           attached=frozenset(self.attached))  # fmt: skip
        decision = guard_decision(state)
        before = book.covered()
        book.apply(decision.changes)  # invariant 7 against IB's true position, change by change
        self.attached |= {c.role for c in decision.changes if c.ref is None}
        if book.position:
            # exits are never removed from a position that is not flat
            assert before <= book.covered(), (
                f"the guard stripped {before - book.covered()} from {book.position}"
            )
            assert not decision.clear_record, f"the guard forgot the protection of {book.position}"
        if decision.clear_record:
            self.side, self.wanted = None, frozenset()


def meanwhile(book: Book, guard: GuardActor | None, outcome) -> None:
    """IB's position reports reach the worker late (some, all or none of those sent); the guard
    may look at the contract (``None``: a job is changing the exits, the guard stays off)."""
    if book.reports:
        count = outcome.draw(st.integers(0, len(book.reports)), label="reports read")
        book.deliver(count, coalesce=outcome.draw(st.booleans(), label="coalesced"))
    # the ledger's promise: whatever the reports read so far, the view is IB's true position
    assert book.ledger.view(ACCOUNT, CON_ID).position == book.position
    if guard is not None and outcome.draw(st.booleans(), label="the guard looks"):
        guard.look()


def run_protocol(book: Book, decision, wanted, outcome, guard: GuardActor) -> bool:
    """What the worker does for a decision, with IB's answers drawn by ``outcome`` and the guard
    looking in between; True when every order of the decision was filled."""
    before = book.position
    protected = frozenset(role for role in ("tp", "sl") if any(e.role == role for e in book.exits.values()))
    guard.protect(before, protected)
    if decision.close_qty:
        # exits fitted to what the closing part leaves, confirmed before the close goes out
        leaves = before - (decision.close_qty if before > 0 else -decision.close_qty)
        book.apply(exit_changes(leaves, list(book.exits.values())))
        if outcome.draw(st.booleans(), label="an exit triggers meanwhile"):
            book.trigger(outcome.draw(st.sampled_from(["tp", "sl"])), D("0.5"))
        meanwhile(book, None, outcome)
        remaining = min(decision.close_qty, abs(book.position))
        filled = outcome.draw(st.integers(0, int(remaining)), label="close filled")
        book.fill(decision.close_side, D(filled))
        meanwhile(book, None, outcome)
        if filled < remaining:  # refused or partly filled: the old protection comes back, resized
            book.apply(exit_changes(book.position, list(book.exits.values()), protected))
            meanwhile(book, guard, outcome)
            return False
    complete = True
    if decision.open_qty and book.position * decision.target >= 0:
        guard.protect(decision.target, wanted)  # the job sets the record before the entry goes out
        step = outcome.draw(st.integers(1, max(1, int(decision.open_qty))), label="fill step")
        filled = D(0)
        while filled < decision.open_qty:  # partial fills, exits grown after each
            part = min(D(step), decision.open_qty - filled)
            if outcome.draw(st.booleans(), label="IB refuses the rest"):
                complete = False
                break
            book.fill(decision.open_side, part)
            filled += part
            meanwhile(book, guard, outcome)  # the guard may look before the exits grow
            book.apply(exit_changes(book.position, list(book.exits.values()), wanted))
            meanwhile(book, guard, outcome)
    book.apply(
        exit_changes(book.position, list(book.exits.values()), wanted if book.position else frozenset())
    )
    meanwhile(book, guard, outcome)
    return complete


exit_st = st.builds(
    WorkingExit,
    ref=st.uuids().map(str),
    role=st.sampled_from(["tp", "sl"]),
    action=st.sampled_from(["BUY", "SELL"]),
    quantity=st.integers(1, 30).map(D),
)
intent_st = st.builds(
    PositionIntent,
    action=st.sampled_from(["buy", "sell", "add", "exit"]),
    quantity=st.one_of(st.none(), st.integers(1, 40).map(D)),
    position_size=st.one_of(st.none(), st.integers(-30, 30).map(D)),
    sentiment=st.sampled_from([None, "bullish", "bearish", "flat"]),
)
book_st = dict(
    position=st.integers(-30, 30).map(D),
    exits=st.lists(exit_st, max_size=4),
    alerts=st.lists(intent_st, min_size=1, max_size=3),
    protect=st.sets(st.sampled_from(["tp", "sl"])).map(frozenset),
    outcome=st.data(),
)


def play(position, exits, alerts, protect, outcome, raw: bool = False) -> None:
    """Alerts back to back against one book, the guard looking in between, IB's position reports
    trailing the fills (across alerts too)."""
    book = Book(position, [])
    book.exits = {ex.ref: ex for ex in exits}  # whatever was working, right or wrong
    # first thing: exits that do not fit the position as it is are brought in line
    book.apply(exit_changes(book.position, list(book.exits.values())))
    guard = GuardActor(book, raw=raw)
    for alert in alerts:
        try:  # the executor decides on the ledger's view (the reports may still trail)
            decision = decide(book.ledger.view(ACCOUNT, CON_ID).position, alert)
        except PositionRefused:
            continue
        if run_protocol(book, decision, protect, outcome, guard) and book.position == decision.target:
            # done as planned: the protection asked for covers the whole position, once
            for role in protect if decision.target else ():
                assert sum(e.quantity for e in book.exits.values() if e.role == role) == abs(decision.target)
        if outcome.draw(st.booleans(), label="a protective exit triggers"):  # later, its report trailing
            book.trigger(
                outcome.draw(st.sampled_from(["tp", "sl"])), outcome.draw(st.sampled_from([D("0.5"), D(1)]))
            )
            meanwhile(book, guard, outcome)
    book.deliver(len(book.reports))  # every report read at last: the ledger agrees with IB
    view = book.ledger.view(ACCOUNT, CON_ID)
    assert view.settled and view.position == book.position
    guard.look()


@settings(max_examples=400, deadline=None)
@given(**book_st)
def test_planned_steps_keep_exits_within_the_position(position, exits, alerts, protect, outcome) -> None:
    play(position, exits, alerts, protect, outcome)


def test_a_guard_reading_the_report_alone_breaks_invariant_7() -> None:
    """The property has teeth: the same guard deciding on IB's last report alone (a report that
    trails the fill) strips a new position's exits or puts exits on a flat one."""

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        report_multiple_bugs=False,
    )
    @given(**book_st)
    def raw(position, exits, alerts, protect, outcome) -> None:
        play(position, exits, alerts, protect, outcome, raw=True)

    with pytest.raises(AssertionError, match="stripped|forgot|working while flat|exceeds"):
        raw()
