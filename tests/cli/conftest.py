"""The command line against real processes: ``.venv/bin/tv2ib`` run as a subprocess, talking to a
real gunicorn + worker + ibsim (:class:`cli.stack.ProcessStack`, the core of tests/e2e/procs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.stack import ProcessStack


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
