"""The HTTP control API used by tests and the demo: ``GET /state``, ``GET /health``, ``POST /price``,
``/fault``, ``/reset``, ``/fill_limit``, ``/fill``, ``/notice``, ``/end_of_day``, ``/trade`` (a manual
trade outside the API), ``/account`` (cash account, balance), ``/market_data`` (an account without
live data), ``/halt``, ``/latency`` (the latency profile; GET: it and what it held back).
Transport in :mod:`.http`, routes in :mod:`.routes`.
"""

from ibsim.control.http import ControlServer
from ibsim.control.routes import HttpError

__all__ = ["ControlServer", "HttpError"]
