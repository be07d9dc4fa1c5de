"""What every benchmark script needs: free ports, waiting, a private redis-server and PostgreSQL
database (the ones of ``cli/stack.py``, shared with ``tv2ib replay`` and the tests), one percentile
rule, and the test fakes.

One percentile definition for all figures (nearest rank), so p99 means the same thing in every
script's output. The scripts run as modules from the repository root (``python -m bench.webhook``),
so ``bench``, ``core``, ``cli`` ... import without ``sys.path`` edits.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

from cli.stack import end_process, free_port, private_pg_database, private_redis, wait_until

__all__ = [
    "end_process",
    "free_port",
    "percentile",
    "private_pg_database",
    "private_redis",
    "test_module",
    "wait_until",
]

TESTS = Path(__file__).resolve().parents[1] / "tests"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def test_module(relative_path: str) -> ModuleType:
    """Load a self-contained module of ``tests/`` by its path (e.g. ``fakes/telegram_api.py``, the
    fake Bot API server). ``tests`` is no package (and some installed distributions ship a
    top-level ``tests`` package), so it is loaded from its file rather than imported by name."""
    path = TESTS / relative_path
    spec = importlib.util.spec_from_file_location(f"_tests_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
