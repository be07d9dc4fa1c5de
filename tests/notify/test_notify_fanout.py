"""A fan-out child's notices name its account: one alert went to several accounts, and the trader
must see which one refused it or whose order IB rejected."""

from __future__ import annotations

import pytest
from test_notify_compose import visible

from core import events
from core.notices import alert_rejected_draft
from worker.notify import compose as c
from worker.notify.replies import _alert_line


@pytest.mark.parametrize("account", ["DU2", None])
def test_alert_rejected_names_a_childs_account(account):
    event = events.alert_rejected(
        "01CHILD", strategy="trend", ticker="AAPL", action="buy", status="rejected",
        reason="risk: max_order_quantity 100 exceeded", account=account,
    )  # fmt: skip
    shown = visible(c.compose(event).text)
    assert ("account DU2" in shown) is (account is not None)
    assert "account" not in event or event["account"] == "DU2"


def test_order_rejected_names_a_childs_account():
    event = events.order_rejected(
        "01CHILD", strategy="trend", leg="entry", symbol="AAPL", order_ref="tv2ib:01CHILD:entry",
        error_code=201, reason="Order rejected - reason: insufficient margin", account="DU1",
    )  # fmt: skip
    assert "account DU1" in visible(c.compose(event).text)


def test_the_relays_refusal_notice_names_a_childs_account():
    draft = alert_rejected_draft("01CHILD", "no worker took it", action="buy", ticker="AAPL",
                                 strategy="trend", account="DU1")  # fmt: skip
    assert visible(draft.text).endswith("account DU1")
    plain = alert_rejected_draft("01A", "no worker took it", action="buy", ticker="AAPL", strategy=None)
    assert "account" not in visible(plain.text)


def test_telegram_alert_list_marks_parent_and_children():
    parent = {"status": "fanned_out", "ticker": "AAPL", "action": "buy", "reason": "fanned out to 2 accounts"}
    child = {"status": "filled", "ticker": "AAPL", "action": "buy", "parent_id": "01P", "account": "DU2"}
    assert _alert_line(parent).startswith("🔀")
    assert "account DU2" in visible(_alert_line(child))
