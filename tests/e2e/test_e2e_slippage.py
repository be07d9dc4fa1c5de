"""Slippage end to end on ibsim with the real worker (issue 21): market orders fill at ibsim's own
price, set away from the alert's ``price``. A buy filled above it and a sell filled below it are
costs (positive); a buy filled below and a sell filled above are gains (negative). The admin API,
the ``tv2ib`` command line and the worker's Telegram bot (``/performance``) say so."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.telegram_api import FakeTelegramAPI
from procs import Stack
from support import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import run_cli  # noqa: E402  (the command line's test helper)

pytestmark = pytest.mark.e2e

OWNER = 111
STRATEGY = "slip"


@pytest.fixture
def tg_stack(tmp_path: Path, base_env: dict[str, str], fake_tg: FakeTelegramAPI) -> Iterator[Stack]:
    env = {**base_env, **fake_tg.settings(OWNER)}
    with Stack(tmp_path, env) as stack:
        yield stack


def _filled(stack: Stack, alert: dict[str, Any], market: float) -> dict[str, Any]:
    """Put ibsim's AAPL at ``market``, send ``alert`` (with its ``time`` now), and return the alert
    once its fill and its commission are recorded."""
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": market})
    sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # {{timenow}}: whole seconds
    # an id of its own: two exits at the same price within a second are two alerts, not a repeat
    answer = stack.post_alert(
        {"ticker": "AAPL", "strategy": STRATEGY, "time": sent_at, "id": f"at-{market}", **alert}
    )
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]
    doc: dict[str, Any] = {}

    def done() -> bool:
        doc.update(stack.admin_get(f"/api/alerts/{alert_id}").json())
        return doc["status"] == "filled" and bool(doc.get("execution"))

    assert wait_until(done, 20), f"{doc.get('status')} {doc.get('reason')}\n{stack.logs('worker')}"
    return doc


def test_fills_above_and_below_the_alerts_price(
    tg_stack: Stack, fake_tg: FakeTelegramAPI, tmp_path: Path
) -> None:
    stack = tg_stack
    stack.start_sim()
    stack.start_web()
    stack.start_worker()

    # A buy filled 0.50 above the alert's price: a cost of 10 x 0.50 = 5.00 USD, 26.3 bps.
    bought = _filled(stack, {"action": "buy", "quantity": 10, "price": 190}, 190.50)
    buy_above = bought["execution"]
    own = buy_above["alert"]
    assert (own["side"], own["avg_price"], own["reference_price"]) == ("BUY", 190.5, 190)
    assert own["slippage"] == pytest.approx(5.0) and own["slippage_bps"] == pytest.approx(26.3158, abs=1e-3)
    assert buy_above["currency"] == "USD" and buy_above["multiplier"] == 1
    latency = buy_above["latency"]
    assert latency["signal_time"] is not None and -2 < latency["signal_to_fill_seconds"] < 30
    assert 0 <= latency["arrival_to_fill_seconds"] < 30

    # A sell (the exit) filled 0.40 below the alert's price: also a cost, 4.00 USD.
    sell_below = _filled(stack, {"action": "exit", "price": 190}, 189.60)["execution"]["alert"]
    assert (sell_below["side"], sell_below["avg_price"], sell_below["legs"]) == ("SELL", 189.6, ["exit"])
    assert sell_below["slippage"] == pytest.approx(4.0) and sell_below["slippage_bps"] == pytest.approx(
        21.0526, abs=1e-3
    )

    # The other way round, the fills did better than the price: negative, a gain.
    buy_below = _filled(stack, {"action": "buy", "quantity": 5, "price": 190}, 189.80)["execution"]["alert"]
    assert buy_below["slippage"] == pytest.approx(-1.0) and buy_below["slippage_bps"] < 0
    sell_above = _filled(stack, {"action": "exit", "price": 190}, 190.30)["execution"]["alert"]
    assert sell_above["slippage"] == pytest.approx(-1.5) and sell_above["slippage_bps"] < 0

    # Per strategy: four alerts measured, 5 + 4 - 1 - 1.5 = 6.50 USD in all.
    doc = stack.admin_get(f"/api/performance?strategy={STRATEGY}").json()
    [row] = doc["strategies"]
    assert row["filled"] == 4 and row["measured"] == 4
    assert row["slippage_by_currency"]["USD"]["total"] == pytest.approx(6.5)
    assert row["signal_to_fill_p50"] is not None and len(doc["alerts"]) == 4

    env = {"TV2IB_URL": stack.web_url, "ADMIN_TOKEN": stack.env["ADMIN_TOKEN"]}
    table = run_cli("performance", "--strategy", STRATEGY, env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "+6.50 USD" in table.stdout and "+26.3" in table.stdout and "-1.0" in table.stdout
    one = run_cli("alert", bought["id"], env=env, cwd=tmp_path)
    assert one.returncode == 0 and "Slippage (positive is a cost)" in one.stdout
    assert re.search(r"entry .*BUY .*10 .*190\.5 .*190 .*price .*\+0\.5 .*\+5\.00 .*\+26\.3", one.stdout), (
        one.stdout
    )
    as_json = json.loads(run_cli("performance", "--json", env=env, cwd=tmp_path).stdout)
    assert as_json["strategies"][0]["measured"] == 4

    # The worker's bot answers the owner from the same figures.
    fake_tg.push_command(OWNER, "/performance")

    def answered(api: FakeTelegramAPI) -> bool:
        return any("<b>Execution</b>" in m.text for m in api.messages(OWNER))

    assert fake_tg.wait_for(answered, 20), [m.text for m in fake_tg.messages(OWNER)]
    text = next(m.text for m in fake_tg.messages(OWNER) if "<b>Execution</b>" in m.text)
    assert "<b>slip</b>: 4 filled, 4 against a reference price" in text
    assert "in USD: total <b>+6.50</b>" in text and "signal → fill p50" in text
