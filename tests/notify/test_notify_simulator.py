"""A worker connected to ibsim (the simulator) says so everywhere: its log, its heartbeat (so the
dashboard's status bar, ``/api/status`` and ``/status``) and every Telegram notice. ibsim tells it
through the real protocol: one account value no IB server sends (``Simulator`` = ``ibsim``).

Real processes (ibsim, gunicorn, ``python -m worker``) and the fake Bot API; the marker's absence
on a real gateway's values is checked on the pure parts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fakes.telegram_api import FakeTelegramAPI
from ib_async import AccountValue

from core import events
from core.keys import heartbeat_key
from core.notice_text import SIMULATOR_MARK
from core.notices import NoticeDraft, simulator_marked
from worker.ib.connection import is_simulator
from worker.notify.compose import compose
from worker.notify.replies import status_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from procs import Stack  # noqa: E402  (the e2e helpers of the worker's tests)

OWNER = 111


@pytest.fixture
def sim_stack(tmp_path: Path, base_env: dict[str, str], fake_tg: FakeTelegramAPI) -> Iterator[Stack]:
    env = {**base_env, **fake_tg.settings(OWNER)}
    with Stack(tmp_path, env) as stack:
        yield stack


@pytest.mark.e2e
def test_a_worker_on_ibsim_says_simulator_in_its_log_heartbeat_dashboard_and_notices(
    sim_stack: Stack, fake_tg: FakeTelegramAPI
) -> None:
    stack = sim_stack
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()

    assert "SIMULATOR - this is ibsim, not Interactive Brokers" in stack.logs("worker")
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        beat = json.loads(client.get(heartbeat_key(None, int(stack.env["IB_CLIENT_ID"]))))
    finally:
        client.close()
    assert beat["ib_simulator"] is True
    [worker] = stack.admin_get("/api/status").json()["workers"]
    assert worker["ib_simulator"] is True
    bearer = {"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}
    home = httpx.get(f"{stack.web_url}/", headers=bearer, timeout=5)
    bar = home.text.split('id="status-bar"', 1)[1].split("</section>", 1)[0]
    assert ">SIMULATOR</b>" in bar, bar

    answer = stack.post_alert({"ticker": "AAPL", "action": "buy", "quantity": 2, "price": 190})
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alert_id"]

    def fill_notice(api: FakeTelegramAPI) -> bool:
        return any(alert_id in m.text and "entry" in m.text for m in api.messages(OWNER))

    assert fake_tg.wait_for(fill_notice, 20), [m.text for m in fake_tg.messages(OWNER)]
    # the web's own notices say it too: an invalid alert's notice is written by intake
    invalid = stack.post_alert({"ticker": "AAPL", "action": "buy", "quantity": -1, "price": 190})
    assert invalid.status_code == 422, invalid.text
    bad_id = invalid.json()["alert_id"]
    assert fake_tg.wait_for(lambda api: any(bad_id in m.text for m in api.messages(OWNER)), 20)
    texts = [m.text for m in fake_tg.messages(OWNER)]
    assert texts and all(t.startswith(SIMULATOR_MARK + "\n") for t in texts), texts


def test_the_marker_is_ibsims_account_value_only():
    ibsim = [
        AccountValue("DU1", "NetLiquidation", "1000000", "USD", ""),
        AccountValue("DU1", "Simulator", "ibsim", "", ""),
    ]
    gateway = [AccountValue("U1", "NetLiquidation", "1000000", "USD", ""), AccountValue("U1", "AccountType", "INDIVIDUAL", "", "")]  # fmt: skip
    assert is_simulator(ibsim) and not is_simulator(gateway) and not is_simulator([])


def test_every_notice_kind_gets_one_prefix_and_keeps_its_kind_key_and_silence():
    draft = compose(events.alarm("Risk file not reloaded", "line 3: bad"))
    assert draft is not None
    marked = simulator_marked(NoticeDraft(draft.kind, draft.text, draft.dedup_key, silent=True))
    assert marked.text == f"{SIMULATOR_MARK}\n{draft.text}"
    assert (marked.kind, marked.dedup_key, marked.silent) == (draft.kind, draft.dedup_key, True)
    long = simulator_marked(NoticeDraft("alarm", "x" * 4096, None))
    assert len(long.text) <= 4096 and long.text.startswith(SIMULATOR_MARK)


def test_telegram_status_names_the_simulator():
    doc = {
        "workers": [
            {"account": "DU1", "client_id": 1, "ib_connected": True, "ib_simulator": True, "age_seconds": 1}
        ]
    }
    assert "SIMULATOR" in status_text(doc)
    doc["workers"][0]["ib_simulator"] = False
    assert "SIMULATOR" not in status_text(doc)
