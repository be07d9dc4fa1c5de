"""Everything that talks to IB; nothing of ib_async leaves this package.

* :mod:`worker.ib.translate`: pure functions, ib_async objects -> :mod:`worker.recording.snapshots`
  records and :class:`~worker.decision.model.Instrument`, symbol specs -> contract requests;
* :mod:`worker.ib.connection`: the ONE ib_async ``IB`` on its own loop thread, the supervisor
  (connect, backoff, probe, reconcile) and IB's events handed to the recorder;
* :mod:`worker.ib.trading`: what a job and the guard ask of IB, as typed requests and snapshots
  (contracts, prices, positions, placing legs exactly once, exit changes, cancelling, flattening),
  over the rooms :mod:`~worker.ib.contracts`, :mod:`~worker.ib.orders`, :mod:`~worker.ib.placement`,
  :mod:`~worker.ib.exit_changes`, :mod:`~worker.ib.cancelling`.

ib_async's camelCase stays inside this package.
"""

from worker.ib.connection import IBConnection, IBUnavailable
from worker.ib.trading import ContractNotFound, Placement, Trading

__all__ = ["ContractNotFound", "IBConnection", "IBUnavailable", "Placement", "Trading"]
