"""ibsim: a simulated TWS / IB Gateway that real ib_async and ib_insync clients trade against over TCP."""

from ibsim.server import SimServer
from ibsim.testing import SimThread, run_in_thread

__all__ = ["SimServer", "SimThread", "run_in_thread"]
