"""``GET /api/events`` under the real gunicorn: the SSE contract, the per-process stream cap, and
webhook intake still answered while a stream holds a thread."""

from __future__ import annotations

import json

import httpx
import pytest
from procs import Stack

pytestmark = pytest.mark.e2e


def test_event_stream_under_gunicorn_leaves_threads_for_intake(stack: Stack) -> None:
    # one process with two threads: at most one stream (half the threads), one thread for intake
    stack.env.update(WEB_WORKERS="1", WEB_THREADS="2", EVENTS_STREAM_SECONDS="3")
    stack.start_web()
    auth = {"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
    with httpx.Client(base_url=stack.web_url, headers=auth, timeout=10) as client:
        with client.stream("GET", "/api/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines).startswith("retry: ")
            refused = client.get("/api/events")
            assert refused.status_code == 503 and "EVENTS_MAX_STREAMS" in refused.json()["message"]
            assert stack.post_alert({"ticker": "AAPL", "action": "buy", "quantity": 1}).status_code == 202
            assert client.post("/api/pause").status_code == 200
            seen = []
            for line in lines:  # bounded: the stream ends after EVENTS_STREAM_SECONDS
                seen.append(line)
                # pub/sub ignores DB numbers: a test running alongside may publish its own resume
                if (
                    line.startswith("data: ")
                    and json.loads(line.removeprefix("data: ")).get("paused") is True
                ):
                    break
            kind, data = seen[-2], seen[-1]
            assert kind == "event: paused" and json.loads(data.removeprefix("data: "))["paused"] is True
            rest = list(lines)  # the server ends the stream after its lifetime
            assert any(line.startswith(": stream lifetime reached") for line in rest), rest
        again = client.get("/api/events")  # the slot came back: a new stream (runs to its end)
        assert again.status_code == 200 and again.text.startswith("retry: ")
