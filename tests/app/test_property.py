"""Property: no body and no headers ever make the webhook answer 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from app_helpers import SECRET
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.resources import resources
from config.settings import Settings
from core.context import AppContext

FIELDS = [
    "ticker",
    "action",
    "quantity",
    "positionSize",
    "orderType",
    "limitPrice",
    "stopPrice",
    "takeProfit",
    "stopLoss",
    "time",
    "extras",
    "id",
    "account",
    "strategy",
    "secret",
    "timeInForce",
    "extendedHours",
    "trailPercent",
    "optionType",
    "expiration",
    "instrinsicValue",
    "strikesAway",
    "strikePrice",
    "delta",
    "dteMin",
]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "buy",
            "SELL",
            "limit",
            "stop_limit",
            "NASDAQ:AAPL",
            "SPY 250624C596",
            "call",
            "+6 months",
            "{{close}}",
            "1e400",
            "-0",
            "",
            "\x00",
            "\ud800",
            "a\udfffb",
        ]
    ),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), inner, max_size=5),
    ),
    max_leaves=20,
)
alert_like = st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=10).map(
    lambda d: {**d, "secret": SECRET} if d.get("secret") is None else d
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    alert_like.map(lambda v: json.dumps(v).encode()),
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "X-Webhook-Secret",
            "X-Forwarded-For",
            "Content-Encoding",
            "Transfer-Encoding",
            "Accept",
        ]
    ),
    header_values | st.just(SECRET),
    max_size=4,
)


@pytest.fixture
def shared_app(base_env: dict[str, str], db_url: str) -> Iterator[Flask]:
    env = dict(
        base_env,
        DATABASE_URL=db_url,
        RATE_LIMIT="100000/minute",
        AUTH_FAILURE_LIMIT="100000/minute",
        TRUSTED_PROXIES="1",
    )
    ctx = AppContext.build(Settings.from_mapping(env))
    app = create_app(context=ctx)
    yield app
    resources(app).intake.close()
    ctx.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, extra_headers=headers)
def test_no_body_or_header_produces_a_5xx(
    shared_app: Flask, body: bytes, extra_headers: dict[str, str]
) -> None:
    answer = shared_app.test_client().post("/webhook", data=body, headers=extra_headers)
    assert answer.status_code < 500, answer.get_data(as_text=True)
    assert answer.is_json
