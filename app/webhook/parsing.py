"""Reading and parsing the webhook body: bounded, time-limited, strict JSON.

TradingView sends ``application/json`` when the alert message parses as JSON, else ``text/plain``;
curl's ``-d`` sends ``application/x-www-form-urlencoded``. All three carry the JSON alert in
the body. Anything else (multipart forms, XML, ...) is refused with 415 before reading.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from app.webhook.redaction import Redactor

try:  # what gunicorn's body readers raise for a malformed chunked body (bad size, no terminator)
    from gunicorn.http.errors import ParseException as MalformedBody
except ImportError:  # pragma: no cover - served by another WSGI server

    class MalformedBody(Exception):  # type: ignore[no-redef]
        pass


# Under our gunicorn worker the whole body is in memory before the app runs (the request deadline
# is REQUEST_TIMEOUT_SECONDS, config/gunicorn_gthread.py); this per-read limit is the backstop for
# bodies still read from the socket (another server, a request handed over early).
BODY_READ_TIMEOUT = 5.0
ACCEPTED_CONTENT_TYPES = frozenset(
    {"", "application/json", "text/plain", "application/x-www-form-urlencoded", "text/json"}
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SECRET_IN_TEXT = re.compile(r'"secret"\s*:\s*"((?:[^"\\]|\\.){1,512})"')


class BodyError(Exception):
    """The body cannot be used; ``status`` and ``message`` are the answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_content_type(request: Request) -> None:
    """Refuse media types that cannot carry a JSON alert (415), before reading the body."""
    if request.mimetype not in ACCEPTED_CONTENT_TYPES:
        raise BodyError(415, f"send the alert as application/json or text/plain, not {request.mimetype[:60]}")


def read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` of body: 413 above it (by Content-Length, unread), 408 when stalled."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyError(413, f"the body is {length} bytes; the limit is {max_bytes}")
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(BODY_READ_TIMEOUT)
    stream = request.stream
    chunks: list[bytes] = []
    total = 0
    try:
        while total <= max_bytes:
            chunk = stream.read(min(65536, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except TimeoutError:
        raise BodyError(408, f"the body did not arrive within {BODY_READ_TIMEOUT:g} s") from None
    except ClientDisconnected:
        raise BodyError(400, "the body ended before its announced length") from None
    except HTTPException as exc:  # werkzeug's own limits, e.g. 413 for a chunked body
        raise BodyError(exc.code or 400, exc.description or "unreadable body") from None
    except MalformedBody as exc:  # its text may quote body bytes (the secret): name the kind only
        raise BodyError(400, f"the chunked body is malformed ({type(exc).__name__})") from None
    except OSError:
        raise BodyError(400, "the body ended before it was complete") from None
    if total > max_bytes:
        raise BodyError(413, f"the body is over the limit of {max_bytes} bytes")
    if length is not None and total < length:
        # The client closed its side early: a truncated alert is not an alert.
        raise BodyError(400, f"the body ended after {total} of its announced {length} bytes")
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True)
class Decoded:
    """A body decoded: the object (None when unusable), its text, the reason for a 400, and the
    path of every key that appears more than once in its object (``("takeProfit", "percent")``)."""

    alert: dict[str, Any] | None
    text: str | None
    error: str | None = None
    duplicate_keys: tuple[tuple[str, ...], ...] = ()


def parse_alert(raw: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Decode and parse: (object, text, None) or (None, text or None, reason for a 400)."""
    decoded = decode_alert(raw)
    return decoded.alert, decoded.text, decoded.error


def decode_alert(raw: bytes) -> Decoded:
    """Decode and parse strictly: UTF-8 only, no NaN/Infinity literals, an object at the top.

    Duplicate keys are found, not resolved: Python keeps the last value, TradingView's author
    may have meant the first (``"quantity": 1, "quantity": 1000``), so intake refuses them.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Decoded(None, None, "the body is not UTF-8 text")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return Decoded(None, text, "the body is empty; send the alert as a JSON object")
    repeated: dict[int, list[str]] = {}
    keep: list[dict[str, Any]] = []  # keeps the objects alive, so their ids stay theirs

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            counts = Counter(k for k, _ in pairs)
            repeated[id(obj)] = sorted(k for k, n in counts.items() if n > 1)
            keep.append(obj)
        return obj

    alert, _, error = _parse_text(text, build_object)
    if alert is None:
        return Decoded(None, text, error)
    return Decoded(alert, text, None, _duplicate_paths(alert, repeated) if repeated else ())


def _duplicate_paths(root: dict[str, Any], repeated: dict[int, list[str]]) -> tuple[tuple[str, ...], ...]:
    paths: list[tuple[str, ...]] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), root)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            paths.extend((*path, key) for key in repeated.get(id(value), ()))
            stack.extend(((*path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, str(i)), v) for i, v in enumerate(value))
    return tuple(sorted(paths))


def _parse_text(text: str, object_pairs_hook: Any) -> tuple[dict[str, Any] | None, str | None, str | None]:
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        return None, text, "the body is nested too deeply"
    except ValueError as exc:
        reason = f"the body is not valid JSON ({str(exc)[:120]})"
        holders = sorted(set(re.findall(r"\{\{[^{}]{0,200}\}\}", text)))
        if holders:
            reason += (
                f"; the placeholder {', '.join(holders[:5])} was not filled in "
                "(an unfilled placeholder outside quotes breaks the JSON)"
            )
        return None, text, reason
    if _SURROGATE_ESCAPE.search(text) and not _encodable(value):
        return (
            None,
            text,
            "the body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff): not valid Unicode",
        )
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        return None, text, f"the body is {kind}; send the alert as a JSON object"
    return value, text, None


def _encodable(value: Any) -> bool:
    """JSON escapes can produce lone surrogates that no database (nor UTF-8) can store."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False
    return True


def secret_in_text(text: str | None) -> str | None:
    """The ``"secret": "..."`` value of a body that is not a JSON object, if one is visible."""
    if not text:
        return None
    match = _SECRET_IN_TEXT.search(text)
    return match.group(1) if match else None


def stored_body(text: str | None, raw: bytes, redactor: Redactor) -> str:
    """The body as it will be stored: the text as received, secrets replaced by ``***``.

    Not re-serialised: duplicate keys, key order and number spellings stay as sent, so the trader
    sees exactly what TradingView sent (see :meth:`Redactor.body`). Non-UTF-8 bytes are shown
    with replacement characters.
    """
    if text is None:
        text = raw.decode("utf-8", errors="replace")
    return redactor.body(text)
