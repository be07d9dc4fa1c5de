"""Everything that talks to IB, in three rooms.

* :mod:`worker.ib.translate`: pure functions, ib_async objects -> :mod:`worker.recording.snapshots`
  records and :class:`~worker.decision.planner.Instrument`, symbol specs -> contract requests;
* :mod:`worker.ib.connection`: the ONE ib_async ``IB`` on its own loop thread, the supervisor
  (connect, backoff, probe, reconcile) and IB's events handed to the recorder;
* :mod:`worker.ib.trading`: what a job asks of IB: contracts, prices, positions, placing legs
  exactly once, cancelling, flattening.

ib_async's camelCase stays inside this package.
"""

from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.trading import ContractNotFound, Placement, Trading

__all__ = ["ContractNotFound", "IBConnection", "IBUnavailable", "Placement", "Trading"]
