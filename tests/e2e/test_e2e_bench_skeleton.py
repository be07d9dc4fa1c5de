"""``python -m bench.skeleton``, the pipe's shape without tv2ib's work, in a short run: it starts its
processes (its own Redis, ibsim, gunicorn with tv2ib's worker class, its worker), every alert's
bracket reaches ibsim through the relay, and it prints the figures bench/README.md quotes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from procs import ROOT

from bench.skeleton import run

pytestmark = pytest.mark.e2e


def test_every_alert_reaches_ibsim_and_each_span_is_measured():
    latencies, spans = run(samples=5, period=0.05)
    assert len(latencies) == 5 and all(0 < ms < 5000 for ms in latencies)
    assert set(spans) == {"post->received", "received->pick-up", "pick-up->on wire", "wire->ibsim"}
    assert all(spans[name] > 0 for name in ("post->received", "received->pick-up", "pick-up->on wire"))


def test_the_cold_code_benchmark_prints_a_line_per_idle_gap():
    done = subprocess.run([sys.executable, "-m", "bench.cold_code", "--runs", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("normalise_alert after")]
    assert len(lines) == 5 and "x back to back" in lines[-1]


def test_the_shape_is_printed_beside_the_warm_row_with_the_difference():
    """``bench.latency --shape``: the skeleton's p50 / p99 and how far the instant warm row's p50 is
    above it (the cold and IB-like rows are not compared)."""
    from bench.latency import Row, shape_line

    rows = [Row("instant: warm (AAPL)", [9.0, 10.0, 11.0], [12.0] * 3),
            Row("IB-like: warm (AAPL)", [30.0] * 3, [90.0] * 3)]  # fmt: skip
    line = shape_line(rows, [4.0, 5.0, 6.0])
    assert line.startswith("shape (bench.skeleton)")
    assert "n=3" in line and "5.0 /" in line
    assert line.endswith("tv2ib's own work at p50: 5.0 ms above it")
