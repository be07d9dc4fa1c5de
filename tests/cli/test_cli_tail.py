"""``tv2ib tail`` against the server's live event stream ``GET /api/events`` (server-sent events:
``event: <kind>`` + ``data: <json>`` of what the worker publishes on ``tv2ib:events``).

The endpoint is built on another branch (the live dashboard); until that branch is merged this test
fails with tail's "HTTP 404" (exit code 4)."""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import TV2IB

from cli.stack import ProcessStack

pytestmark = pytest.mark.e2e


def _read_line(stream, deadline: float) -> str:
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            return stream.readline()
    return ""


def test_tail_prints_the_fill_of_an_alert_as_it_happens(tmp_path: Path, cli_env, cli_stack: ProcessStack):
    tail = subprocess.Popen(
        [str(TV2IB), "tail", "--json", "--kind", "fill", "--count", "1"],
        env={"PATH": "/usr/bin:/bin", **cli_env}, cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        opened = _read_line(tail.stderr, time.monotonic() + 20)
        if "following live events" not in opened:  # tail ended: its --json error is on stdout
            pytest.fail(f"tail did not start following: {opened or tail.communicate(timeout=10)[0]}")
        answer = subprocess.run(
            [str(TV2IB), "send", "AAPL", "buy", "7", "--no-wait", "--json"],
            env={"PATH": "/usr/bin:/bin", **cli_env}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        alert_id = json.loads(answer.stdout)["alert_id"]
        line = _read_line(tail.stdout, time.monotonic() + 30)
        assert line, f"no fill event\n{cli_stack.logs('worker')}"
        event = json.loads(line)
        assert event["event"] == "fill"
        assert event["data"]["alert_id"] == alert_id and event["data"]["quantity"] == 7
        assert tail.wait(10) == 0  # --count 1: done after the first fill
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(5)
