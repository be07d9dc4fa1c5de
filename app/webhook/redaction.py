"""Keeping configured secrets out of everything intake stores or answers.

Every configured secret (``WEBHOOK_SECRET``, ``STRATEGY_SECRETS``, ``ADMIN_TOKEN``, the Telegram
token) is matched case-insensitively: the ticker is upper-cased on its way to IB, and an
upper-cased secret is as good as the secret to whoever reads it.

* :meth:`Redactor.holders` finds every field of an alert that holds a secret (keys included, at
  any depth): intake refuses such an alert with 422 naming the fields, never their values.
* :meth:`Redactor.body` turns the body as received into the body as stored: the same bytes, with
  the value of every ``secret`` key and every secret anywhere else replaced by ``***``. Only the
  string tokens that held a secret are rewritten, so duplicate keys, key order, spacing and
  number spellings stay exactly as TradingView sent them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# A JSON string token; in valid JSON every unescaped quote opens or closes one, so scanning from
# the start finds exactly the strings (keys and values) of the document.
_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEY_SEPARATOR = re.compile(r"\s*:\s*")
# Without backslashes every quote delimits a string, so this finds each "secret" key's value.
_PLAIN_SECRET_VALUE = re.compile(r'("secret"\s*:\s*)"[^"]*"')
SECRET_KEY = "secret"
# A "secret" key whose value is no string (in text without escapes).
_OTHER_SECRET_VALUE = re.compile(r'"secret"\s*:\s*[^"\s]')
_JSON = json.JSONDecoder()
# JSON values without text in them (exact types: a str subclass is still masked)
_SCALARS = frozenset({int, float, bool, type(None)})
# Bounds on what a broken alert can make intake report (like schema.MAX_REPORTED_UNKNOWN).
MAX_REPORTED = 20
MAX_SHOWN_KEY = 64
HOLDER_MESSAGE = (
    "holds the secret; the secret belongs only in 'secret' (or the X-Webhook-Secret header), "
    "never in another field"
)


class Redactor:
    """Finds and masks the configured secrets. Immutable, thread-safe."""

    def __init__(self, secrets: Iterable[str]):
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in ordered), re.IGNORECASE) if ordered else None
        )

    def contains(self, text: str) -> bool:
        """True when ``text`` holds a secret (any letter case)."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON value with every secret in its strings (keys too) masked."""
        kind = type(value)
        if kind in _SCALARS:  # most of a payload: checked first, and without isinstance's ABC walk
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def holders(self, alert: Mapping[str, Any], text: str | None = None) -> list[tuple[str, ...]]:
        """Paths of the fields that hold a secret, in their key or their value (top-level
        ``secret`` excepted); path parts are masked so a key made of the secret is not echoed.

        ``text``, the body ``alert`` was parsed from, allows a shortcut: when it has no escapes
        and no secret outside the ``secret`` values, no field holds one (the common case)."""
        if self._pattern is None:
            return []
        # (the one "secret" in the text must be the top-level key: a nested one is a field)
        plain = text is not None and "\\" not in text and text.count('"secret"') == (SECRET_KEY in alert)
        if plain and self._pattern.search(_PLAIN_SECRET_VALUE.sub(r'\1""', str(text))) is None:
            return []
        found: list[tuple[str, ...]] = []
        stack: list[tuple[tuple[str, ...], Any]] = [
            ((str(k),), v) for k, v in alert.items() if k != SECRET_KEY
        ]
        while stack:
            path, value = stack.pop()
            if self.contains(path[-1]):
                found.append(path)
            elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                if self.contains(str(value)):
                    found.append(path)
            elif isinstance(value, Mapping):
                stack.extend(((*path, str(k)), v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend(((*path, str(i)), v) for i, v in enumerate(value))
        shown = sorted({tuple(self.text(part)[:MAX_SHOWN_KEY] for part in path) for path in found})
        return shown[:MAX_REPORTED]

    def body(self, text: str) -> str:
        """The body as stored: ``text`` unchanged but for the values of ``secret`` keys and any
        string or stretch of text holding a secret (escaped spellings included)."""
        text = _mask_other_secret_values(text)
        if "\\" not in text:  # no escapes: strings read as written, one regex pass suffices
            return self.text(_PLAIN_SECRET_VALUE.sub(rf'\1"{MASK}"', text))
        out: list[str] = []
        position = 0
        secret_key_end = -1
        for match in _STRING_TOKEN.finditer(text):
            token = match.group()
            decoded = _decode(token)
            if secret_key_end >= 0 and _KEY_SEPARATOR.fullmatch(text, secret_key_end, match.start()):
                replacement: str | None = f'"{MASK}"'
            elif decoded is not None and self.contains(decoded):
                replacement = json.dumps(self.text(decoded), ensure_ascii=False)
            else:
                replacement = None
            secret_key_end = match.end() if decoded == SECRET_KEY else -1
            if replacement is not None:
                out.append(text[position : match.start()])
                out.append(replacement)
                position = match.end()
        out.append(text[position:])
        return self.text("".join(out))


def _mask_other_secret_values(text: str) -> str:
    """``text`` with each ``secret`` key holding something other than a string (a list, an object,
    a number: found by the fuzz, stored as sent) holding ``"***"`` instead: its strings need not be
    configured secrets to be secret. Text that is not JSON keeps what cannot be read."""
    if "\\" not in text and _OTHER_SECRET_VALUE.search(text) is None:
        return text  # the common case: every "secret" holds a string
    out: list[str] = []
    position = 0
    for match in _STRING_TOKEN.finditer(text):
        if match.start() < position or _decode(match.group()) != SECRET_KEY:
            continue  # inside a value masked already, or not the key
        separator = _KEY_SEPARATOR.match(text, match.end())
        start = separator.end() if separator is not None and ":" in separator.group() else -1
        if start < 0 or text.startswith('"', start):
            continue
        try:
            _, end = _JSON.raw_decode(text, start)
        except ValueError:
            continue
        out.append(text[position:start])
        out.append(f'"{MASK}"')
        position = end
    out.append(text[position:])
    return "".join(out)


def _decode(token: str) -> str | None:
    """The text a JSON string token stands for; None when it is not a valid JSON string."""
    if "\\" not in token:
        return token[1:-1]
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def nest(
    paths: Iterable[tuple[str, ...]], message: str, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Field errors (``{"takeProfit": {"percent": [message]}}``) for ``paths``, added to ``errors``."""
    errors = {} if errors is None else errors
    for path in paths:
        node = errors
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, list):  # the parent already has its own message: keep both
                child = node[part] = {"_schema": child}
            node = node.setdefault(part, {}) if child is None else child
        current = node.setdefault(path[-1], [])
        if isinstance(current, dict):
            current.setdefault("_schema", []).append(message)
        elif message not in current:
            current.append(message)
    return errors
