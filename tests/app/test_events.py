"""Live events: ``GET /api/events`` (Bearer) and the dashboard's ``/events`` (session), on real Redis.

The channel is server-wide in Redis (pub/sub ignores DB numbers), so other test runs may publish
on it too: each test looks for its own marked event, never for an exact sequence.
"""

from __future__ import annotations

import json
import uuid

import pytest
from support import TEST_ADMIN_TOKEN

from app.events import format_event
from app.resources import get_ctx
from core.keys import EVENTS_CHANNEL

TOKEN = TEST_ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def messages(chunks, marker: str, limit: int = 200) -> dict[str, str]:
    """Read SSE chunks until the one carrying ``marker``; returns its fields."""
    for _, chunk in zip(range(limit), chunks, strict=False):
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        if marker in text:
            fields = dict(
                line.split(": ", 1) for line in text.strip().splitlines() if not line.startswith(":")
            )
            return fields
    raise AssertionError(f"no event with {marker} in the stream")


def open_stream(client, path: str = "/api/events", **kwargs):
    answer = client.get(path, buffered=False, **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "text/event-stream"
    chunks = iter(answer.response)
    first = next(chunks)
    return answer, chunks, first.decode() if isinstance(first, bytes) else first


def test_api_events_streams_the_workers_events_as_sse(client, ctx):
    answer, chunks, first = open_stream(client, headers=AUTH)
    try:
        assert first.startswith("retry: ") and answer.headers["Cache-Control"] == "no-store"
        marker = uuid.uuid4().hex
        event = {"type": "fill", "alert_id": marker, "price": 101.5, "note": "two\nlines"}
        ctx.redis.publish(EVENTS_CHANNEL, json.dumps(event))
        fields = messages(chunks, marker)
        assert fields["event"] == "fill"
        assert json.loads(fields["data"]) == event  # one line of JSON, newlines escaped
    finally:
        answer.close()


def test_api_events_needs_the_bearer_token(client):
    assert client.get("/api/events").status_code == 401
    wrong = client.get("/api/events", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
    assert wrong.status_code == 401 and wrong.get_json()["message"] == "missing or wrong bearer token"


def test_dashboard_events_need_a_session(client):
    assert client.get("/events").status_code == 401
    assert client.post("/login", data={"token": TOKEN}).status_code == 302
    answer, chunks, first = open_stream(client, "/events")
    try:
        marker = uuid.uuid4().hex
        ctx_redis = get_ctx(client.application).redis
        ctx_redis.publish(EVENTS_CHANNEL, json.dumps({"type": "alert_status", "alert_id": marker}))
        assert messages(chunks, marker)["event"] == "alert_status"
    finally:
        answer.close()


def test_streams_per_process_are_capped_with_a_clear_503(make_app):
    client = make_app(EVENTS_MAX_STREAMS="1").test_client()
    first, _, _ = open_stream(client, headers=AUTH)
    refused = client.get("/api/events", headers=AUTH)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert "EVENTS_MAX_STREAMS" in refused.get_json()["message"]
    assert client.get("/api/status", headers=AUTH).status_code == 200  # other routes unaffected
    first.close()  # the slot is given back when the stream ends
    again, _, _ = open_stream(client, headers=AUTH)
    again.close()


def test_a_stream_ends_after_its_lifetime_so_threads_come_back(make_app):
    client = make_app(EVENTS_STREAM_SECONDS="1").test_client()
    answer, chunks, _ = open_stream(client, headers=AUTH)
    rest = [c.decode() if isinstance(c, bytes) else c for c in chunks]  # ends by itself
    assert rest[-1].startswith(": stream lifetime reached")
    answer.close()
    open_stream(client, headers=AUTH)[0].close()


def test_pause_from_the_api_is_published(client, ctx):
    answer, chunks, _ = open_stream(client, headers=AUTH)
    try:
        assert client.post("/api/pause", headers=AUTH).status_code == 200
        fields = messages(chunks, '"by":"api"')
        assert fields["event"] == "paused" and json.loads(fields["data"])["paused"] is True
    finally:
        answer.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "fill", "x": 1}', 'event: fill\ndata: {"type":"fill","x":1}\n\n'),
        ('{"x": 1}', 'event: message\ndata: {"x":1}\n\n'),
        (
            '{"type": "evil\\ndata: forged"}',
            'event: evildataforged\ndata: {"type":"evil\\ndata: forged"}\n\n',
        ),
        ("not json", None),
        ("[1, 2]", None),
    ],
)
def test_format_event(raw, expected):
    assert format_event(raw) == expected
