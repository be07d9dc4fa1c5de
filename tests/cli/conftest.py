"""The command line against real processes: ``.venv/bin/tv2ib`` run as a subprocess, talking to a
real gunicorn + worker + ibsim (:class:`cli.stack.ProcessStack`, the core of tests/e2e/procs.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.stack import ProcessStack

TV2IB = Path(sys.executable).with_name("tv2ib")  # the console script installed next to this Python


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``tv2ib ARGS`` with exactly ``env`` (plus PATH) in ``cwd``; never raises on a non-zero exit."""
    full_env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env}
    return subprocess.run([str(TV2IB), *args], env=full_env, cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


@pytest.fixture
def cli_stack(tmp_path: Path, base_env: dict[str, str]) -> Iterator[ProcessStack]:
    """ibsim (AAPL at 190) + gunicorn + worker on free ports, the test's SQLite file and Redis DB."""
    (tmp_path / "stack").mkdir()
    stack = ProcessStack(tmp_path / "stack", base_env)
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_web()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def cli_env(cli_stack: ProcessStack, base_env: dict[str, str]) -> dict[str, str]:
    """What a user of the CLI has: the server's URL, its secret and its admin token, nothing else."""
    return {
        "TV2IB_URL": cli_stack.web_url,
        "WEBHOOK_SECRET": base_env["WEBHOOK_SECRET"],
        "ADMIN_TOKEN": base_env["ADMIN_TOKEN"],
    }
