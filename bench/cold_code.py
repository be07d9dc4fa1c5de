"""What an idle machine costs code that runs once per alert: one piece of the hot path timed right
after the one before it, and after the process slept.

An alert's path is a few milliseconds of code, each piece run once, seconds after the last alert:
whatever the caches and the CPU held of it is gone by then. A loop that times a function many
times back to back measures it warm, which no alert ever sees. This times intake's validation
(``normalise_alert``, app/webhook/schema.py), pure Python with no I/O, after sleeping ``gap``
seconds before each call.

    .venv/bin/python -m bench.cold_code
"""

from __future__ import annotations

import argparse
import time

from app.webhook.schema import normalise_alert
from bench.benchtools import percentile

ALERT = {"strategy": "bench", "ticker": "AAPL", "action": "buy", "quantity": 1, "orderType": "market",
         "price": 190, "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}, "id": "lat-1"}  # fmt: skip
GAPS = (0.0, 0.001, 0.005, 0.05, 0.25)


def timed(gap: float, runs: int) -> list[float]:
    """µs per call, each call ``gap`` s after the one before ended (0: back to back)."""
    times = []
    for _ in range(runs):
        if gap:
            time.sleep(gap)
        started = time.perf_counter()
        normalise_alert(ALERT)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=60, help="calls per gap")
    args = parser.parse_args()
    timed(0.0, 200)  # imports, first-call caches
    warm = percentile(timed(0.0, args.runs), 50)
    for gap in GAPS:
        p50 = percentile(timed(gap, args.runs), 50)
        print(
            f"normalise_alert after {gap * 1000:6.1f} ms idle: p50 {p50:6.0f} µs ({p50 / warm:.1f}x back to back)"
        )


if __name__ == "__main__":
    main()
