"""Delivery through the REAL python-telegram-bot client to the fake Bot API server: normal sends,
429 retry_after, an outage during a stream of fills, a flood, refused texts, the log transport,
flush on stop, and one sender among several workers."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fakes.telegram_api import FakeTelegramAPI
from notify_helpers import OWNER_CHATS, fill_event
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from support import wait_until

from config.settings import Settings
from core.models import Notice
from worker.notify import Notifier, enqueue_notices, lease
from worker.notify.transport import plain_line

EXEC_RE = re.compile(r"alert 01JD0000000000000000000001")
SEQ_RE = re.compile(r"@ (\d+(?:\.\d+)?)</b>")


def record(
    sessions: sessionmaker[Session], settings: Settings, notifier: Notifier | None, n: int, **extra: object
) -> None:
    """What the worker does for an execution: enqueue in the recording transaction, commit, wake."""
    with sessions.begin() as session:
        enqueue_notices(session, fill_event(n, price=n, **extra), settings)
    if notifier is not None:
        notifier.wake()


def prices_seen(api: FakeTelegramAPI, chat_id: str) -> list[int]:
    """The fill numbers (encoded as the price) in the order the chat received them."""
    seen: list[int] = []
    for message in api.messages(chat_id):
        seen.extend(int(float(p)) for p in SEQ_RE.findall(message.text))
    return seen


def unsent(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(list(session.scalars(select(Notice.id).where(Notice.sent_at.is_(None)))))


@dataclass(frozen=True)
class Outbox:
    """The notices table on SQLite, the fake Bot API the notifier sends to, and notifiers started
    on that table (all stopped at teardown)."""

    api: FakeTelegramAPI
    sessions: sessionmaker[Session]
    start_notifier: Callable[..., Notifier]

    def start(self, settings: Settings, **kw: Any) -> Notifier:
        return self.start_notifier(settings, self.sessions, **kw)

    def record(self, settings: Settings, notifier: Notifier | None, n: int) -> None:
        record(self.sessions, settings, notifier, n)

    def unsent(self) -> int:
        return unsent(self.sessions)

    def seen(self, chat_id: str) -> list[int]:
        return prices_seen(self.api, chat_id)


@pytest.fixture
def outbox(
    fake_tg: FakeTelegramAPI, sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> Outbox:
    return Outbox(fake_tg, sqlite_sessions, start_notifier)


@pytest.fixture
def one_chat(tg_env: dict[str, str]) -> Settings:
    """The Telegram settings with one owner chat, 111."""
    return Settings.from_mapping({**tg_env, "TELEGRAM_CHAT_ID": "111"})


def test_fill_notice_reaches_every_owner_chat_as_html(
    fake_tg: FakeTelegramAPI,
    tg_settings: Settings,
    any_sessions: sessionmaker[Session],
    start_notifier: Callable[..., Notifier],
) -> None:
    notifier = start_notifier(tg_settings, any_sessions)
    record(any_sessions, tg_settings, notifier, 1, symbol="BRK.B", sec_type="STK", local_symbol="BRK B")
    for chat in OWNER_CHATS:
        [message] = fake_tg.wait_messages(1, chat)
        assert message.parse_mode == "HTML" and not message.disable_notification
        assert "BUY 1 BRK.B @ 1</b>" in message.text
        assert "strategy <b>trend &lt;fast&gt; &amp; slow</b>" in message.text
    assert wait_until(lambda: unsent(any_sessions) == 0, 5)
    with any_sessions() as session:
        assert all(n.attempts == 1 and n.last_error is None for n in session.scalars(select(Notice)))


def test_silent_switch_sends_without_notification(outbox: Outbox, tg_env: dict[str, str]) -> None:
    settings = Settings.from_mapping({**tg_env, "NOTIFY": "fill=silent", "TELEGRAM_CHAT_ID": "111"})
    outbox.record(settings, outbox.start(settings), 1)
    [message] = outbox.api.wait_messages(1, "111")
    assert message.disable_notification


def test_429_retry_after_is_honoured(outbox: Outbox, one_chat: Settings) -> None:
    fake_tg = outbox.api
    notifier = outbox.start(one_chat)
    fake_tg.wait_for(lambda api: api.count("getMe") >= 1, 5)
    fake_tg.fail_next(429, retry_after=2)
    started = time.time()
    outbox.record(one_chat, notifier, 1)
    [message] = fake_tg.wait_messages(1, "111", timeout=10)
    refused = [t for t, method, status in fake_tg.requests if method == "sendMessage" and status == 429]
    assert len(refused) == 1
    # The retry came no sooner than retry_after after the refusal, and only once.
    assert message.at - refused[0] >= 2.0
    assert message.at - started < 6
    time.sleep(0.3)
    assert len(fake_tg.messages("111")) == 1


@pytest.mark.parametrize("mode", ["refuse", "5xx", "drop", "429"])
def test_outage_during_a_stream_of_fills_loses_nothing_and_keeps_order(
    mode: str, outbox: Outbox, tg_settings: Settings
) -> None:
    """Telegram unreachable for a while (SHORT here: TV2IB_TG_OUTAGE_SECONDS, default 3 s; the
    issue's 30 s runs in bench/notices.py --outage 30) while fills keep coming: afterwards every
    notice has arrived exactly once, in order, in every chat."""
    outage = float(os.environ.get("TV2IB_TG_OUTAGE_SECONDS", "3"))
    fake_tg = outbox.api
    notifier = outbox.start(tg_settings)
    total = 40
    outbox.record(tg_settings, notifier, 0)
    fake_tg.wait_messages(1, "111")
    stop_at = time.monotonic() + outage
    for n in range(1, total):
        if n == 5:
            fake_tg.go_down(mode)
        if n == 35:
            # the last fills arrive after Telegram is back
            time.sleep(max(0.0, stop_at - time.monotonic()))
            fake_tg.come_back()
        outbox.record(tg_settings, notifier, n)
        time.sleep(outage / 30)
    for chat in OWNER_CHATS:
        assert fake_tg.wait_for(lambda api, chat=chat: len(prices_seen(api, chat)) >= total, 20), outbox.seen(
            chat
        )
        assert outbox.seen(chat) == list(range(total))  # once each, in order
    assert wait_until(lambda: outbox.unsent() == 0, 5)
    if mode == "429":  # flood control is waited out (retry_after), not counted as a failed attempt
        assert any(m == "sendMessage" and status == 429 for _, m, status in fake_tg.requests)
        return
    with outbox.sessions() as session:
        failed = [n for n in session.scalars(select(Notice)) if n.attempts > 1]
    assert failed and all(n.last_error for n in failed)  # the outage was real and recorded


def test_flood_of_100_fills_respects_limits_and_loses_nothing(
    tg_env: dict[str, str],
    base_env: dict[str, str],
    any_sessions: sessionmaker[Session],
    start_notifier: Callable[..., Notifier],
) -> None:
    """100 fills at once into 2 chats, against a fake that answers 429 beyond Telegram's limits
    (per chat: burst 4 then 1/s; 30/s overall): no limit is hit, every fill arrives once, in
    order, batched into a handful of messages within seconds."""
    with FakeTelegramAPI(enforce_limits=True) as api:
        settings = Settings.from_mapping({**tg_env, "TELEGRAM_API_URL": api.base_url})
        notifier = start_notifier(settings, any_sessions)
        assert api.wait_for(lambda a: a.count("getMe") >= 1, 5)
        started = time.monotonic()
        for n in range(100):
            record(any_sessions, settings, notifier, n)
        for chat in OWNER_CHATS:
            assert api.wait_for(lambda a, chat=chat: len(prices_seen(a, chat)) >= 100, 30)
            assert prices_seen(api, chat) == list(range(100))
        elapsed = time.monotonic() - started
        assert api.violations == 0
        per_chat = [len(api.messages(chat)) for chat in OWNER_CHATS]
        assert all(count <= 20 for count in per_chat), per_chat
        assert all(len(m.text) <= 4096 for m in api.messages())
        logging.getLogger(__name__).info(
            "flood: 100 fills x 2 chats in %.1f s as %s messages", elapsed, per_chat
        )


def test_a_refused_text_is_given_up_alone_and_later_notices_follow(
    outbox: Outbox, one_chat: Settings
) -> None:
    outbox.record(one_chat, None, 1)
    outbox.record(one_chat, None, 2)
    # "can't parse entities" twice: for the batch of both, then for the first one alone.
    outbox.api.fail_next(400, count=2)
    outbox.start(one_chat)
    assert outbox.api.wait_for(lambda api: 2 in prices_seen(api, "111"), 10)
    assert wait_until(lambda: outbox.unsent() == 0, 5)
    with outbox.sessions() as session:
        errors = [n.last_error for n in session.scalars(select(Notice).order_by(Notice.id))]
    assert errors[0] and errors[0].startswith("given up") and errors[1] is None
    assert outbox.seen("111") == [2]


def test_without_token_notices_go_to_the_log(
    base_env: dict[str, str],
    sqlite_sessions: sessionmaker[Session],
    start_notifier: Callable[..., Notifier],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_mapping(base_env)
    caplog.set_level(logging.INFO, logger="tv2ib.notices")
    notifier = start_notifier(settings, sqlite_sessions)
    record(sqlite_sessions, settings, notifier, 7, strategy="a<b>&c")
    assert wait_until(lambda: unsent(sqlite_sessions) == 0, 5)
    texts = [r.getMessage() for r in caplog.records if r.name == "tv2ib.notices"]
    # One line per notice, plain text: no HTML tags, entities unescaped, the kind up front.
    assert texts == [
        "notice fill: 🟢 BUY 1 ESZ6 @ 7 · entry | filled 1/1"
        " | strategy a<b>&c · alert 01JD0000000000000000000001"
        " | commission 2.25 USD | account DU123"
    ]
    with sqlite_sessions() as session:  # the stored text stays Telegram's HTML
        [stored] = session.scalars(select(Notice.text)).all()
    assert "<b>BUY 1 ESZ6 @ 7</b>" in stored and "a&lt;b&gt;&amp;c" in stored and "\n" in stored


@pytest.mark.parametrize(
    ("html_text", "line"),
    [
        (
            "⛔ <b>Order rejected</b> · ES tp\nIB 201: <i>a &lt;b&gt; &amp; c</i>",
            "⛔ Order rejected · ES tp | IB 201: a <b> & c",
        ),
        ("x\r\n\n  y  \n", "x | y"),
        ("<code>&amp;lt;</code>", "&lt;"),  # unescaped once: what the trader saw in Telegram
        ("cut at the limit <b", "cut at the limit <b"),
    ],
)
def test_plain_line(html_text: str, line: str) -> None:
    assert plain_line(html_text) == line


def test_stop_flushes_what_is_pending(
    fake_tg: FakeTelegramAPI, tg_settings: Settings, sqlite_sessions: sessionmaker[Session]
) -> None:
    notifier = Notifier(tg_settings, sqlite_sessions, None, poll_timeout=1.0)
    notifier.start()
    write_five_then_stop(notifier, sqlite_sessions, tg_settings)
    assert_five_delivered(sqlite_sessions, fake_tg)


def write_five_then_stop(notifier: Notifier, sessions: sessionmaker[Session], settings: Settings) -> None:
    for n in range(5):
        record(sessions, settings, None, n)  # no wake: stop() must still deliver them
    notifier.stop(timeout=5.0)


def assert_five_delivered(sessions: sessionmaker[Session], fake_tg: FakeTelegramAPI) -> None:
    assert unsent(sessions) == 0
    assert prices_seen(fake_tg, "111") == list(range(5))


def test_stop_during_the_first_lease_attempt_still_flushes(
    fake_tg: FakeTelegramAPI,
    tg_settings: Settings,
    sqlite_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What made test_stop_flushes_what_is_pending flaky, made to happen every time.

    stop() right after start() cancels the lease loop while its first try_acquire still runs on
    an executor thread; stop's own final attempt then ran alongside it. Here the first attempt
    reads "no lease yet" and waits (at most 2 s) until the final attempt has read the same, and
    the final attempt's insert waits for the first one's commit: the final attempt lost on the
    unique key, stop() sent nothing and left 10 notices. The notifier must not race itself.
    """
    engine = sqlite_sessions.kw["bind"]
    real_try_acquire = lease.try_acquire
    first_in_flight, final_has_read, first_done = threading.Event(), threading.Event(), threading.Event()
    roles = threading.local()
    calls: list[int] = []

    def try_acquire(*args: object, **kwargs: object) -> bool:
        calls.append(1)
        roles.name = "first" if len(calls) == 1 else "later"
        try:
            if roles.name == "first":
                first_in_flight.set()
                final_has_read.wait(2.0)  # never set when the calls cannot overlap
            return real_try_acquire(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            if roles.name == "first":
                first_done.set()
            roles.name = None

    def hold_statements(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if getattr(roles, "name", None) != "later":
            return
        if statement.lstrip().upper().startswith("INSERT INTO CONTROL"):
            first_done.wait(2.0)  # the first attempt commits its lease row in between

    def after_statement(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if getattr(roles, "name", None) == "later" and statement.lstrip().upper().startswith("SELECT"):
            final_has_read.set()

    monkeypatch.setattr(lease, "try_acquire", try_acquire)
    event.listen(engine, "before_cursor_execute", hold_statements)
    event.listen(engine, "after_cursor_execute", after_statement)
    try:
        notifier = Notifier(tg_settings, sqlite_sessions, None, poll_timeout=1.0)
        notifier.start()
        assert first_in_flight.wait(5)
        write_five_then_stop(notifier, sqlite_sessions, tg_settings)
    finally:
        event.remove(engine, "before_cursor_execute", hold_statements)
        event.remove(engine, "after_cursor_execute", after_statement)
    assert_five_delivered(sqlite_sessions, fake_tg)


def test_notices_written_while_stopped_go_out_after_start(outbox: Outbox, tg_settings: Settings) -> None:
    for n in range(3):
        outbox.record(tg_settings, None, n)
    outbox.start(tg_settings)
    assert outbox.api.wait_for(lambda api: len(prices_seen(api, "222")) >= 3, 10)
    assert outbox.seen("222") == [0, 1, 2]


def test_two_workers_send_each_notice_once(outbox: Outbox, tg_env: dict[str, str]) -> None:
    """Two worker processes (accounts) share the outbox: only the lease holder sends and polls;
    when it stops, the other takes over."""
    settings_a = Settings.from_mapping({**tg_env, "IB_ACCOUNT": "DU1", "TELEGRAM_CHAT_ID": "111"})
    settings_b = Settings.from_mapping({**tg_env, "IB_ACCOUNT": "DU2", "TELEGRAM_CHAT_ID": "111"})
    a = outbox.start(settings_a, lease_ttl=1.5)
    assert wait_until(lambda: a.is_leader, 5)
    b = outbox.start(settings_b, lease_ttl=1.5)
    stop_writers = threading.Event()
    for n in range(10):
        outbox.record(settings_a if n % 2 else settings_b, a if n % 2 else b, n)
    assert outbox.api.wait_for(lambda api: len(prices_seen(api, "111")) >= 10, 10)
    assert not b.is_leader
    a.stop(timeout=2.0)
    assert wait_until(lambda: b.is_leader, 6)
    for n in range(10, 15):
        outbox.record(settings_b, b, n)
    assert outbox.api.wait_for(lambda api: len(prices_seen(api, "111")) >= 15, 10)
    stop_writers.set()
    time.sleep(0.5)
    assert outbox.seen("111") == list(range(15))


def test_rows_written_without_token_still_go_to_the_log_after_a_token_is_set(
    outbox: Outbox, base_env: dict[str, str], tg_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tv2ib.notices")
    outbox.record(Settings.from_mapping(base_env), None, 1)  # no token at the time
    outbox.record(tg_settings, outbox.start(tg_settings), 2)
    assert outbox.api.wait_for(lambda api: prices_seen(api, "111") == [2], 10)
    assert wait_until(lambda: outbox.unsent() == 0, 5)
    assert any(
        "BUY 1 ESZ6 @ 1 · entry" in r.getMessage() for r in caplog.records if r.name == "tv2ib.notices"
    )
    assert all(1 not in outbox.seen(chat) for chat in OWNER_CHATS)


def test_telegram_down_when_the_worker_starts(outbox: Outbox, tg_settings: Settings) -> None:
    """getMe fails at start: the bot keeps trying in the background, notices wait, then flow."""
    outbox.api.go_down("refuse", seconds=2.0)
    notifier = outbox.start(tg_settings)
    for n in range(3):
        outbox.record(tg_settings, notifier, n)
    assert outbox.api.wait_for(lambda api: len(prices_seen(api, "111")) >= 3, 15)
    assert outbox.seen("111") == [0, 1, 2]
    # ... and the bot polls for commands once Telegram is back.
    assert outbox.api.wait_for(lambda api: api.count("getUpdates") >= 1, 10)


def test_persistent_429_is_waited_out_by_the_sender_too(outbox: Outbox, one_chat: Settings) -> None:
    """More 429s than the rate limiter retries (3): the sender itself waits retry_after and tries
    again, without counting it as a failure of the notice."""
    fake_tg = outbox.api
    notifier = outbox.start(one_chat)
    fake_tg.wait_for(lambda api: api.count("getMe") >= 1, 5)
    fake_tg.fail_next(429, retry_after=0.3, count=5)
    outbox.record(one_chat, notifier, 1)
    assert fake_tg.wait_for(lambda api: prices_seen(api, "111") == [1], 15)
    refused = [status for _, method, status in fake_tg.requests if method == "sendMessage" and status == 429]
    assert len(refused) == 5
    time.sleep(0.3)
    assert outbox.seen("111") == [1]


def test_stop_returns_while_telegram_is_unreachable(
    fake_tg: FakeTelegramAPI, tg_settings: Settings, sqlite_sessions: sessionmaker[Session]
) -> None:
    """A worker's shutdown is never held hostage by Telegram: the unsent notice stays for later."""
    notifier = Notifier(tg_settings, sqlite_sessions, None, poll_timeout=1.0)
    notifier.start()
    assert fake_tg.wait_for(lambda api: api.count("getUpdates") >= 1, 8)
    fake_tg.go_down("drop")
    record(sqlite_sessions, tg_settings, notifier, 1)
    time.sleep(0.3)
    started = time.monotonic()
    notifier.stop(timeout=2.0)
    assert time.monotonic() - started < 6.0  # liveness bound, not a performance figure
    assert unsent(sqlite_sessions) == 2
