"""A local fake of the Telegram Bot API for tests and benchmarks.

The real python-telegram-bot client talks HTTP to it through ``TELEGRAM_API_URL`` (``base_url``).
It implements what PTB calls (getMe, sendMessage, getUpdates with long polling, deleteWebhook,
setMyCommands, answerCallbackQuery, editMessageText, editMessageReplyMarkup, ...; any other method
answers ``true``), records every sendMessage with its arrival time, every answered button press
(:attr:`answers`) and every keyboard change (:attr:`markup_edits`), and misbehaves on command:

* :meth:`fail_next` - the next N calls answer 429 ``retry_after`` or a 5xx;
* :meth:`go_down` / :meth:`come_back` - "refuse" (listening socket closed: connection refused),
  "drop" (connections closed without an answer), "5xx" (502 Bad Gateway) or "429" (flood control:
  Too Many Requests with ``retry_after`` 1 s) for a while;
* :meth:`slow` - every call of a method answers only after a delay (a slow Bot API, or a
  start-up step that loses a race);
* ``enforce_limits`` - Telegram's flood control: per chat a bucket of ``chat_burst`` messages
  refilled at ``chat_rate``/s, overall ``global_rate``/s; over it the answer is 429 and the
  violation is counted.

Thread-based (``ThreadingHTTPServer``) on a free loopback port; start with :meth:`start`,
stop with :meth:`stop` (or use it as a context manager).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "tv2ib test bot",
    "username": "tv2ib_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class SentMessage:
    """One sendMessage (or editMessageText) the fake received and accepted."""

    at: float  # time.time() on arrival
    chat_id: str
    text: str
    parse_mode: str | None
    disable_notification: bool
    message_id: int
    reply_markup: Any = None
    method: str = "sendMessage"


@dataclass
class _Bucket:
    capacity: float
    rate: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FakeTelegramAPI:
    """The fake server; see the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        enforce_limits: bool = False,
        chat_burst: int = 4,
        chat_rate: float = 1.0,
        global_rate: float = 30.0,
        port: int = 0,
    ) -> None:
        self.token = token
        self.enforce_limits = enforce_limits
        self.chat_burst = chat_burst
        self.chat_rate = chat_rate
        self.global_rate = global_rate
        self.port = port
        self.sent: list[SentMessage] = []
        self.requests: list[tuple[float, str, int]] = []  # (time, method, http status)
        self.violations = 0  # 429s answered because a limit was exceeded
        self.answers: list[dict[str, Any]] = []  # answerCallbackQuery calls: callback_query_id, text
        self.markup_edits: list[
            dict[str, Any]
        ] = []  # editMessageReplyMarkup: chat_id, message_id, reply_markup
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_message_id = 1
        self._failures: list[tuple[str | None, int, float]] = []  # (method or None, status, retry_after)
        self._delays: dict[str, float] = {}  # method -> seconds before it is served
        self._mode = "up"  # up | refuse | drop | 5xx | 429
        self._down_until: float | None = None
        self._chat_buckets: dict[str, _Bucket] = {}
        self._global_bucket = _Bucket(global_rate, global_rate, global_rate)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._counts: dict[str, int] = defaultdict(int)

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What TELEGRAM_API_URL must be (PTB appends the token)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def settings(self, *chats: object) -> dict[str, str]:
        """The settings that point tv2ib's notices at this server, for ``chats``."""
        return {
            "TELEGRAM_BOT_TOKEN": self.token,
            "TELEGRAM_CHAT_ID": ",".join(map(str, chats)),
            "TELEGRAM_API_URL": self.base_url,
        }

    def start(self) -> FakeTelegramAPI:
        self._listen()
        return self

    def _listen(self) -> None:
        fake = self

        class Handler(_Handler):
            api = fake

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._unlisten()

    def __enter__(self) -> FakeTelegramAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- misbehaviour on command ------------------------------------------------------------------

    def fail_next(
        self, status: int = 429, *, count: int = 1, retry_after: float = 1, method: str | None = "sendMessage"
    ) -> None:
        """The next ``count`` calls of ``method`` (None: any method) answer ``status``."""
        with self._cond:
            self._failures.extend([(method, status, retry_after)] * count)

    def slow(self, method: str, seconds: float) -> None:
        """Serve every later call of ``method`` only after ``seconds`` (0: at once again)."""
        with self._cond:
            self._delays[method] = seconds

    def go_down(self, mode: str = "refuse", seconds: float | None = None) -> None:
        """Become unreachable: "refuse", "drop", "5xx" or "429"; back by itself after ``seconds``."""
        assert mode in ("refuse", "drop", "5xx", "429")
        with self._cond:
            self._mode = mode
            self._down_until = None if seconds is None else time.monotonic() + seconds
        if mode == "refuse":
            self._unlisten()
            if seconds is not None:
                timer = threading.Timer(seconds, self.come_back)
                timer.daemon = True
                timer.start()

    def come_back(self) -> None:
        """Reachable again."""
        with self._cond:
            was = self._mode
            self._mode = "up"
            self._down_until = None
        if was == "refuse" and self._server is None and not self._stopped:
            self._listen()

    def mode(self) -> str:
        with self._cond:
            if (
                self._down_until is not None
                and time.monotonic() >= self._down_until
                and self._mode != "refuse"
            ):
                self._mode = "up"
                self._down_until = None
            return self._mode

    # --- updates (commands from users) ------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> int:
        with self._cond:
            update = {"update_id": self._next_update_id, **update}
            self._next_update_id += 1
            self._updates.append(update)
            self._cond.notify_all()
            return update["update_id"]

    def push_command(
        self, chat_id: int, text: str, *, user_id: int | None = None, username: str = "someone"
    ) -> int:
        """A private-chat message ``text`` (e.g. "/pause") from ``user_id`` (default: the chat id)."""
        user_id = chat_id if user_id is None else user_id
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        with self._cond:
            message_id = self._next_message_id
            self._next_message_id += 1
        return self.push_update(
            {
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private", "first_name": username},
                    "from": {"id": user_id, "is_bot": False, "first_name": username, "username": username},
                    "text": text,
                    "entities": entities,
                }
            }
        )

    def push_callback(self, chat_id: int, data: str, *, message_id: int, user_id: int | None = None) -> int:
        """A press on an inline button of our message ``message_id``."""
        user_id = chat_id if user_id is None else user_id
        user = {"id": user_id, "is_bot": False, "first_name": "someone"}
        return self.push_update(
            {
                "callback_query": {
                    "id": f"cb{time.monotonic_ns()}",
                    "from": user,
                    "chat_instance": "ci",
                    "data": data,
                    "message": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "from": BOT_USER,
                        "text": "question",
                    },
                }
            }
        )

    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)

    # --- what arrived -----------------------------------------------------------------------------

    def messages(self, chat_id: str | int | None = None) -> list[SentMessage]:
        with self._cond:
            return [m for m in self.sent if chat_id is None or m.chat_id == str(chat_id)]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` is true (re-checked on every accepted message)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))

    def wait_message(self, chat_id: str | int, *needles: str, timeout: float = 10.0) -> SentMessage | None:
        """The first message to ``chat_id`` that contains every one of ``needles`` (waits up to
        ``timeout``); None when none came."""
        found: list[SentMessage] = []

        def check(api: FakeTelegramAPI) -> bool:
            found[:] = [m for m in api.messages(chat_id) if all(n in m.text for n in needles)]
            return bool(found)

        return found[0] if self.wait_for(check, timeout) else None

    def wait_messages(
        self, count: int, chat_id: str | int | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        self.wait_for(lambda api: len(api.messages(chat_id)) >= count, timeout)
        return self.messages(chat_id)

    def count(self, method: str) -> int:
        with self._cond:
            return self._counts[method]

    # --- request handling (server threads) --------------------------------------------------------

    def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """(status, JSON body), or None to drop the connection without an answer."""
        mode = self.mode()
        if mode in ("drop", "refuse"):
            return None
        if mode == "5xx":
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        if mode == "429" and method != "getUpdates":  # flood control limits sending, not polling
            return self._error(429, 1)
        with self._cond:
            delay = self._delays.get(method, 0.0)
        if delay > 0:
            time.sleep(delay)  # this request's own server thread: other calls go on meanwhile
        with self._cond:
            self._counts[method] += 1
            for i, (only, status, retry_after) in enumerate(self._failures):
                if only is None or only == method:
                    del self._failures[i]
                    return self._error(status, retry_after)
        func = getattr(self, f"_m_{method}", None)
        if func is None:
            return 200, {"ok": True, "result": True}
        return func(params)

    @staticmethod
    def _error(status: int, retry_after: float) -> tuple[int, dict[str, Any]]:
        if status == 429:
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {int(retry_after)}",
                "parameters": {"retry_after": retry_after},
            }
        names = {400: "Bad Request: can't parse entities", 403: "Forbidden: bot was blocked by the user"}
        return status, {
            "ok": False,
            "error_code": status,
            "description": names.get(status, "Internal Server Error"),
        }

    def _m_getMe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": BOT_USER}

    def _m_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if _truthy(params.get("drop_pending_updates")):
            with self._cond:
                self._updates.clear()
        return 200, {"ok": True, "result": True}

    def _m_getUpdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 30.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._stopped and self.mode() == "up":
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            return 200, {"ok": True, "result": list(self._updates)}

    def _check_limits(self, chat_id: str) -> tuple[int, dict[str, Any]] | None:
        if not self.enforce_limits:
            return None
        with self._cond:
            bucket = self._chat_buckets.get(chat_id)
            if bucket is None:
                bucket = self._chat_buckets[chat_id] = _Bucket(
                    self.chat_burst, self.chat_rate, self.chat_burst
                )
            if not bucket.take() or not self._global_bucket.take():
                self.violations += 1
                return self._error(429, 1)
        return None

    def _m_sendMessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = str(params.get("chat_id"))
        text = str(params.get("text") or "")
        if not text or len(text.encode("utf-16-le")) // 2 > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        limited = self._check_limits(chat_id)
        if limited is not None:
            return limited
        reply_markup = params.get("reply_markup")
        if isinstance(reply_markup, str):
            reply_markup = json.loads(reply_markup)
        return self._keep(
            SentMessage(time.time(), chat_id, text, params.get("parse_mode"),
                        _truthy(params.get("disable_notification")), 0, reply_markup)
        )  # fmt: skip

    def _m_editMessageText(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = str(params.get("chat_id"))
        text = str(params.get("text") or "")
        message_id = int(params.get("message_id") or 0)
        return self._keep(
            SentMessage(time.time(), chat_id, text, params.get("parse_mode"), False, message_id, None,
                        "editMessageText")
        )  # fmt: skip

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.answers.append(
                {"callback_query_id": params.get("callback_query_id"), "text": params.get("text")}
            )
            self._cond.notify_all()
        return 200, {"ok": True, "result": True}

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A message's buttons changed (removed when ``reply_markup`` is absent); answered with the
        message, as Telegram does for a message of a chat."""
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        chat_id, message_id = str(params.get("chat_id")), int(params.get("message_id") or 0)
        with self._cond:
            self.markup_edits.append({"chat_id": chat_id, "message_id": message_id, "reply_markup": markup})
            for sent in self.sent:
                if sent.chat_id == chat_id and sent.message_id == message_id:
                    sent.reply_markup = markup
            self._cond.notify_all()
        message = {"message_id": message_id, "date": int(time.time()), "text": "question",
                   "chat": {"id": _as_int(chat_id), "type": "private"}, "from": BOT_USER}  # fmt: skip
        return 200, {"ok": True, "result": message}

    def _keep(self, message: SentMessage) -> tuple[int, dict[str, Any]]:
        """Record an accepted message (a new one, message_id 0, gets the next id) and answer with it
        as Telegram does."""
        with self._cond:
            if not message.message_id:
                message.message_id = self._next_message_id
                self._next_message_id += 1
            self.sent.append(message)
            self._cond.notify_all()
        return 200, {
            "ok": True,
            "result": {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": {"id": _as_int(message.chat_id), "type": "private"},
                "from": BOT_USER,
                "text": message.text,
            },
        }


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


def _as_int(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish mid-request (cancelled long polls, outages on purpose) are normal here.
        pass


class _Handler(BaseHTTPRequestHandler):
    api: FakeTelegramAPI
    protocol_version = "HTTP/1.1"  # keep-alive, as Telegram

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request lines
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve({})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        params: dict[str, Any] = {}
        if body:
            if "json" in ctype:
                params = json.loads(body)
            elif "multipart" in ctype:
                params = _parse_multipart(body, ctype)
            else:
                params = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        self._serve(params)

    def _serve(self, params: dict[str, Any]) -> None:
        path = urlparse(self.path).path
        prefix = f"/bot{self.api.token}/"
        if not path.startswith(prefix):
            self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        method = path[len(prefix) :]
        query = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
        result = self.api.handle(method, {**query, **params})
        if result is None:
            self.close_connection = True  # no answer at all: the client sees a dropped connection
            return
        status, doc = result
        with self.api._cond:
            self.api.requests.append((time.time(), method, status))
        self._answer(status, doc)

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        raw = json.dumps(doc).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:  # the client went away (e.g. a long poll cancelled at shutdown)
            self.close_connection = True


def _parse_multipart(body: bytes, ctype: str) -> dict[str, Any]:
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    params: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            params[name] = (
                part.get_content() if part.get_content_maintype() == "text" else part.get_payload(decode=True)
            )
    return params
