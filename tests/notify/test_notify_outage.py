"""The outage alarm both IB and Redis use: alarm after N seconds down, "restored" once, blips silent."""

from __future__ import annotations

import asyncio
import json
import typing
from decimal import Decimal

import pytest
from notify_helpers import fill_event

from core import events
from core.models import Order
from worker.notify.compose import compose
from worker.notify.outage import OutageAlarm
from worker.retry import retry_async


def test_down_longer_than_the_delay_alarms_once_then_restored_once() -> None:
    alarm = OutageAlarm("redis_lost", "redis_restored", alarm_after=30)
    assert alarm.went_down(100.0) and not alarm.went_down(105.0)  # one outage, first time kept
    assert alarm.check(129.0) is None
    lost = alarm.check(130.0)
    assert lost == {"type": "redis_lost", "since": 100.0, "down_seconds": 30.0}
    assert alarm.check(200.0) is None  # alarmed once per outage
    assert alarm.came_back(245.0) == {"type": "redis_restored", "since": 100.0, "down_seconds": 145.0}
    assert alarm.came_back(250.0) is None  # "restored" once


def test_a_blip_shorter_than_the_delay_sends_nothing() -> None:
    alarm = OutageAlarm("ib_lost", "ib_restored", alarm_after=60, with_detail=True)
    alarm.went_down(10.0, "1100 connectivity lost")
    assert alarm.came_back(40.0) is None
    alarm.went_down(50.0)
    assert alarm.check(100.0) is None  # a new outage counts from its own start


def test_ib_events_carry_the_reason_and_read_as_before() -> None:
    alarm = OutageAlarm("ib_lost", "ib_restored", alarm_after=60, with_detail=True)
    alarm.went_down(1.23456, "1100 <lost>")
    assert alarm.alarm_due_at == pytest.approx(61.23456)
    lost = alarm.alarm(61.0)  # the timer fires: alarm whatever the clock says
    assert lost == {
        "type": "ib_lost",
        "since": 1.235,
        "down_seconds": pytest.approx(59.76544),
        "detail": "1100 <lost>",
    }
    assert "down for 60 s and counting" in compose(lost).text
    restored = alarm.came_back(3701.0, "1102 restored")
    assert restored is not None and restored["detail"] == "1102 restored"
    assert "IB connection restored" in compose(restored).text and "after 1 h 1 min" in compose(restored).text


ORDER_ROW = {
    "alert_id": "01A",
    "leg": "entry",
    "order_ref": "tv2ib:01A:entry",
    "ib_order_id": 7,
    "perm_id": 9,
    "status": "Filled",
    "filled_quantity": Decimal(1),
    "avg_fill_price": Decimal("10.5"),
}
CONSTRUCTED = [
    events.alert_status("01A", "filled", None),
    events.alert_rejected("01A", strategy="s", ticker="ES1!", action="buy", status="rejected", reason="r"),
    events.order_status(Order(**ORDER_ROW), Decimal(0)),
    events.order_rejected(
        "01A", strategy=None, leg="sl", symbol="ES", order_ref="r", error_code=201, reason="x"
    ),
    events.fill(**{k: v for k, v in fill_event(1).items() if k not in ("type", "seq")}),
    events.paused(True, "api"),
    events.worker_stopped("SIGTERM", account="DU1", client_id=1, pid=2, host="h", at=3.0),
    events.alarm("t", "d", dedup_key="k"),
]


@pytest.mark.parametrize("event", CONSTRUCTED, ids=lambda e: e["type"])
def test_constructors_fill_every_key_their_type_declares(event: events.Event) -> None:
    declared = next(
        t
        for t in typing.get_args(events.Event)
        if event["type"] in typing.get_args(typing.get_type_hints(t)["type"])
    )
    assert set(declared.__required_keys__) <= set(event) <= set(typing.get_type_hints(declared))
    assert json.loads(json.dumps(event)) == event  # plain JSON on the wire


def test_retry_async_retries_named_errors_then_returns() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    assert asyncio.run(retry_async(flaky, on=(ConnectionError,), what="t", base=0.001, cap=0.002)) == "ok"
    assert len(calls) == 3


def test_retry_async_gives_up_after_attempts_and_never_retries_other_errors() -> None:
    calls: list[int] = []

    async def failing() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(retry_async(failing, on=(ConnectionError,), what="t", base=0.001, attempts=2))
    assert len(calls) == 2

    async def buggy() -> None:
        calls.append(1)
        raise ValueError("bug")

    with pytest.raises(ValueError):
        asyncio.run(retry_async(buggy, on=(ConnectionError,), what="t", base=0.001))
    assert len(calls) == 3
