"""Metrics from every process: gunicorn's workers sum their counts in /metrics, and the execution
worker serves its own on WORKER_METRICS_PORT after a real alert through ibsim."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from procs import Stack
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_until

pytestmark = pytest.mark.e2e

ALERT = {
    "ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
    "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5},
}  # fmt: skip


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # a new connection per scrape, so successive scrapes may land on different gunicorn workers
    with httpx.Client(headers={"Connection": "close"}) as client:
        answer = client.get(url, timeout=5)
    assert answer.status_code == 200
    return samples(answer.text)


ACCEPTED = ("tv2ib_webhook_requests_total", (("outcome", "accepted"), ("status", "202")))
UNAUTHORIZED = ("tv2ib_webhook_requests_total", (("outcome", "unauthorized"), ("status", "401")))
LATENCY_COUNT = ("tv2ib_webhook_latency_seconds_count", ())


def _counting_pids(shared: Path) -> set[str]:
    """The gunicorn workers that have written a counter file."""
    return {m.group(1) for p in shared.iterdir() if (m := re.match(r"counter_(\d+)\.db", p.name))}


def _post_many(stack: Stack, count: int, start: int = 0, **extra: str) -> list[int]:
    def post(i: int) -> int:
        body = {"secret": stack.env["WEBHOOK_SECRET"], **ALERT, "id": f"metrics-{i}", **extra}
        with httpx.Client(headers={"Connection": "close"}) as client:
            return client.post(f"{stack.web_url}/webhook", json=body, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, range(start, start + count)))


def test_metrics_count_every_gunicorn_worker(tmp_path: Path, base_env: dict[str, str]) -> None:
    shared = tmp_path / "prometheus"
    stack = Stack(tmp_path, {**base_env, "WEB_WORKERS": "3", "WEB_THREADS": "1",
                             "PROMETHEUS_MULTIPROC_DIR": str(shared)})  # fmt: skip
    try:
        stack.start_web()
        # the requests must reach several worker processes (each keeps its own file): gunicorn
        # answers as soon as one worker is up, and on a busy machine the first one can take a whole
        # round while the others still load the app, so send rounds until two have counted
        sent = 0
        for _ in range(10):
            statuses = _post_many(stack, 36, start=sent)
            assert statuses == [202] * 36
            sent += 36
            if len(_counting_pids(shared)) >= 2:
                break
        assert len(_counting_pids(shared)) >= 2, (
            f"all requests went to one worker: {sorted(p.name for p in shared.iterdir())}"
        )
        wrong = httpx.post(f"{stack.web_url}/webhook", json={**ALERT, "secret": "wrong-secret-00000000"})
        assert wrong.status_code == 401
        # an accepted alert is marked 'queued' a moment after its answer (app/webhook/marker.py)
        waiting = ("tv2ib_alerts_waiting", (("status", "queued"),))
        wait_until(lambda: scrape(f"{stack.web_url}/metrics").get(waiting) == sent, timeout=10)
        # every scrape, whichever worker answers it, reports the totals of all of them
        for _ in range(8):
            found = scrape(f"{stack.web_url}/metrics")
            assert found[ACCEPTED] == sent
            assert found[UNAUTHORIZED] == 1
            assert found[LATENCY_COUNT] == sent + 1
            assert found[waiting] == sent
    finally:
        stack.stop()

    # a new server start begins from zero: the previous run's files are not added again
    (tmp_path / "again").mkdir()
    again = Stack(tmp_path / "again", {**base_env, "WEB_WORKERS": "2",
                                       "PROMETHEUS_MULTIPROC_DIR": str(shared)})  # fmt: skip
    try:
        again.start_web()
        found = scrape(f"{again.web_url}/metrics")
        assert ACCEPTED not in found and found.get(LATENCY_COUNT, 0) == 0
        assert found[("tv2ib_alerts_waiting", (("status", "queued"),))] == sent  # the database remembers
    finally:
        again.stop()


def test_gunicorn_removes_the_metrics_directory_it_created(tmp_path: Path, base_env: dict[str, str]) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    stack = Stack(tmp_path, {**base_env, "TMPDIR": str(temp)})
    stack.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        stack.start_web()
        assert stack.post_alert(ALERT).status_code == 202
        assert scrape(f"{stack.web_url}/metrics")[ACCEPTED] == 1
        assert [p.name.startswith("tv2ib-metrics-") for p in temp.iterdir()] == [True]
    finally:
        stack.stop()
    assert list(temp.iterdir()) == []


def test_worker_serves_its_metrics_after_a_real_alert(tmp_path: Path, base_env: dict[str, str]) -> None:
    stack = Stack(tmp_path, base_env)
    port = free_port()
    try:
        stack.start_sim()
        stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
        stack.start_web()
        stack.start_worker(WORKER_METRICS_PORT=str(port))
        url = f"http://127.0.0.1:{port}/metrics"
        before = scrape(url)
        assert before[("tv2ib_worker_ib_connected", ())] == 1
        assert before[("tv2ib_worker_alert_to_wire_seconds_count", ())] == 0

        filled = stack.post_alert(ALERT)
        assert filled.status_code == 202
        refused = stack.post_alert({**ALERT, "ticker": "ZZZ1!"})  # an unknown futures root
        assert refused.status_code == 202

        def settled() -> dict | None:
            found = scrape(url)
            done = found[("tv2ib_worker_fills_total", (("leg", "entry"),))] >= 1
            return found if done and found[("tv2ib_worker_jobs_total", ())] >= 2 else None

        found = wait_until(settled, 20, f"no fill counted\n{stack.logs('worker')}")
        assert found[("tv2ib_worker_alert_to_wire_seconds_count", ())] == 1
        assert found[("tv2ib_worker_alert_to_wire_seconds_bucket", (("le", "+Inf"),))] == 1
        assert found[("tv2ib_worker_alerts_rejected_total", (("reason", "symbol"),))] == 1
        assert found[("tv2ib_worker_alerts_rejected_total", (("reason", "broker"),))] == 0
        assert found[("tv2ib_worker_pacing_waits_total", ())] == 0
        assert ("tv2ib_worker_info", (("account", ""), ("client_id", stack.env["IB_CLIENT_ID"]))) in found
        # the backlog sampler ran at start (no Telegram configured: notices go to the log at once)
        assert ("tv2ib_worker_notices_unsent", ()) in found

        # the gateway goes away: the gauge follows at the next scrape
        stack.stop_sim()
        wait_until(lambda: scrape(url)[("tv2ib_worker_ib_connected", ())] == 0, 15, stack.logs("worker"))
    finally:
        stack.stop()
