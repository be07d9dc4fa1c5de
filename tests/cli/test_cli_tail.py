"""``tv2ib tail`` against the server's live event stream ``GET /api/events`` (server-sent events:
``event: <kind>`` + ``data: <json>`` of what the worker publishes on ``tv2ib:events``).

The endpoint is built on another branch (the live dashboard); until that branch is merged this test
fails with tail's "HTTP 404" (exit code 4)."""

from __future__ import annotations

import contextlib
import json
import queue
import select
import subprocess
import threading
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


def _start_tail(cli_env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen[str]:
    tail = subprocess.Popen(
        [str(TV2IB), "tail", "--json", "--kind", "fill", *extra],
        env={"PATH": "/usr/bin:/bin", **cli_env}, cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    opened = _read_line(tail.stderr, time.monotonic() + 20)
    if "following live events" not in opened:  # tail ended: its --json error is on stdout
        pytest.fail(f"tail did not start following: {opened or tail.communicate(timeout=10)[0]}")
    return tail


def test_tail_prints_the_fill_of_an_alert_as_it_happens(tmp_path: Path, cli_env, cli_stack: ProcessStack):
    # Redis pub/sub ignores database numbers: tests running at the same time on this Redis server
    # (pytest-xdist workers, other runs) publish their fills on the same channel. So one tail runs
    # until OUR alert's fill shows up, and a second one checks --count on whichever fill comes first.
    tails = []
    try:
        tails.append(every := _start_tail(cli_env, tmp_path))
        tails.append(first_only := _start_tail(cli_env, tmp_path, "--count", "1"))
        answer = subprocess.run(
            [str(TV2IB), "send", "AAPL", "buy", "7", "--no-wait", "--json"],
            env={"PATH": "/usr/bin:/bin", **cli_env}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        alert_id = json.loads(answer.stdout)["alert_id"]
        lines: queue.Queue[str] = queue.Queue()  # read in a thread: select() misses lines already buffered
        threading.Thread(target=lambda: [lines.put(line) for line in every.stdout], daemon=True).start()
        deadline = time.monotonic() + 30
        ours = None
        while ours is None and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                event = json.loads(lines.get(timeout=0.2))
                assert event["event"] == "fill", event  # --kind fill
                ours = event if event["data"]["alert_id"] == alert_id else None
        assert ours, f"no fill event of {alert_id}\n{cli_stack.logs('worker')}"
        assert ours["data"]["quantity"] == 7
        assert first_only.wait(10) == 0  # --count 1: done after the first fill (ours or an earlier one)
        printed = first_only.stdout.read().splitlines()
        assert len(printed) == 1 and json.loads(printed[0])["event"] == "fill", printed
    finally:
        for tail in tails:
            if tail.poll() is None:
                tail.kill()
                tail.wait(5)
