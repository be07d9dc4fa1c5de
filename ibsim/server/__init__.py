"""The asyncio TCP server: connections, routing of engine events, fault injection, the state file,
the random walk and the operator API, assembled by :class:`SimServer` (see :mod:`.sim_server`).

This package only gathers the names under ``ibsim.server``; modules inside ibsim import the module
that defines what they need.
"""

from ibsim.server.sim_server import SimServer
from ibsim.session import Session

__all__ = ["Session", "SimServer"]
