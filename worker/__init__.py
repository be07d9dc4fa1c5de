"""The execution worker: consumes the alert queue and holds the one connection to TWS / IB Gateway.

Run with ``python -m worker``. See docs/worker.md for how the rq queue meets
the single long-lived ib_async connection.
"""
