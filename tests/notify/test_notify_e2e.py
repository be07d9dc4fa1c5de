"""The full pipeline with real processes: an alert through gunicorn and ``python -m worker`` to a fill
in ``python -m ibsim``; the notice's text is checked where the fake Bot API server received it, and
the worker's bot answers an owner's command."""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.telegram_api import FakeTelegramAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from procs import Stack  # noqa: E402  (the e2e helpers of the worker's tests)

pytestmark = pytest.mark.e2e

OWNER = 111


@pytest.fixture
def tg_stack(tmp_path: Path, base_env: dict[str, str], fake_tg: FakeTelegramAPI) -> Iterator[Stack]:
    env = {
        **base_env,
        **fake_tg.settings(OWNER),
    }
    with Stack(tmp_path, env) as stack:
        yield stack


def _notice(api: FakeTelegramAPI, *needles: str, timeout: float = 20.0) -> str:
    found = api.wait_message(OWNER, *needles, timeout=timeout)
    assert found is not None, [m.text for m in api.messages(OWNER)]
    return found.text


def test_alert_to_fill_notice_and_owner_command(tg_stack: Stack, fake_tg: FakeTelegramAPI) -> None:
    stack = tg_stack
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()
    answer = stack.post_alert(
        {
            "ticker": "NASDAQ:AAPL",
            "action": "buy",
            "quantity": 2,
            "price": 190,
            "strategy": "e2e <tg> & co",
            "takeProfit": {"amount": 2},
            "stopLoss": {"amount": 1},
        }
    )
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]

    entry = _notice(fake_tg, f"alert <code>{alert_id}</code>", "entry")
    assert re.search(r"🟢 <b>BUY 2 AAPL @ 190</b> · entry", entry), entry
    assert "filled 2/2" in entry
    assert "strategy <b>e2e &lt;tg&gt; &amp; co</b>" in entry
    assert "commission" in entry
    assert "realized PnL" not in entry  # the position was opened, not closed

    # The take-profit fills when the price rises: a closing fill carries the realized PnL.
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 192.5})
    tp = _notice(fake_tg, f"alert <code>{alert_id}</code>", "take-profit")
    assert "SELL 2 AAPL @ 192" in tp
    assert "realized PnL" in tp, tp

    # The bot inside the worker process answers its owner.
    fake_tg.push_command(OWNER, "/status")
    status = _notice(fake_tg, "tv2ib status")
    assert "IB connected" in status and "running" in status
    # Each notice arrived once.
    texts = [m.text for m in fake_tg.messages(OWNER)]
    assert sum(f"alert <code>{alert_id}</code>" in t and "· entry" in t for t in texts) == 1


def test_rejections_ib_alarm_and_worker_stop_reach_the_owner(
    tg_stack: Stack, fake_tg: FakeTelegramAPI
) -> None:
    stack = tg_stack
    stack.env["IB_ALARM_AFTER_SECONDS"] = "1"
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()

    # IB refuses the order: the notice carries IB's code and reason.
    stack.sim_post("/fault", {"kind": "reject_next", "code": 201, "reason": "Insufficient <margin> & funds"})
    answer = stack.post_alert(
        {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190, "strategy": "rej"}
    )
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]
    rejected = _notice(fake_tg, f"alert <code>{alert_id}</code>", "Insufficient &lt;margin&gt; &amp; funds")
    assert "Alert refused" in rejected or "Order rejected" in rejected
    # The order's rejection and the alert's rejection are one notice, not two.
    time.sleep(0.5)
    about = [m.text for m in fake_tg.messages(OWNER) if alert_id in m.text]
    assert sum(t.count(f"alert <code>{alert_id}</code>") for t in about) == 1, about

    # IB unreachable for longer than IB_ALARM_AFTER_SECONDS: an alarm, then "restored".
    stack.sim_post("/fault", {"kind": "refuse", "seconds": 3})
    lost = _notice(fake_tg, "IB connection lost")
    restored = _notice(fake_tg, "IB connection restored")
    assert "down for" in lost and "after" in restored
    assert fake_tg.messages(OWNER).index(
        next(m for m in fake_tg.messages(OWNER) if "IB connection lost" in m.text)
    ) < fake_tg.messages(OWNER).index(
        next(m for m in fake_tg.messages(OWNER) if "IB connection restored" in m.text)
    )

    # A warm stop tells the owner before the process goes.
    assert stack.kill_worker(signal.SIGTERM) == 0
    assert "stopped" in _notice(fake_tg, "Worker stopping", timeout=5)
