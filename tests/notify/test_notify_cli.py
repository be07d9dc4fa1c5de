"""The operator helpers against the fake Bot API: find your chat id, send a test notice."""

from __future__ import annotations

import pytest
from fakes.telegram_api import FakeTelegramAPI

from config.settings import Settings
from worker.notify.__main__ import main


def test_chats_lists_who_wrote_to_the_bot(
    fake_tg: FakeTelegramAPI, tg_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chats"], tg_settings) == 1  # nothing yet: says what to do
    assert "Send any message to your bot" in capsys.readouterr().out
    fake_tg.push_command(555, "hello", username="trader")
    assert main(["chats"], tg_settings) == 0
    out = capsys.readouterr().out
    assert "555\tprivate trader from @trader" in out
    assert fake_tg.pending_updates() == 1  # not consumed: the worker's bot may still see it


def test_test_sends_to_every_configured_chat(
    fake_tg: FakeTelegramAPI, tg_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test"], tg_settings) == 0
    assert [m.chat_id for m in fake_tg.messages()] == ["111", "222"]
    assert all("tv2ib test notice" in m.text and m.parse_mode == "HTML" for m in fake_tg.messages())


def test_errors_are_named_without_the_token(
    fake_tg: FakeTelegramAPI,
    tg_env: dict[str, str],
    base_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["test"], Settings.from_mapping(base_env)) == 2
    wrong = Settings.from_mapping({**tg_env, "TELEGRAM_BOT_TOKEN": "999:wrong-token-value"})
    assert main(["test"], wrong) == 1
    err = capsys.readouterr().err
    assert "Telegram refused" in err and "wrong-token-value" not in err
