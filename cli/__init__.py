"""``tv2ib``: the command line of tv2ib (send alerts, read the admin API, replay a strategy).

A client of the HTTP server (``/webhook`` and ``/api/*``); it never imports ``worker/``. Exit codes
are in :mod:`cli.exitcodes`.
"""
