"""How a notice leaves the process: the log, or Telegram through python-telegram-bot.

A transport sends one text to one chat and translates its failures into the sender's small
error vocabulary (freqtrade's TemporaryError vs OperationalError idea):

* :class:`RetryLater` - the API asked us to wait (429 ``retry_after``);
* :class:`TemporaryFailure` - network error, timeout, 5xx: retry with backoff, keep the order;
* :class:`ChatUnavailable` - this chat refuses us for now (bot blocked, chat not found, bad token);
* :class:`Rejected` - Telegram refuses this text for good (e.g. malformed HTML): retrying is useless.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import TYPE_CHECKING, Protocol

from core.approval import button_data

if TYPE_CHECKING:
    from telegram import Bot, InlineKeyboardMarkup

log = logging.getLogger(__name__)
notices_log = logging.getLogger("tv2ib.notices")


class SendFailure(Exception):
    """Base of every transport failure."""


class TemporaryFailure(SendFailure):
    """The transport is unreachable or failing right now; the same text may succeed later."""


class RetryLater(TemporaryFailure):
    """Flood control: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"retry after {retry_after} s")
        self.retry_after = retry_after


class ChatUnavailable(TemporaryFailure):
    """The chat (or the bot token) is refused; retry much later, an operator must act."""


class Rejected(SendFailure):
    """This text will never be accepted."""


class Transport(Protocol):
    """Delivers one text to one chat."""

    #: several queued notices may be joined into one message (saves the per-chat rate)
    batching: bool
    #: apply the per-chat pace (Telegram: ~1 message/s per chat, short bursts tolerated)
    paced: bool

    async def send(
        self, chat_id: str, text: str, silent: bool, kind: str = "", approval: str | None = None
    ) -> None:
        """Deliver ``text`` (Telegram HTML; ``kind`` says what it is, e.g. "fill") or raise a
        :class:`SendFailure`. ``approval``: the alert the text asks to approve (Telegram adds
        Approve / Reject buttons; core/approval.py)."""


_TAG = re.compile(r"<[^>]*>")
_LINE_BREAK = re.compile(r"\s*[\r\n]+\s*")


def plain_line(text: str) -> str:
    """The Telegram HTML ``text`` as ONE plain log line: tags stripped, entities unescaped, lines
    joined with " | " (one event, one line: log shippers and grep see the whole notice)."""
    # Tags first, then entities: a literal "<" in a value is escaped ("&lt;") and is no tag.
    plain = html.unescape(_TAG.sub("", text)).strip()
    return _LINE_BREAK.sub(" | ", plain)


class LogTransport:
    """Without a bot token the same texts go to the ``tv2ib.notices`` logger, one line each."""

    batching = False
    paced = False

    async def send(
        self, chat_id: str, text: str, silent: bool, kind: str = "", approval: str | None = None
    ) -> None:
        answer = (
            f" | answer on the dashboard or POST /api/alerts/{approval}/approve (or /reject)"
            if approval
            else ""
        )
        notices_log.info(
            "notice%s%s: %s%s",
            f" {kind}" if kind else "",
            " (silent)" if silent else "",
            plain_line(text),
            answer,
        )


_CHAT_INT = re.compile(r"-?\d+")


def chat_ref(chat_id: str) -> int | str:
    """Telegram wants numeric chat ids as numbers (the rate limiter keys groups by them) and
    ``@channel`` names as strings."""
    return int(chat_id) if _CHAT_INT.fullmatch(chat_id) else chat_id


class TelegramTransport:
    """sendMessage through a python-telegram-bot ``Bot`` (with its ``AIORateLimiter``)."""

    batching = True
    paced = True

    def __init__(self, bot: Bot, ready: asyncio.Event | None = None, ready_wait: float = 5.0) -> None:
        self.bot = bot
        self.ready = ready
        self.ready_wait = ready_wait

    async def send(
        self, chat_id: str, text: str, silent: bool, kind: str = "", approval: str | None = None
    ) -> None:
        if self.ready is not None and not self.ready.is_set():
            # The bot has not reached Telegram yet (getMe): wait a little, then count a failure.
            try:
                await asyncio.wait_for(self.ready.wait(), self.ready_wait)
            except TimeoutError:
                raise TemporaryFailure("telegram bot not connected yet") from None
        from telegram import LinkPreviewOptions
        from telegram.constants import ParseMode
        from telegram.error import (
            BadRequest,
            ChatMigrated,
            Forbidden,
            InvalidToken,
            NetworkError,
            RetryAfter,
            TelegramError,
        )

        try:
            await self.bot.send_message(
                chat_id=chat_ref(chat_id),
                text=text,
                parse_mode=ParseMode.HTML,
                disable_notification=silent,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=None if approval is None else approval_buttons(approval),
            )
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc), str(exc)) from exc
        except ChatMigrated as exc:
            raise ChatUnavailable(f"chat migrated to {exc.new_chat_id}; update TELEGRAM_CHAT_ID") from exc
        except (Forbidden, InvalidToken) as exc:
            raise ChatUnavailable(str(exc)) from exc
        except BadRequest as exc:  # a subclass of NetworkError: must come first
            if "chat not found" in str(exc).lower():
                raise ChatUnavailable(str(exc)) from exc
            raise Rejected(str(exc)) from exc
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
        except TelegramError as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc


def _seconds(exc: Exception) -> float:
    # PTB 22 keeps a timedelta in _retry_after while the public attribute moves from int to
    # timedelta; accept both.
    value = getattr(exc, "_retry_after", None) or getattr(exc, "retry_after", 1)
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


def approval_buttons(alert_id: str) -> InlineKeyboardMarkup:
    """Approve / Reject under an approval notice (the worker's bot takes the press: bot.py)."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("✅ Approve", callback_data=button_data(alert_id, True)),
                InlineKeyboardButton("❌ Reject", callback_data=button_data(alert_id, False)),
            ]
        ]
    )
