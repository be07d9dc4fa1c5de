"""The chaos run (``bench/chaos.py``) in its short version: alerts through the whole stack while workers,
gunicorn workers, Redis, PostgreSQL, ibsim and Telegram fail at random; every count must meet its
expectation (nothing lost, no order set or fill twice, notices repeated only within the documented
window, exits always matching the position, no 5xx but the documented 503 while PostgreSQL is down).

It starts its own Redis and PostgreSQL, never the shared ones. ``TV2IB_CHAOS_MINUTES`` (default 1)
and ``TV2IB_CHAOS_SEED`` (default 19) change the run; the log stays in the test's tmp directory and
its path is in every failure message. Longer runs: ``python -m bench.chaos --minutes 10``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from procs import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MINUTES = os.environ.get("TV2IB_CHAOS_MINUTES", "1")
SEED = os.environ.get("TV2IB_CHAOS_SEED", "19")


def test_chaos_run_meets_every_count(tmp_path):
    log = tmp_path / "chaos.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--minutes", MINUTES, "--seed", SEED, "--log", str(log)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the run stops its processes and private servers before it exits
        out, err = proc.communicate(timeout=25)
    where = f"seed {SEED}, log {log}:\n{out[-4000:]}\n{err[-3000:]}"
    assert (tmp_path / "counts.json").exists(), where
    counts = json.loads((tmp_path / "counts.json").read_text())["counts"]
    assert counts["sent"]["value"] > 20, where  # the stream really ran
    assert counts["accepted (2xx)"]["value"] > 0, where
    for name in (
        "lost",
        "stored alerts not terminal (any)",
        "alerts with more than one order set",
        "fills recorded twice",
        "fills at IB never recorded",
        "notices never delivered",
        "moments where the working exits did not match the position, its worker connected >= 5 s",
        "valid alerts refused (4xx)",
        "5xx answers to input",
    ):
        assert counts[name]["value"] == 0, f"{name}: {counts[name]}\n{where}"
    assert counts["notices sent twice"]["ok"], f"notices sent twice: {counts['notices sent twice']}\n{where}"
    assert proc.returncode == 0, where
