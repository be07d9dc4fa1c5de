"""Margin without a round trip for a warm contract (issue 18), through the real worker and ibsim
over TCP: ibsim counts the what-ifs it answered (GET /state ``stats.what_ifs``), so a test reads
how many round trips an alert cost. The background refresh (worker/execution/margin_refresh.py)
on an in-memory Trading, with the clock in the test's hand.

ibsim's account: 1,000,000 USD, 25 % initial margin on stocks (AAPL at 190: 47.50 per share).
"""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal as D

import yaml
from fake_trading import FakeTrading
from support import wait_until
from worker_helpers import AAPL, WorkerThread, add_alert, alert_status

from core.payload import AlertPayload
from core.risk_file import load_risk_file
from core.services import get_alert
from worker.contracts.symbol_map import SymbolResolver, parse_symbol_map
from worker.decision.look import Look
from worker.decision.margin import WhatIf
from worker.decision.margin_book import margin_ask
from worker.decision.model import Leg
from worker.decision.positions import Decision
from worker.execution.margin_cache import MarginBook
from worker.execution.margin_refresh import AFTER_FILL_GAP, MarginRefresher, named_tickers
from worker.execution.what_if import MarginAsker
from worker.ib.pacing import Pacer
from worker.recording.snapshots import AccountFigures

QUIET = {"MARGIN_REFRESH_SECONDS": "3600"}  # no interval refresh during a test: every what-if is an alert's


def _what_ifs(sim) -> int:
    return sim.state()["stats"]["what_ifs"]


def _position(sim, symbol: str = "AAPL") -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def _trade(ctx, sim, payload: dict) -> dict:
    """One alert to its end at ibsim; its stored alert."""
    alert_id = add_alert(ctx, {"ticker": "AAPL", **payload})
    wait_until(lambda: alert_status(ctx, alert_id) in ("filled", "rejected", "failed", "cancelled"),
               what=lambda: get_alert(ctx.sessions, alert_id))  # fmt: skip
    doc = get_alert(ctx.sessions, alert_id)
    assert doc["status"] == "filled", doc["reason"]
    return doc


def _flat(ctx, sim) -> None:
    _trade(ctx, sim, {"action": "exit"})
    wait_until(lambda: _position(sim) == 0)


def test_a_second_alert_on_the_same_contract_sends_no_what_if(sim, worker_env):
    sim.set_price("AAPL", 190.0)
    handle = WorkerThread({**worker_env, **QUIET}).start()
    try:
        ctx, before = handle.ctx, _what_ifs(sim)
        first = _trade(ctx, sim, {"action": "buy", "quantity": 10})["plan"]["margin"]
        assert _what_ifs(sim) == before + 1  # the first sight of AAPL pays one what-if, beside its quote
        assert (first["source"], first["why"]) == (
            "what-if beside the quote",
            "first sight of the contract: IB's what-if asked beside the quote",
        )
        assert D(first["init_margin_change"]) == D(475)  # IB's answer for this very order
        _flat(ctx, sim)
        second = _trade(ctx, sim, {"action": "buy", "quantity": 10})["plan"]["margin"]
        assert _what_ifs(sim) == before + 1  # no round trip for the second entry
        assert second["verdict"] == "ok" and second["order"] == "BUY 10 AAPL MKT"
        assert re.fullmatch(r"cached per-unit from what-if at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, age \d+s",
                            second["source"]), second  # fmt: skip
        per_unit = second["per_unit"]
        assert (per_unit["initial"], per_unit["learned_from"], per_unit["safety_factor"]) == (
            "47.500000", "BUY 10 AAPL MKT", "1.1")  # fmt: skip
        assert D(per_unit["needs"]) == D("522.50") and D(second["available_funds"]) > D(990_000)
    finally:
        handle.stop()


def test_a_cold_entrys_what_if_is_asked_while_its_quote_is_still_on_its_way(sim, worker_env):
    """Under IB-like latency (a snapshot 300 ms, a what-if 350 ms), the first alert on a contract
    asks the what-if beside the quote, not after it: the entry waits for the slower, not the sum."""
    sim.set_price("AAPL", 190.0)
    sim.set_latency("ib", accountIntervalMs=0, pnlIntervalMs=0)
    handle = WorkerThread({**worker_env, **QUIET}).start()
    try:
        doc = _trade(handle.ctx, sim, {"action": "buy", "quantity": 10, "orderType": "market",
                                       "stopLoss": {"percent": 1}})  # fmt: skip
        held = sim.latency()["held"]
        snapshot = next(row for row in held if row["kind"] == "snapshot")
        what_if = next(row for row in held if row["kind"] == "whatIf")
        assert what_if["askedAtMs"] < snapshot["sentAtMs"], held  # asked while the quote was held
        assert doc["plan"]["margin"]["why"].startswith("first sight of the contract")
        assert [row["kind"] for row in held].count("whatIf") == 1
    finally:
        handle.stop()


def test_a_figure_older_than_its_limit_is_refreshed_before_it_is_used(sim, worker_env):
    sim.set_price("AAPL", 190.0)
    handle = WorkerThread({**worker_env, **QUIET, "MARGIN_MAX_AGE_SECONDS": "1"}).start()
    try:
        ctx, book = handle.ctx, handle.worker.margin.book
        account = handle.worker.ib.account
        _trade(ctx, sim, {"action": "buy", "quantity": 10})
        old = book.figure(account, AAPL.con_id, "BUY")
        assert old is not None and old.initial == D("47.5")
        _flat(ctx, sim)
        sim.set_price("AAPL", 250.0)  # IB's margin per share is now 62.50: the old figure is wrong
        wait_until(lambda: time.time() - old.learned_at > 1.05)  # past MARGIN_MAX_AGE_SECONDS
        count = _what_ifs(sim)
        margin = _trade(ctx, sim, {"action": "buy", "quantity": 10})["plan"]["margin"]
        assert _what_ifs(sim) == count + 1  # asked again before the decision was written down
        assert margin["source"] == "what-if now" and "per_unit" not in margin  # the stale figure was not used
        assert re.fullmatch(
            r"the cached per-unit figure is \d+s old \(MARGIN_MAX_AGE_SECONDS 1\)", margin["why"]
        )
        assert D(margin["init_margin_change"]) == D(625)  # IB's figure at the new price
        fresh = book.figure(account, AAPL.con_id, "BUY")
        assert fresh.initial == D("62.5") and fresh.learned_at > old.learned_at  # learned anew
    finally:
        handle.stop()


def test_contracts_the_risk_file_names_are_learned_at_start(sim, worker_env, tmp_path):
    sim.set_price("AAPL", 190.0)
    sim.set_price("MSFT", 400.0)
    risk = tmp_path / "risk.yaml"
    risk.write_text("defaults:\n  allow: [AAPL, MSFT]\n")
    before = _what_ifs(sim)
    handle = WorkerThread({**worker_env, **QUIET, "RISK_FILE": str(risk)}).start()
    try:
        wait_until(lambda: _what_ifs(sim) == before + 4, timeout=15)  # both sides of both, in the background
        margin = _trade(handle.ctx, sim, {"action": "sell", "quantity": 3})["plan"]["margin"]
        assert _what_ifs(sim) == before + 4  # the first alert on AAPL is already warm
        assert margin["source"].startswith("cached per-unit from what-if at")
        assert (
            margin["per_unit"]["learned_from"] == "SELL 1 AAPL MKT" and margin["order"] == "SELL 3 AAPL MKT"
        )
    finally:
        handle.stop()


def test_an_entry_the_cached_figure_does_not_cover_is_decided_by_ibs_what_if(sim, worker_env):
    sim.set_price("AAPL", 190.0)
    handle = WorkerThread({**worker_env, **QUIET}).start()
    try:
        ctx = handle.ctx
        _trade(ctx, sim, {"action": "buy", "quantity": 10})
        _flat(ctx, sim)
        count = _what_ifs(sim)
        # 100 x the learned quantity and above AvailableFunds: IB decides, with today's wording
        alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 100000})
        wait_until(lambda: alert_status(ctx, alert_id) == "rejected")
        doc = get_alert(ctx.sessions, alert_id)
        assert re.fullmatch(r"margin: needs 4,750,000 USD initial, available 999,99\d USD \(IB what-if "
                            r"initMarginChange for BUY 100,000 AAPL MKT against AvailableFunds\)", doc["reason"])  # fmt: skip
        assert _what_ifs(sim) == count + 1 and doc["plan"]["margin"]["source"] == "what-if now"
    finally:
        handle.stop()


# ------------------------------------------------------------------ the background refresh, alone


class _Conn:
    ready = True
    pacer = Pacer()

    def call(self, coro, timeout=None):
        return asyncio.run(coro)


def test_a_what_if_asked_beside_a_quote_serves_only_its_own_alert():
    """An alert whose what-if was asked beside its quote but that never reached the margin check
    (refused before it): a later alert on the same contract must not take that old answer for
    its own."""
    fake = FakeTrading(AAPL, what_if_answer=WhatIf(D("475"), D("380")),
                       figures=AccountFigures("DU1", "USD", available_funds=D(1_000_000)))  # fmt: skip
    fake.account = "DU1"
    asker = MarginAsker(_Conn(), fake, book=MarginBook())  # type: ignore[arg-type]
    payload = AlertPayload.from_json({"ticker": "AAPL", "action": "buy", "quantity": 10})
    ask = margin_ask("STK", Decision("open", D(0), D(10), ""), Leg("entry", "BUY", "MKT", D(10)), "AAPL")
    figures = AccountFigures("DU1", "USD", available_funds=D(1_000_000))

    async def looked(alert_id: str) -> None:  # the look, on the IB loop
        asker.prefetch(alert_id, payload, AAPL)
        await asyncio.gather(*(task for _key, task in asker._learning.values()))

    asyncio.run(looked("A1"))  # A1 is refused by a risk rule: it never asks for margin
    later = asker.ask(Look("A2", AAPL, D(0), "DU1", None, None, figures), ask)
    assert (
        later.source.startswith("cached per-unit") and later.why is None
    )  # the book's figure, not A1's answer
    asyncio.run(looked("A3"))  # a figure is known now: no what-if beside the quote
    assert fake.calls == ["what-if BUY 10"]
    assert asker.ask(Look("A3", AAPL, D(0), "DU1", None, None, figures), ask).source.startswith("cached")


def test_two_quick_entries_cannot_spend_the_same_funds():
    """IB reports the account's funds every few minutes: what a check approved counts against
    AvailableFunds until IB reports a new figure."""
    fake = FakeTrading(AAPL, what_if_answer=WhatIf(D("475"), D("380")),
                       figures=AccountFigures("DU1", "USD", available_funds=D(1_000)))  # fmt: skip
    asker = MarginAsker(_Conn(), fake, book=MarginBook())  # type: ignore[arg-type]
    ask = margin_ask("STK", Decision("open", D(0), D(10), ""), Leg("entry", "BUY", "MKT", D(10)), "AAPL")

    def check(available: int):
        return asker.ask(Look("A1", AAPL, D(0), "DU1", None, None, AccountFigures("DU1", "USD", available_funds=D(available))), ask)  # fmt: skip

    assert check(1_000).source == "what-if now" and fake.calls == ["what-if BUY 10"]  # 475 held back
    assert check(1_000).source.startswith("cached per-unit")  # 522.50 + 475 <= 1,000
    third = check(1_000)  # 522.50 + 997.50 > 1,000: IB decides
    assert third.source == "what-if now" and fake.calls == ["what-if BUY 10"] * 2
    assert third.why == (
        "the cached figure does not cover it (needs 522.50 USD + 997.50 USD just approved, available 1,000 USD)"
    )
    assert check(900).source.startswith("cached per-unit")  # IB reported the funds again


def test_the_refresh_learns_names_asks_again_after_fills_and_at_its_interval():
    fake = FakeTrading(AAPL, what_if_answer=WhatIf(D("47.5"), D("38")))
    now = [1_000.0]
    book = MarginBook(clock=lambda: now[0])
    refresher = MarginRefresher(_Conn(), fake, book, names=lambda: ["AAPL"],  # type: ignore[arg-type]
                                resolve=SymbolResolver(None, 8).resolve, every=60, timeout=1)  # fmt: skip
    asyncio.run(refresher.tick())  # start-up: both sides of a named contract
    assert fake.calls == ["what-if BUY 1", "what-if SELL 1"]
    assert book.figure("DU1", AAPL.con_id, "BUY").initial == D("47.5")
    now[0] += 1
    asyncio.run(refresher.tick())
    assert len(fake.calls) == 2  # nothing due
    # a fill: asked again once the contract is quiet; long now, so the SELL side (netted) is skipped
    fake.hold(D(10))
    now[0] += AFTER_FILL_GAP
    refresher.on_fill(AAPL.con_id)
    asyncio.run(refresher.tick())
    assert len(fake.calls) == 2  # not quiet yet
    now[0] += 3
    asyncio.run(refresher.tick())
    assert fake.calls[2:] == ["what-if BUY 1"]
    # the interval: a broken answer forgets the figure (the next alert asks IB itself)
    fake.what_if_answer = WhatIf(None, warning_text="margin not available")
    now[0] += 61
    asyncio.run(refresher.tick())
    assert fake.calls[3:] == ["what-if BUY 1"] and book.figure("DU1", AAPL.con_id, "BUY") is None


def test_a_busy_worker_is_not_asked_in_the_background():
    fake = FakeTrading(AAPL, what_if_answer=WhatIf(D("47.5"), D("38")))
    refresher = MarginRefresher(_Conn(), fake, MarginBook(), names=lambda: ["AAPL"],  # type: ignore[arg-type]
                                resolve=SymbolResolver(None, 8).resolve, every=60, timeout=1, busy=lambda: True)  # fmt: skip
    asyncio.run(refresher.tick())
    assert fake.calls == []


def test_named_tickers_are_the_risk_files_allow_lists_and_the_symbol_maps_keys(tmp_path):
    risk = tmp_path / "risk.yaml"
    risk.write_text(yaml.safe_dump({"defaults": {"allow": ["AAPL", "ES1!"], "deny": ["GME"]},
                                    "strategies": {"trend": {"allow": ["MSFT", "AAPL"]}}}))  # fmt: skip
    symbols = parse_symbol_map("symbols:\n  NQ1!:\n    symbol: MNQ\n    quantity_multiplier: 10\n")
    assert named_tickers(load_risk_file(risk), symbols) == ["AAPL", "ES1!", "MSFT", "NQ1!"]


def test_a_broken_what_if_refuses_with_ibs_text_and_forgets_the_figure(sim, worker_env):
    """IB's what-if answers with a warningText and its margin figures unset (1.7976931348623157E308,
    which ib_async would wait past) or infinite (erdewit/ib_insync#380): the entry is refused with
    IB's text, at once, and the figure learned before is forgotten, never replaced by those."""
    sim.set_price("AAPL", 190.0)
    handle = WorkerThread({**worker_env, **QUIET, "MARGIN_MAX_AGE_SECONDS": "1",
                           "MARGIN_CHECK_TIMEOUT_SECONDS": "30"}).start()  # fmt: skip
    try:
        ctx, book, account = handle.ctx, handle.worker.margin.book, handle.worker.ib.account
        _trade(ctx, sim, {"action": "buy", "quantity": 10})
        learned = book.figure(account, AAPL.con_id, "BUY")
        assert learned is not None and learned.initial == D("47.5")
        _flat(ctx, sim)
        wait_until(lambda: time.time() - learned.learned_at > 1.05)  # the next entry asks IB again
        for figures in ("unset", "infinite"):
            warning = f"Margin impact is not available ({figures})"
            sim.fault("broken_what_if", figures=figures, warningText=warning)
            alert_id = add_alert(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10})
            wait_until(lambda a=alert_id: alert_status(ctx, a) == "rejected")
            doc = get_alert(ctx.sessions, alert_id)
            assert doc["reason"] == (f"margin: IB's what-if for BUY 10 AAPL MKT gave unusable figures "
                                     f"(IB warns: {warning}); nothing sent")  # fmt: skip
            margin = doc["plan"]["margin"]
            assert margin["verdict"] == "refused" and margin["init_margin_change"] is None, margin
            assert book.figure(account, AAPL.con_id, "BUY") is None  # never learned from such figures
            assert not [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]
        assert _position(sim) == 0  # nothing of the refused entries reached IB
    finally:
        handle.stop()
