"""Pure tests of what notices say: escaping, truncation, every kind."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from notify_helpers import fill_event

from core import events
from core import notice_text as t
from worker.notify import compose as c

ALLOWED_TAGS = {"b", "i", "code", "pre", "u", "s", "a"}


class _Checker(HTMLParser):
    """Parses Telegram HTML the strict way: known tags only, balanced, visible text collected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


ENTITY = re.compile(r"&(?:#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);")


def visible(text: str) -> str:
    """What Telegram shows for ``text``; fails when the HTML is not well formed."""
    # Every '&' must start a complete entity, every '<' a tag (Telegram rejects anything else).
    for match in re.finditer("&", text):
        assert ENTITY.match(text, match.start()), text[match.start() : match.start() + 12]
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.stack, checker.stack
    return "".join(checker.text)


def test_fill_says_everything_a_trader_needs() -> None:
    draft = c.compose(
        fill_event(
            1,
            leg="tp",
            side="SLD",
            quantity=3,
            price="5012.250",
            cum_quantity=3,
            order_quantity=3,
            realized_pnl=-125.5,
        )
    )
    assert draft is not None and draft.kind == "fill"
    shown = visible(draft.text)
    assert "SELL 3 ESZ6 @ 5012.25" in shown  # local symbol for futures, no float noise
    assert "take-profit" in shown
    assert "filled 3/3" in shown and "partial" not in shown
    assert "strategy trend <fast> & slow" in shown
    assert "alert 01JD0000000000000000000001" in shown
    assert "commission 2.25 USD" in shown
    assert "realized PnL -125.5" in shown
    assert draft.dedup_key == "fill:0000e0d5.6553f1a2.01.0001"


def test_partial_fill_and_no_pnl_while_position_open() -> None:
    shown = visible(c.compose(fill_event(2, cum_quantity=3, order_quantity=10, quantity=3)).text)
    assert "partial fill 3/10" in shown
    assert "PnL" not in shown
    assert "entry" in shown


@pytest.mark.parametrize(
    ("symbol", "local", "sec_type", "expected"),
    [
        ("ES1!", None, "STK", "ES1!"),  # whatever the caller passes is shown as written
        ("BRK.B", "BRK B", "STK", "BRK.B"),  # stocks: the symbol, not IB's local symbol
        ("ES", "ESZ6", "FUT", "ESZ6"),
        ("EUR", "EUR.USD", "CASH", "EUR"),
    ],
)
def test_symbols_render_as_written(symbol: str, local: str | None, sec_type: str, expected: str) -> None:
    shown = visible(c.compose(fill_event(3, symbol=symbol, local_symbol=local, sec_type=sec_type)).text)
    assert f"BUY 1 {expected} @" in shown


@pytest.mark.parametrize(
    ("leg", "pnl", "shown"),
    [
        ("entry", 0, None),  # IB reports 0 for an opening fill
        ("entry", 1.7976931348623157e308, None),  # IB's unset double
        ("sl", 0, "realized PnL 0"),  # a closing leg at breakeven still says so
        ("exit", "-12.5", "realized PnL -12.5"),
        ("entry", 40, "realized PnL +40"),  # an entry that reduced an opposite position
    ],
)
def test_realized_pnl_only_when_a_position_closed(leg: str, pnl: object, shown: str | None) -> None:
    text = visible(c.compose(fill_event(8, leg=leg, realized_pnl=pnl)).text)
    if shown is None:
        assert "PnL" not in text
    else:
        assert shown in text


def test_profit_is_signed() -> None:
    shown = visible(c.compose(fill_event(4, realized_pnl="125.50")).text)
    assert "realized PnL +125.5" in shown


def test_strategy_with_markup_cannot_inject_html() -> None:
    evil = '<a href="http://x">click</a> & <b>bold</b>'
    draft = c.compose(fill_event(5, strategy=evil))
    assert evil in visible(draft.text)
    assert "<a " not in draft.text


def test_order_rejected_names_ibs_reason() -> None:
    draft = c.compose(
        {
            "type": "order_rejected",
            "alert_id": "01ALERT",
            "strategy": "s&p <revert>",
            "leg": "sl",
            "symbol": "BRK.B",
            "order_ref": "tv2ib:01ALERT:sl",
            "error_code": 110,
            "reason": "The price does not conform to the minimum price variation <0.25>",
        }
    )
    shown = visible(draft.text)
    assert "Order rejected" in shown and "BRK.B" in shown and "stop-loss" in shown
    assert "IB 110: The price does not conform to the minimum price variation <0.25>" in shown
    assert "strategy s&p <revert>" in shown
    assert draft.dedup_key == "order_rejected:tv2ib:01ALERT:sl:110"  # a stop-loss leg: its own notice
    entry = c.compose(
        events.order_rejected(
            "01ALERT", strategy=None, leg="entry", symbol=None, order_ref="", error_code=201, reason="x"
        )
    )
    assert entry.dedup_key == "rejected:01ALERT"  # shared with the alert's rejection: one notice


@pytest.mark.parametrize(("status", "word"), [("rejected", "refused"), ("failed", "failed")])
def test_alert_rejected_with_reason(status: str, word: str) -> None:
    draft = c.compose(
        {
            "type": "alert_rejected",
            "alert_id": "01ALERT",
            "strategy": "x",
            "ticker": "ES1!",
            "action": "buy",
            "status": status,
            "reason": "unknown contract: no symbol mapping for ES1! & none in IB",
        }
    )
    shown = visible(draft.text)
    assert f"Alert {word}" in shown and "buy ES1!" in shown
    assert "unknown contract: no symbol mapping for ES1! & none in IB" in shown
    assert draft.dedup_key == "rejected:01ALERT"


SAMPLES = {
    "fill": fill_event(9),
    "order_rejected": events.order_rejected(
        None, strategy=None, leg=None, symbol="ES", order_ref="r", error_code=201, reason="x"
    ),
    "alert_rejected": events.alert_rejected(
        "a", strategy=None, ticker="ES1!", action=None, status="rejected", reason="stale"
    ),
    "ib_lost": {
        "type": "ib_lost",
        "since": 1.5,
        "down_seconds": 61,
        "detail": "1100 <lost>",
        "account": "DU1",
    },
    "ib_restored": {"type": "ib_restored", "since": 1.5, "down_seconds": 3700, "account": "DU1"},
    "redis_lost": {"type": "redis_lost", "since": 2.5, "down_seconds": 30},
    "redis_restored": {"type": "redis_restored", "since": 2.5, "down_seconds": 45},
    "worker_stopped": {"type": "worker_stopped", "reason": "SIGTERM", "pid": 7, "at": 3.0, "client_id": 1},
    "daily_summary": {
        "type": "daily_summary",
        "date": "2026-11-22",
        "fills": 4,
        "realized_pnl": 10,
        "commissions": 9,
        "positions": 1,
    },
    "alarm": {"type": "alarm", "title": "Daily loss limit <hit>", "detail": "-500 & more"},
    "unprotected": {
        "type": "unprotected",
        "account": "DU1",
        "con_id": 1,
        "symbol": "BRK B",
        "alert_id": "a",
        "position": "10",
        "position_text": "long 10",
        "missing": ["sl"],
        "detail": "IB refused <it> again",
        "action_taken": "left as it is",
        "raised_at": 1,
    },
    "position_drift": {
        "type": "position_drift",
        "alert_id": "a",
        "strategy": None,
        "ticker": "ES1!",
        "symbol": "ESZ6",
        "account": "DU1",
        "expected": "long 10",
        "actual": "short 3",
        "detail": "a manual trade?",
    },
    "daily_loss": events.daily_loss(
        account="DU1",
        day="2026-11-30",
        pnl="-2150.5",
        realized="-1900",
        unrealized="-250.5",
        limit="2000",
        source='account "DU1"',
        action="entries halted; flatten_on_daily_loss: closing AAPL 100",
        until="2026-11-30 17:00 America/New_York",
    ),  # fmt: skip
    "protection": events.protection(
        "locked",
        account="DU1",
        strategy="Trend <a>",
        rule="stop_out_cooldown_minutes",
        symbol="AAPL",
        label="cooldown 30 min after a stop-out",
        source='strategy "Trend <a>"',
        why="AAPL stopped out at 14:02",
        what="on AAPL",
        since="2026-11-30T19:02:00+00:00",
        until="2026-11-30T19:32:00+00:00",
        until_text="14:32 America/New_York",
    ),  # fmt: skip
    "unknown_strategy": events.unknown_strategy(
        "01JD0000000000000000000009",
        strategy="Tiny <2>",
        account="DU1",
        risk_file="config/risk.yaml",
        known=["tiny", "trend & co"],
    ),  # fmt: skip
    "break_even": events.break_even(
        account="DU1",
        con_id=265598,
        symbol="AAPL <x>",
        alert_id="01JD0000000000000000000011",
        position="long 10",
        old_stop="186.20",
        new_stop="190.02",
        why="stop moved to break-even 190.02 (entry 190.00 + 2 tick(s))",
    ),  # fmt: skip
    "session_flatten": events.session_flatten(
        "DU1",
        [
            {
                "con_id": 265598,
                "symbol": "AAPL",
                "alert_id": "01JD0000000000000000000010",
                "strategy": "day <1>",
                "position": "long 10",
                "action": "SELL",
                "quantity": "10",
                "order_ref": "tv2ib:01JD0000000000000000000010:flatten",
                "when": "15 min before the 13:00 America/New_York close (XNYS, early close, Fri 2026-11-27)",
                "source": 'strategy "day <1>"',
                "result": "filled",
            },
            {
                "con_id": 637002612,
                "symbol": "ESZ6",
                "alert_id": "01JD0000000000000000000011",
                "strategy": "day <1>",
                "position": "short 2",
                "action": "BUY",
                "quantity": "2",
                "order_ref": "tv2ib:01JD0000000000000000000011:flatten",
                "when": "15 min before the 12:00 America/Chicago close (CMES, early close, Fri 2026-11-27)",
                "source": 'strategy "day <1>"',
                "result": "not closed: IB ended the order Cancelled; the exits are put back: close it by hand",
            },
        ],
    ),  # fmt: skip
}


def test_every_registered_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(c.COMPOSERS)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_composes_well_formed_text(kind: str) -> None:
    draft = c.compose(SAMPLES[kind])
    assert draft is not None and draft.kind == kind
    assert visible(draft.text).strip()
    assert t.text_length(draft.text) <= t.MAX_TEXT


def test_alarm_texts() -> None:
    assert "down for 61 s" in visible(c.compose(SAMPLES["ib_lost"]).text)
    assert "1100 <lost>" in visible(c.compose(SAMPLES["ib_lost"]).text)
    assert "after 1 h 1 min" in visible(c.compose(SAMPLES["ib_restored"]).text)
    assert "Daily loss limit <hit>" in visible(c.compose(SAMPLES["alarm"]).text)
    summary = visible(c.compose(SAMPLES["daily_summary"]).text)
    assert "trades (executions): 4" in summary and "realized PnL: +10" in summary and "fees: 9" in summary
    assert c.compose(SAMPLES["daily_summary"]).dedup_key == "daily_summary:2026-11-22"
    loss = c.compose(SAMPLES["daily_loss"])
    assert "today's PnL -2150.5" in visible(loss.text) and "until 2026-11-30 17:00" in visible(loss.text)
    assert "closing AAPL 100" in visible(loss.text) and loss.dedup_key == "daily_loss:DU1:2026-11-30"


def test_a_protection_says_what_locked_until_when_and_when_it_ended_once_each() -> None:
    locked = c.compose(SAMPLES["protection"])
    shown = visible(locked.text)
    assert "Entries locked · AAPL · Trend <a>" in shown and "AAPL stopped out at 14:02" in shown
    assert "no new entry on AAPL until 14:32 America/New_York; exits still go out" in shown
    ended = c.compose({**SAMPLES["protection"], "state": "unlocked", "detail": "its time is up"})
    assert "Entries unlocked · AAPL · Trend <a>" in visible(ended.text) and "its time is up" in visible(
        ended.text
    )
    assert locked.dedup_key != ended.dedup_key and locked.dedup_key.startswith("protection:locked:")
    later = c.compose({**SAMPLES["protection"], "since": "2026-11-30T19:12:00+00:00"})
    assert later.dedup_key != locked.dedup_key  # another lock of the same ticker: said again


def test_an_unknown_strategy_warning_names_the_strategy_and_what_the_file_has() -> None:
    draft = c.compose(SAMPLES["unknown_strategy"])
    shown = visible(draft.text)
    assert "Strategy not in the risk file · Tiny <2>" in shown
    assert "config/risk.yaml has: tiny, trend & co" in shown and "account DU1" in shown
    assert (
        draft.kind == "unknown_strategy" and draft.dedup_key == "unknown_strategy:01JD0000000000000000000009"
    )


def test_the_session_flatten_lists_what_was_closed_and_what_was_not() -> None:
    draft = c.compose(SAMPLES["session_flatten"])
    assert draft is not None and draft.kind == "session_flatten"
    shown = visible(draft.text)
    assert shown.startswith("🔔 Session-end flatten · 1 of 2 positions closed\n")
    assert (
        "• SELL 10 AAPL (was long 10)\n  15 min before the 13:00 America/New_York close (XNYS, early close"
        in shown
    )
    assert 'flatten_before_close (strategy "day <1>")' in shown and "strategy day <1> · alert 01JD" in shown
    assert "⚠️ NOT closed: BUY 2 ESZ6 (was short 2): not closed: IB ended the order Cancelled" in shown
    assert "refused until the close" in shown and shown.endswith("account DU1")
    # the same closes, told again after a restart, are one notice
    again = c.compose(events.session_flatten("DU1", list(reversed(SAMPLES["session_flatten"]["closed"]))))
    assert again is not None and again.dedup_key == draft.dedup_key and len(draft.dedup_key or "") <= 128


def test_dashboard_only_events_make_no_notice() -> None:
    assert c.compose({"type": "order_status", "status": "Submitted"}) is None
    assert c.compose({"type": "alert_status", "status": "queued"}) is None


def test_unknown_event_type_still_tells_the_trader() -> None:
    draft = c.compose({"type": "margin_warning", "detail": "<50%"})
    assert draft is not None and "margin_warning" in visible(draft.text) and "<50%" in visible(draft.text)


def test_a_new_kind_is_one_function_away() -> None:
    @c.composer("test_margin_call")
    def _margin(event):  # noqa: ANN001, ANN202
        return c.NoticeDraft("test_margin_call", f"margin call {c.esc(event['detail'])}", "mc:1")

    try:
        draft = c.compose({"type": "test_margin_call", "detail": "<now>"})
        assert visible(draft.text) == "margin call <now>" and draft.dedup_key == "mc:1"
    finally:
        del c.COMPOSERS["test_margin_call"]


def test_formatting_bug_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(event):  # noqa: ANN001, ANN202
        raise ZeroDivisionError("bug")

    monkeypatch.setitem(c.COMPOSERS, "fill", broken)
    draft = c.compose_safely(fill_event(7))
    assert draft is not None and "formatting failed" in visible(draft.text)
    assert draft.dedup_key == "fill:0000e0d5.6553f1a2.01.0007"  # still deduplicated


def test_explicit_dedup_key_wins_and_long_keys_are_bounded() -> None:
    assert c.compose({"type": "alarm", "title": "x", "dedup_key": "risk:1"}).dedup_key == "risk:1"
    key = c.compose(fill_event(1, exec_id="x" * 500)).dedup_key
    assert len(key) <= c.MAX_DEDUP_KEY - 24
    assert key != c.compose(fill_event(1, exec_id="x" * 499 + "y")).dedup_key


def test_huge_reason_is_truncated_safely() -> None:
    reason = "<&>" * 5000
    draft = c.compose(
        events.alert_rejected("a", strategy=None, ticker="T", action=None, status="rejected", reason=reason)
    )
    assert t.text_length(draft.text) <= t.MAX_TEXT
    visible(draft.text)


def test_fit_cuts_outside_tags_and_entities_and_closes_tags() -> None:
    text = "<b>" + "&amp;" * 2000 + "</b>"
    cut = t.fit(text, 100)
    assert t.text_length(cut) <= 100
    assert cut.endswith("…</b>")
    assert set(visible(cut)) <= {"&", "…"}


def test_fit_counts_utf16_units() -> None:
    text = "📈" * 3000  # each emoji is two UTF-16 units: 6000 in total
    cut = t.fit(text)
    assert t.text_length(cut) <= t.MAX_TEXT
    assert len(cut) < 2100


def test_fit_keeps_short_text() -> None:
    assert t.fit("<b>x</b>") == "<b>x</b>"


@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(["b", "code", "i", None]), st.text(min_size=0, max_size=60)), max_size=30
    ),
    limit=st.integers(min_value=12, max_value=400),
)
def test_fit_always_yields_well_formed_text_within_limit(
    parts: list[tuple[str | None, str]], limit: int
) -> None:
    text = "\n".join(f"<{t}>{c.esc(s)}</{t}>" if t else c.esc(s) for t, s in parts)
    cut = t.fit(text, limit)
    assert t.text_length(cut) <= max(limit, 0)
    shown = visible(cut)
    if cut == text:
        assert shown == html.unescape(re.sub(r"<[^>]+>", "", text))


def test_status_reply_names_what_is_wrong() -> None:
    from worker.notify import replies

    doc = {
        "paused": True,
        "redis": True,
        "workers": [
            {
                "account": "DU1",
                "client_id": 1,
                "ib_connected": False,
                "ib_detail": "1100 <lost>",
                "age_seconds": 2,
            }
        ],
        "queues": {"tv2ib:orders:DU1": 3},
        "notices_pending": 4,
        "last_alert": {
            "status": "failed",
            "action": "buy",
            "ticker": "ES1!",
            "reason": "IB down",
            "received_at": "2026-11-22T07:30:33+00:00",
        },
    }
    shown = visible(replies.status_text(doc))
    assert "trading: ⏸ paused" in shown
    assert "worker DU1/1: IB 🚨 disconnected (1100 <lost>) (heartbeat 2 s ago)" in shown
    assert "queued alerts: tv2ib:orders:DU1 3" in shown and "notices waiting: 4" in shown
    assert "07:30:33 buy ES1! → failed" in shown and "IB down" in shown
    assert "none alive" in visible(replies.status_text({"paused": False, "workers": [], "redis": False}))


def test_break_even_names_the_old_and_the_new_stop_once_per_position() -> None:
    draft = c.compose(SAMPLES["break_even"])
    assert draft is not None and draft.kind == "break_even"
    text = visible(draft.text)
    assert "Stop moved to break-even" in text and "AAPL <x> long 10: stop from 186.2 to 190.02" in text
    assert draft.dedup_key == "break_even:DU1:265598:01JD0000000000000000000011"
