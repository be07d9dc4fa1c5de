"""The dashboard in a real browser (Playwright driving Debian's chromium) on a real stack:
ibsim + gunicorn + worker. Sign in, send an alert and watch it fill on the open page without a
reload, press Pause and watch the next entry get refused, open the alert's page, check the charts.

Screenshots of every step go to ``var/screenshots/`` (kept by CI as artifacts).
``scripts/ensure-chromium`` installs chromium with apt-get when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from procs import ROOT, Stack

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "var" / "screenshots"
ALERT = {
    "ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
    "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}, "strategy": "breakout",
}  # fmt: skip
LIVE_MS = 10_000  # generous on a loaded CI machine; the page normally updates within a second


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ensure = subprocess.run([str(ROOT / "scripts" / "ensure-chromium")], capture_output=True, text=True)
    if ensure.returncode != 0:
        pytest.fail(f"chromium is not available: {ensure.stderr.strip()}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def row_status(page: Any, alert_id: str) -> Any:
    return page.locator(f'tr[data-alert="{alert_id}"] .pill')


def test_dashboard_live_in_a_real_browser(stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    stack.start_web()
    stack.start_worker()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    # script errors and CSP refusals (the login page's 401 and /favicon.ico's 404 are expected)
    page.on(
        "console",
        lambda m: m.type == "error" and "Failed to load resource" not in m.text and problems.append(m.text),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        # sign in
        page.goto(stack.web_url)
        expect(page.locator("input[name=token]")).to_be_visible()
        page.fill("input[name=token]", stack.env["ADMIN_TOKEN"])
        page.locator("form:has(input[name=token]) button").click()
        expect(page.locator("#status-bar")).to_contain_text("Trading")
        expect(page.locator("#live-state")).to_have_text("live", timeout=LIVE_MS)
        shot(page, "01-signed-in")

        # an alert sent with httpx appears and fills on the open page, without a reload
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
        answer = stack.post_alert(ALERT)
        assert answer.status_code == 202, answer.text
        first = answer.json()["alert_id"]
        expect(row_status(page, first)).to_have_text("filled", timeout=LIVE_MS)
        expect(page.locator("#orders")).to_contain_text("Filled")
        expect(page.locator("#status-bar")).to_contain_text("1 fills")
        expect(page.locator("#chart-latency svg")).to_have_attribute(
            "aria-label", re.compile(": 1 alert, median")
        )
        assert navigations == [], f"the page reloaded: {navigations}"
        shot(page, "02-filled-live")

        # Pause, then the next entry is refused, again shown live
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#status-bar")).to_contain_text("PAUSED")
        expect(page.locator("#live-state")).to_have_text("live", timeout=LIVE_MS)
        shot(page, "03-paused")
        navigations.clear()
        second = stack.post_alert({**ALERT, "quantity": 5}).json()["alert_id"]
        expect(row_status(page, second)).to_have_text("rejected", timeout=LIVE_MS)
        expect(page.locator(f'tr[data-alert="{second}"] .reason')).to_contain_text("paused")
        assert navigations == [], f"the page reloaded: {navigations}"
        shot(page, "04-entry-refused")

        # the charts are drawn on the home page
        for figure in ("chart-pnl", "chart-strategies", "chart-latency"):
            expect(page.locator(f"#{figure} svg")).to_be_visible()
        expect(page.locator("#chart-pnl svg path.series")).to_have_count(1)  # commissions: a curve
        expect(page.locator("#chart-latency svg rect.mark")).not_to_have_count(0)

        # the alert's own page, with its timeline chart
        page.locator(f'a[href="/alerts/{first}"]').first.click()
        expect(page.locator("h1")).to_contain_text(first)
        expect(page.locator("#alert-timeline svg rect.mark")).not_to_have_count(0)
        expect(page.locator("#alert-live")).to_contain_text("filled")
        shot(page, "05-alert-page")

        # the strategy page
        page.locator('a[href="/strategies/breakout"]').first.click()
        expect(page.locator("h1")).to_contain_text("breakout")
        expect(page.locator("#chart-pnl svg")).to_be_visible()
        expect(page.locator(f'tr[data-alert="{second}"]')).to_be_visible()
        shot(page, "06-strategy-page")
        assert problems == [], problems
    except Exception:
        shot(page, "failure")
        print(stack.logs("web"), stack.logs("worker"))
        raise
    finally:
        context.close()


def test_screenshots_dir_is_ignored_by_git() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", str(SHOTS / "x.png")], cwd=ROOT)
    assert ignored.returncode == 0
