"""The owner-only Telegram command bot (python-telegram-bot v22, getUpdates polling).

Runs on the notifier's loop beside the outbox sender: we call the Application's ``initialize``,
``start``, ``updater.start_polling`` and ``stop``/``shutdown`` ourselves (never ``run_polling``,
which wants the whole thread). Commands call the same functions as the HTTP admin API
(``core.services``); they block on the database and Redis, so they run in a thread executor.

Only the configured chat ids (``TELEGRAM_CHAT_ID``) are served; every other update is logged and
dropped before any handler runs. Commands sent while the worker was down are dropped at start
(``drop_pending_updates``): a stale "/flatten confirm" must never fire hours later. That drop
happens BEFORE the bot reports ready and before the first notice leaves (the transport waits for
``ready``): an owner who answers a notice with a command is never dropped with the stale ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    TypeHandler,
)

from config.settings import Settings
from core import approval, performance, profit, services
from worker.notify.notice_rows import pending_count
from worker.notify.replies import (
    Command,
    approval_done,
    esc,
    flatten_done,
    flatten_question,
    help_text,
    last_text,
    orders_text,
    paused_text,
    pnl_text,
    positions_text,
    status_text,
)
from worker.notify.report_replies import daily_text, performance_text, profit_text
from worker.retry import backoff_delay

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

T = TypeVar("T")
FLATTEN_CONFIRM_SECONDS = 60
# The one list of commands: the bot answers exactly these (handler ``CommandBot._<name>``), the
# command menu (setMyCommands) and the /help text are made from it, so they cannot disagree.
COMMANDS = (
    Command("status", "IB and worker state, queue depth, paused or not"),
    Command("positions", "open positions"),
    Command("orders", "working orders"),
    Command("pnl", "today's realized PnL and fees (UTC day)"),
    Command(
        "performance",
        "slippage against the alert's price and signal-to-fill latency, per strategy",
        "[strategy]",
    ),
    Command("profit", "realized PnL, trades, win rate, profit factor, drawdown", "[days]"),
    Command("daily", "realized PnL per UTC day", "[days]"),
    Command("last", "recent alerts and their outcomes"),
    Command("pause", "stop placing new orders"),
    Command("resume", "place orders again"),
    Command("flatten", "cancel all working orders and close all positions (asks first)", "[account]"),
)
HELP_COMMANDS = ("help", "start")
DAILY_DAYS = 7  # /daily without a number: the last week, as freqtrade's  # both answer the help text (Telegram sends /start first)


def build_application(settings: Settings, poll_timeout: float = 10.0) -> Application:
    """The PTB Application with our base URL, timeouts and the rate limiter (429-aware)."""
    assert settings.telegram_bot_token
    return (
        Application.builder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_url)
        # Honours 429 retry_after (pausing every request meanwhile) and the overall 30/s and
        # per-group 20/min limits; the per-chat pace of private chats is the sender's job.
        .rate_limiter(AIORateLimiter(max_retries=3))
        .defaults(
            Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
        )
        .connect_timeout(5.0)
        .read_timeout(10.0)
        .write_timeout(10.0)
        .pool_timeout(5.0)
        .get_updates_connect_timeout(5.0)
        .get_updates_read_timeout(poll_timeout + 5.0)
        .build()
    )


class CommandBot:
    """Owns the Application: its bot also carries the notices (one rate limiter for both)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis | None,
        *,
        poll_timeout: float = 10.0,
        confirm_seconds: int = FLATTEN_CONFIRM_SECONDS,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis_client
        self.poll_timeout = poll_timeout
        self.confirm_seconds = confirm_seconds
        self.owners = frozenset(str(c) for c in settings.telegram_chat_ids)
        self.app = build_application(settings, poll_timeout)
        self.bot = self.app.bot
        # Set once commands are received: token checked (getMe), stale commands dropped, polling on.
        self.ready = asyncio.Event()
        # chat -> (nonce, deadline, account): one pending flatten per chat, confirmed within the window
        self._pending_flatten: dict[str, tuple[str, float, str | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._register()

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting and polling in the background; returns at once (Telegram may be down)."""
        self._task = asyncio.get_running_loop().create_task(self._lifecycle(), name="telegram-bot")

    async def _lifecycle(self) -> None:
        failures = 0
        while True:
            try:
                await self.app.initialize()  # getMe: checks the token
                break
            except InvalidToken:
                # The exception text holds the token: never log it.
                log.error("Telegram rejected TELEGRAM_BOT_TOKEN; notices wait in the outbox (retry in 300 s)")
                await asyncio.sleep(300)
            except TelegramError as exc:
                failures += 1
                delay = backoff_delay(failures, 1.0, 30.0, jitter=False)
                log.warning("Telegram unreachable at start (%s); retry in %.0f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
        if not self.owners:
            log.warning("no TELEGRAM_CHAT_ID: the bot answers nobody")
        await self.app.start()
        await self._start_polling()
        # Only now: a command sent from here on is never dropped as "pending from before the
        # start" (the drop is done), and the first notice leaves only after this point.
        self.ready.set()
        log.info("telegram bot @%s ready; commands from %d chat(s)", self.bot.username, len(self.owners))
        try:
            await self.bot.set_my_commands([BotCommand(c.name, c.summary) for c in COMMANDS])
        except TelegramError as exc:
            log.info("could not publish the command menu: %s", exc)

    async def _start_polling(self) -> None:
        """Drop the commands sent while no worker polled, then poll (returns once polling runs)."""
        failures = 0
        while True:
            try:
                # PTB's bootstrap calls deleteWebhook(drop_pending_updates) and retries network
                # errors itself; it returns when the drop is done and the polling task exists.
                await self.app.updater.start_polling(  # type: ignore[union-attr]
                    poll_interval=0.0,
                    timeout=int(self.poll_timeout),
                    bootstrap_retries=-1,
                    drop_pending_updates=True,
                    allowed_updates=["message", "callback_query"],
                    error_callback=self._polling_error,
                )
                return
            except TelegramError as exc:  # e.g. InvalidToken, which PTB does not retry
                failures += 1
                delay = backoff_delay(failures, 1.0, 300.0, jitter=False)
                log.error("telegram polling did not start (%s); retry in %.0f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)

    def _polling_error(self, exc: TelegramError) -> None:
        # PTB retries getUpdates itself; one line instead of a traceback per failed poll.
        log.warning("telegram getUpdates failed: %s: %s", type(exc).__name__, exc)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and release the HTTP clients (bounded: Telegram may be unreachable)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with asyncio.timeout(timeout):
                if self.app.updater is not None and self.app.updater.running:
                    await self.app.updater.stop()
                if self.app.running:
                    await self.app.stop()
                await self.app.shutdown()
        except Exception as exc:  # noqa: BLE001 - stopping must never raise into the worker's shutdown
            log.warning("telegram bot did not stop cleanly: %s: %s", type(exc).__name__, exc)

    # --- handlers ---------------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        handlers: dict[str, Callable[..., Any]] = {c.name: getattr(self, f"_{c.name}") for c in COMMANDS}
        handlers.update(dict.fromkeys(HELP_COMMANDS, self._help))
        for name, handler in handlers.items():
            app.add_handler(CommandHandler(name, handler))
        app.add_handler(CallbackQueryHandler(self._flatten_button, pattern=r"^flatten:"))
        app.add_handler(CallbackQueryHandler(self._approval_button, pattern=r"^approval:"))
        app.add_error_handler(self._error)

    async def _gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Drop every update that does not come from an owner chat, before any handler."""
        chat = update.effective_chat
        if chat is not None and str(chat.id) in self.owners:
            return
        user = update.effective_user
        message = update.effective_message
        text = (message.text or "")[:80] if message is not None else ""
        log.warning(
            "ignored telegram update from a stranger: chat=%s user=%s (@%s) text=%r",
            chat.id if chat else None,
            user.id if user else None,
            user.username if user else None,
            text,
        )
        raise ApplicationHandlerStop

    async def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service function in the executor, never on the bot loop."""
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(func, *args, **kwargs)
        )

    async def _reply(self, update: Update, text: str, **kwargs: Any) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(text, **kwargs)

    def _by(self, update: Update) -> str:
        user = update.effective_user
        return f"telegram:{user.id if user else update.effective_chat.id if update.effective_chat else '?'}"

    async def _help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, help_text(COMMANDS))

    async def _status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        doc = await self._call(services.status, self.sessions, self.redis)
        try:
            doc["notices_pending"] = await self._call(self._notices_pending)
        except Exception:  # noqa: BLE001 - the count is a nicety
            pass
        await self._reply(update, status_text(doc))

    def _notices_pending(self) -> int:
        with self.sessions() as session:
            return pending_count(session)

    async def _positions(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, positions_text(await self._call(services.list_positions, self.sessions)))

    async def _orders(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        rows = await self._call(services.list_orders, self.sessions, working_only=True, limit=40)
        await self._reply(update, orders_text(rows))

    async def _pnl(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, pnl_text(await self._call(services.pnl_today, self.sessions)))

    async def _performance(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        strategy = " ".join(context.args or []).strip()[:128] or None
        doc = await self._call(performance.performance, self.sessions, strategy=strategy)
        await self._reply(update, performance_text(doc, strategy))

    async def _profit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        days = _days_arg(context.args, None, performance.MAX_DAYS)
        if days is False:
            await self._reply(update, "Send /profit, or /profit N for the last N days.")
            return
        await self._reply(update, profit_text(await self._call(profit.profit, self.sessions, days)))

    async def _daily(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        days = _days_arg(context.args, DAILY_DAYS, profit.MAX_DAILY_DAYS)
        if days is False or days is None:
            await self._reply(
                update, f"Send /daily, or /daily N for the last N days (1 to {profit.MAX_DAILY_DAYS})."
            )
            return
        await self._reply(update, daily_text(await self._call(profit.daily, self.sessions, days)))

    async def _last(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, last_text(await self._call(services.recent_alerts, self.sessions, 10)))

    async def _pause(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._call(services.set_paused, self.sessions, True, self._by(update))
        log.warning("trading paused by %s", self._by(update))
        await self._reply(update, paused_text(True))

    async def _resume(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._call(services.set_paused, self.sessions, False, self._by(update))
        log.warning("trading resumed by %s", self._by(update))
        await self._reply(update, paused_text(False))

    async def _flatten(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = str(update.effective_chat.id) if update.effective_chat else ""
        args = list(context.args or [])
        if [a.lower() for a in args[:1]] == ["confirm"]:
            account = self._take_pending(chat_id, None)
            if account is not False:
                await self._do_flatten(update, account)
            else:
                await self._reply(update, "No flatten is waiting for confirmation. Send /flatten first.")
            return
        # "/flatten DU123" names another worker's account (one worker, one queue, per account).
        account = args[0] if args else self.settings.ib_account
        nonce = secrets.token_hex(4)
        self._pending_flatten[chat_id] = (nonce, time.monotonic() + self.confirm_seconds, account)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm flatten", callback_data=f"flatten:yes:{nonce}"),
                    InlineKeyboardButton("Cancel", callback_data=f"flatten:no:{nonce}"),
                ]
            ]
        )
        await self._reply(
            update,
            flatten_question(account, self.confirm_seconds),
            reply_markup=keyboard,
        )

    def _take_pending(self, chat_id: str, nonce: str | None) -> str | None | bool:
        """Consume the chat's pending flatten: its account when still valid (and matching
        ``nonce``), else False."""
        pending = self._pending_flatten.get(chat_id)
        if pending is None:
            return False
        if nonce is not None and pending[0] != nonce:
            return False
        del self._pending_flatten[chat_id]
        return pending[2] if time.monotonic() <= pending[1] else False

    async def _flatten_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        _, answer, nonce = (query.data or "flatten:no:").split(":", 2)
        chat_id = str(update.effective_chat.id) if update.effective_chat else ""
        await query.answer()
        if answer != "yes":
            self._pending_flatten.pop(chat_id, None)
            await query.edit_message_text("Flatten cancelled.")
            return
        account = self._take_pending(chat_id, nonce)
        if account is False:
            await query.edit_message_text("This flatten request expired. Send /flatten again.")
            return
        await query.edit_message_text("Flatten confirmed.")
        await self._do_flatten(update, account)  # type: ignore[arg-type]

    async def _approval_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Approve / Reject under an approval notice (core/approval.py). Only a configured chat gets
        here (the gate above drops and logs every other one); the chat and the user are recorded."""
        query = update.callback_query
        parsed = approval.parse_button(query.data if query is not None else None)
        if query is None or parsed is None or self.redis is None:
            if query is not None:
                await query.answer("Not available here: answer on the dashboard.")
            return
        alert_id, approve = parsed
        chat, user = update.effective_chat, update.effective_user
        by = f"Telegram chat {chat.id if chat else '?'} (user {user.id if user else '?'})"
        try:
            doc = await self._call(approval.decide, self.sessions, self.redis, self.settings, alert_id,
                                   approve=approve, by=by)  # fmt: skip
        except approval.ApprovalRefused as exc:
            await query.answer(str(exc)[:190])
            await query.edit_message_reply_markup(reply_markup=None)  # the question is over
            await self._reply(update, f"⛔ {esc(str(exc))}")
            return
        await query.answer("Approved" if approve else "Rejected")
        await query.edit_message_reply_markup(reply_markup=None)
        await self._reply(update, approval_done(doc))

    async def _do_flatten(self, update: Update, account: str | None) -> None:
        by = self._by(update)
        log.warning("flatten of %s requested by %s", account or "the default account", by)
        try:
            doc = await self._call(services.request_flatten, self.redis, account, by)
        except services.FlattenRefused as exc:
            await self._reply(update, f"⛔ Flatten refused: {esc(str(exc))}")
            return
        except Exception as exc:  # noqa: BLE001 - tell the owner rather than stay silent
            log.exception("flatten request failed")
            await self._reply(update, f"⛔ Flatten could not be requested: {type(exc).__name__}. Try again.")
            return
        await self._reply(update, flatten_done(doc))

    async def _error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram command failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_message is not None:
            try:
                await update.effective_message.reply_text("⛔ That command failed; see the worker log.")
            except TelegramError:
                pass


def _days_arg(args: list[str] | None, default: int | None, most: int) -> int | None | bool:
    """The command's one optional whole number of days (taken into 1..``most``); False when it is
    something else."""
    if not args:
        return default
    if len(args) > 1 or not (args[0].isascii() and args[0].isdigit()):
        return False
    return max(1, min(int(args[0]), most))
