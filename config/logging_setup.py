"""Configure stdlib logging once per process: readable text on a terminal, JSON lines in production.

A redaction filter replaces every configured secret with ``***`` in every record, so even a
careless ``log.info("%s", payload)`` cannot leak the webhook secret or a bot token.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable

_CONFIGURED_MARK = "_tv2ib_configured"
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RedactSecrets(logging.Filter):
    """Replace secret values in the formatted message and in extra fields."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            scrubbed = self._scrub(message)
            if scrubbed != message or record.args:
                record.msg, record.args = scrubbed, None
            for key, value in list(vars(record).items()):
                if key not in _STANDARD_ATTRS and isinstance(value, str):
                    setattr(record, key, self._scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields given with ``extra=`` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger (idempotent: a second call only updates the filter)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _CONFIGURED_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _CONFIGURED_MARK, True)
        root.addHandler(handler)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.filters = [RedactSecrets(secrets)]
    root.setLevel(level)
    # ib_async logs every wire message at DEBUG and a whole Trade repr per placeOrder at INFO (our
    # own one-line "sent to IB" says the same); alembic narrates every migration check at INFO.
    noisy = (
        "ib_async.wrapper",
        "ib_async.client",
        "ib_async.ib",
        "ib_insync.wrapper",
        "ib_insync.client",
        "ib_insync.ib",
        "httpx",
        "alembic",
    )
    for name in noisy:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
