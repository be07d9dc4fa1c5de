"""What the protective-order guard does about one position (pure logic: worker/execution/guard.py acts on it).

Given the position (worker/decision/ledger.py: IB's last report plus tv2ib's executions since, and whether
the report has caught up), tv2ib's working exits and the position's protection record,
:func:`decide` says which exits to cancel, shrink, grow or re-attach
(:func:`worker.decision.positions.exit_changes`), whether the record has served, and which exits are
missing for good (the ``unprotected`` alarm). Nothing here talks to IB or the database.

The rules, in order:

* no record and no exit of tv2ib: nothing to guard;
* exits fit the position: on its closing side, each role sized to the whole position; a role the
  record wants and no exit covers is re-attached (on the record's side only: its prices are for
  that side);
* while an entry with dormant bracket children rests, nothing is added or grown (the children
  cover the entry when it fills), only what exceeds the position shrinks;
* each role is re-attached ONCE per record: missing again, it is alarmed, not placed again;
  a position on the other side than the record's is alarmed at once (tv2ib planned nothing for it);
* the record is cleared only for a flat position with no entry on its way, and only when IB's
  report shows flat too (a flat that only tv2ib's executions show yet is acted on, the exits go,
  but the record waits for the report: it is never cleared on a read the executions contradict).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from worker.decision.positions import ExitChange, WorkingExit, exit_changes


@dataclass(frozen=True)
class GuardInput:
    """What the guard knows of one account and contract when it checks."""

    position: Decimal  # the position view: IB's last report plus tv2ib's executions since
    exits: tuple[WorkingExit, ...] = ()  # tv2ib's active exits (dormant bracket children excluded)
    side: int | None = None  # the record's side (+1 long, -1 short); None: no record
    wanted: frozenset[str] = frozenset()  # the exits the record asks for
    settled: bool = True  # IB's last report shows the same position (no execution contradicts it)
    entry_resting: bool = False  # a tv2ib entry on the contract still works
    dormant_bracket: bool = False  # ... and bracket children wait under it
    attached: frozenset[str] = frozenset()  # exits already re-attached once for this record (tp, sl, sl.2)


@dataclass(frozen=True)
class GuardDecision:
    """What to do: ``changes`` in order, then clear the record and/or raise the alarm."""

    changes: tuple[ExitChange, ...] = ()
    clear_record: bool = False
    alarm: tuple[str, ...] = ()  # roles missing for good (sorted); empty: no alarm
    wrong_side: bool = False  # the alarm is for a position on the other side than the record's
    note: str = ""  # why nothing (else) is done, for the log and the restore notice


def guard_decision(state: GuardInput) -> GuardDecision:
    """The guard's decision for one check (see the module docstring for the rules)."""
    position, has_record = state.position, state.side is not None
    if not has_record and not state.exits:
        return GuardDecision(note="nothing to guard")
    protects = has_record and position * (state.side or 0) > 0
    changes = exit_changes(position, list(state.exits), state.wanted if protects else frozenset())
    if position != 0 and state.dormant_bracket:
        # the bracket's children cover its entry once it fills: add or grow nothing meanwhile
        # (that would double the protection then), only shrink what exceeds the position
        size = {ex.ref: ex.quantity for ex in state.exits}
        shrinks = tuple(c for c in changes if c.ref is not None and c.quantity < size[c.ref])
        note = "" if shrinks else "an entry with its bracket still rests: its children cover it when it fills"
        return GuardDecision(shrinks, note=note)
    # once per exit: a role (``sl``), or a level's (``sl.2``) for a take-profit in levels
    refused_again = {c.role for c in changes if c.ref is None and c.leg in state.attached}
    changes = [c for c in changes if c.ref is not None or c.leg not in state.attached]
    if position == 0:
        clear = has_record and not state.entry_resting and state.settled
        note = "flat: no exits needed" if clear or not has_record else (
            "flat by tv2ib's executions; the record is kept until IB's report shows it"
            if not state.settled else "flat, an entry on its way: the record stays")  # fmt: skip
        return GuardDecision(tuple(changes), clear_record=clear, note=note)
    missing = set(refused_again)
    if has_record and not protects:
        missing |= state.wanted  # tv2ib placed no exits for this side
    note = "exits match the position" if not changes and not missing else ""
    return GuardDecision(tuple(changes), alarm=tuple(sorted(missing)), wrong_side=has_record and not protects,
                         note=note)  # fmt: skip
