"""The position a decision reads (pure logic): IB's last position report plus tv2ib's executions
that arrived after it.

IB reports an execution at once and the position it changed a moment later (TWS's position
updates trail the fills; on a busy gateway by a second or more). Deciding on the report alone
sees a position that was just opened as flat, or one just closed as still open. Every decision
that depends on the position (the executor's plan, the guard's exits) therefore reads
:meth:`ExecutionLedger.view`: the last report, plus the live executions of tv2ib's orders that no
report has covered yet.

Which executions a report covers: a report is a snapshot of the position taken some time after
an execution, and reports arrive in the order they were taken, so a report normally equals the
previous report plus the first few executions that arrived since (all of them, or fewer: a
report taken before a later fill and delivered after it, as ibsim's ``position_delay`` and a
busy TWS do). The ledger takes the SHORTEST such run as covered and keeps the rest pending:
taking a longer one (when executions cancel out, +5 then -5) would leave the next report in line
matching nothing. A report that equals no run (someone else traded the contract too: a manual
order, another client) is IB's word for everything up to it: every pending execution counts as
covered.

Nothing here talks to IB; worker/ib/position_reader.py feeds it from ib_async's events (on the IB loop)
and clears it when the connection drops (the snapshot after a reconnect is the whole truth).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

log = logging.getLogger(__name__)

ZERO = Decimal(0)
Key = tuple[str, int]  # account, conId


@dataclass(frozen=True)
class PositionView:
    """One account's position in one contract as a decision reads it."""

    reported: Decimal  # IB's last position report (0 when none came)
    unreported: tuple[Decimal, ...] = ()  # signed quantities of tv2ib's executions since it

    @property
    def position(self) -> Decimal:
        """The position including tv2ib's own executions (what a decision uses)."""
        return self.reported + sum(self.unreported, ZERO)

    @property
    def settled(self) -> bool:
        """True when IB's last report agrees with tv2ib's executions (any still pending add up to
        nothing: a fill and its exit, both a moment old). False: the report contradicts them."""
        return self.position == self.reported

    def __str__(self) -> str:
        if not self.unreported:
            return f"{_num(self.position)} (reported)"
        moves = ", ".join(("+" if q > 0 else "") + _num(q) for q in self.unreported)
        return f"{_num(self.position)} (IB reported {_num(self.reported)}; executions since: {moves})"


SEEN_EXECUTIONS = 10_000


@dataclass
class _Book:
    reported: Decimal = ZERO
    pending: list[tuple[str, Decimal]] = field(default_factory=list)  # (execId, signed quantity)


class ExecutionLedger:
    """Per account and contract: IB's last report and the executions not reported yet."""

    def __init__(self) -> None:
        self._books: dict[Key, _Book] = {}
        # execIds counted (IB may repeat an execution), the newest SEEN_EXECUTIONS only: a repeat
        # comes within moments, and a worker that runs for months must not keep every execId
        self._seen: OrderedDict[str, None] = OrderedDict()

    def execution(self, account: str, con_id: int, exec_id: str, quantity: Decimal) -> None:
        """A live execution of one of our orders (``quantity`` signed: a buy positive)."""
        if not quantity or (exec_id and exec_id in self._seen):
            return
        if exec_id:
            self._seen[exec_id] = None
            if len(self._seen) > SEEN_EXECUTIONS:
                self._seen.popitem(last=False)
        self._books.setdefault((account, con_id), _Book()).pending.append((exec_id, quantity))

    def report(self, account: str, con_id: int, position: Decimal) -> int:
        """IB reports ``position``; returns how many pending executions it covers."""
        book = self._books.setdefault((account, con_id), _Book())
        covered = _covered(book.reported, [q for _, q in book.pending], position)
        if covered is None:
            if book.pending:
                log.info("position report %s for conId %s matches none of tv2ib's %d pending execution(s) "
                         "on %s: taken as including them (someone else traded it too)", position, con_id,
                         len(book.pending), book.reported)  # fmt: skip
            covered = len(book.pending)
        book.reported = position
        del book.pending[:covered]
        return covered

    def view(self, account: str, con_id: int) -> PositionView:
        book = self._books.get((account, con_id))
        if book is None:
            return PositionView(ZERO)
        return PositionView(book.reported, tuple(q for _, q in book.pending))

    def con_ids(self, account: str) -> set[int]:
        """The contracts of ``account`` whose position (report plus pending executions) is not flat."""
        return {
            con_id for (acct, con_id) in self._books if acct == account and self.view(acct, con_id).position
        }

    def reset(self) -> None:
        """The connection dropped: IB's snapshot after the reconnect is the whole truth."""
        self._books.clear()
        self._seen.clear()


def _covered(reported: Decimal, pending: list[Decimal], position: Decimal) -> int | None:
    """The smallest k such that ``reported`` + the first k pending quantities is ``position``."""
    total = reported
    for k in range(len(pending) + 1):
        if total == position:
            return k
        if k < len(pending):
            total += pending[k]
    return None


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")
