"""What can go wrong in a job, and what the worker does about it.

* :class:`Refused`: the alert cannot be traded as asked (unknown symbol, a bad price, a position it
  does not fit). Permanent: the alert ends ``rejected`` with the message as its reason. Raised,
  never returned: the planner, the symbol mapper, contract qualification and the position logic
  all raise a subclass, and the executor catches this one type.
* :class:`TemporaryError`: IB (or the connection to it) is not there right now. The job waits for
  IB and tries again, within the alert's staleness limit.

Anything else is a bug or an outage of our own parts: the alert ends ``failed`` with the error, or,
when orders already went out, the job is retried so that they are adopted and recorded.
"""

from __future__ import annotations


class Refused(ValueError):
    """The alert cannot be turned into orders; the message is the reason shown to the trader."""


class TemporaryError(RuntimeError):
    """A condition that passes (IB disconnected, a request timed out): retry, do not refuse."""
