"""What every benchmark script needs: free ports, a private redis-server, one percentile rule.

One percentile definition for all figures (nearest rank), so p99 means the same thing in every
script's output.
"""

from __future__ import annotations

import math

from cli.stack import free_port, private_redis

__all__ = ["free_port", "percentile", "private_redis"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
