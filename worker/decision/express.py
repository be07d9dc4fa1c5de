"""Which decisions run whole on the IB loop (the express path) and which go back to the job thread.

A warm alert's job used to cross threads four times before its first leg went out: to the IB loop
for the look, back to the job thread to decide, to the recorder for the decision's write, and to
the IB loop again to send. On a busy worker each crossing can wait for another thread's turn at the
interpreter. The express path looks, decides, has the decision written and sends in one coroutine
on the IB loop, where the legs leave anyway: the job thread hands the alert over once and waits.

Only a decision that needs nothing the loop must not wait for stays on it. The job thread's path
handles everything else, with the look the express path already took, exactly as before (the
same refusals, in the same words): a risk rule that asks for more inputs (a quote IB must send), a
margin check IB must answer (a cold contract's what-if) or one the cached figure refuses, the
daily-loss halt (it may flatten the account), a refusal, a rehearsal, nothing to do (an exit may
cancel working orders first), and an option alert (chosen on the job thread). The rule is pure;
tests/worker/test_express_rules.py is its table.
"""

from __future__ import annotations

from worker.decision.core import Proposal

# Why a decision leaves the express path (the first that applies), in the order the job thread's
# path would meet them.
OPTION = "an option alert"
RISK_INPUTS = "a risk rule needs more inputs"
NOTHING = "nothing to do"
HALT = "the daily loss limit is reached"
RISK_REFUSAL = "a risk rule refuses it"
REHEARSAL = "a rehearsal (test or dry run)"
COUNTERS = "the risk counters are not in memory"
MARGIN = "the margin check needs IB"


def off_express(
    proposal: Proposal, *, option: bool, counters_at_hand: bool, margin_at_hand: bool | None
) -> str | None:
    """Why this decision must continue on the job thread; None when it stays on the IB loop.

    ``option``: the alert is an option alert; ``counters_at_hand``: the risk counters the rules
    read were in memory (or none are read); ``margin_at_hand``: None when no margin check is due,
    else whether the cached figure settles it without IB (approved, not refused).
    """
    if option:
        return OPTION
    if not counters_at_hand:
        return COUNTERS
    if proposal.missing:
        return RISK_INPUTS
    if proposal.nothing_to_do:
        return NOTHING
    if proposal.risk is not None and proposal.risk.halt_due is not None:
        return HALT
    if proposal.risk_refusal:
        return RISK_REFUSAL
    if proposal.dry_run:
        return REHEARSAL
    if margin_at_hand is False:
        return MARGIN
    return None
