"""Operator helpers for the Telegram setup.

    python -m worker.notify chats   # which chats wrote to the bot: find your TELEGRAM_CHAT_ID
    python -m worker.notify test    # send a test notice to every configured chat, now

Both read the same settings as the worker (environment and ``.env``). ``chats`` reads pending
updates with getUpdates, so run it while no worker is polling (Telegram answers 409 otherwise):
send any message to your bot first, then run it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from config.settings import Settings, SettingsError, load_settings


def _bot(settings: Settings):  # noqa: ANN202 - telegram.Bot, imported lazily
    from telegram import Bot

    assert settings.telegram_bot_token
    return Bot(settings.telegram_bot_token, base_url=settings.telegram_api_url)


async def list_chats(settings: Settings) -> list[tuple[str, str]]:
    """(chat id, description) of every chat with a pending update to the bot."""
    async with _bot(settings) as bot:
        updates = await bot.get_updates(timeout=0, allowed_updates=["message", "callback_query"])
    seen: dict[str, str] = {}
    for update in updates:
        chat = update.effective_chat
        if chat is None:
            continue
        user = update.effective_user
        name = chat.title or chat.username or chat.first_name or ""
        who = f" from @{user.username}" if user is not None and user.username else ""
        seen[str(chat.id)] = f"{chat.type} {name}{who}".strip()
    return list(seen.items())


async def send_test(settings: Settings) -> list[str]:
    """Send a test notice to every configured chat; returns the chats that accepted it."""
    from telegram.constants import ParseMode

    from worker.notify.transport import chat_ref

    text = "✅ <b>tv2ib test notice</b>\nFills, rejections and alarms will arrive in this chat."
    done = []
    async with _bot(settings) as bot:
        for chat_id in settings.telegram_chat_ids:
            await bot.send_message(chat_ref(chat_id), text, parse_mode=ParseMode.HTML)
            done.append(chat_id)
    return done


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m worker.notify", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["chats", "test"])
    args = parser.parse_args(argv)
    try:
        settings = settings or load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.telegram_bot_token:
        print("TELEGRAM_BOT_TOKEN is not set: notices go to the log.", file=sys.stderr)
        return 2
    from telegram.error import TelegramError

    try:
        if args.command == "chats":
            chats = asyncio.run(list_chats(settings))
            if not chats:
                print("No messages waiting. Send any message to your bot in Telegram, then run this again.")
                return 1
            for chat_id, what in chats:
                print(f"{chat_id}\t{what}")
            print("Set TELEGRAM_CHAT_ID to one (or several, comma-separated) of the ids above.")
            return 0
        if not settings.telegram_chat_ids:
            print("TELEGRAM_CHAT_ID is not set; find it with: python -m worker.notify chats", file=sys.stderr)
            return 2
        for chat_id in asyncio.run(send_test(settings)):
            print(f"sent to {chat_id}")
        return 0
    except TelegramError as exc:
        # The message of InvalidToken may contain the token: name the problem without it.
        print(f"Telegram refused: {type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
