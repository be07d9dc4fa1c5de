"""What the web's intake notices say: pure functions from what intake saw to a :class:`NoticeDraft`.

TradingView never shows the answer to a webhook, so an alert template that broke (a renamed
field, a wrong secret) would otherwise fail in silence until a trade is missed. Two notice kinds
report it; they are written by the web process (intake and the relay), not composed from a worker
event, so they live here and not in ``worker/notify/compose.py``:

* ``alert_invalid``: an alert that carried a valid secret but was stored ``invalid`` (422, or 400
  for a body that cannot be read), with its field errors. The first of a strategy goes at once;
  the ones after it within ``NOTIFY_DIGEST_SECONDS`` are counted and reported in one digest
  (:func:`invalid_digest_draft`), so a template firing on every bar does not flood the chat.
* ``auth_failed``: requests refused without a valid secret: a wrong or missing one (401), an
  address that may not send (403), a body that is no JSON and holds no secret (400: a template
  that lost its JSON); counted per address, reported in one notice per run
  (:func:`auth_failures_draft`).

Never the secret: every value shown was already redacted by intake, and each text is masked once
more here (:func:`mask_secrets`) as a last net, in any letter case.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from core.notice_text import fit
from core.notices import NoticeDraft

ALERT_INVALID = "alert_invalid"
AUTH_FAILED = "auth_failed"
# The notice kinds the web process writes (every other kind has a composer in worker/notify/compose.py).
WEB_NOTICE_KINDS = frozenset({ALERT_INVALID, AUTH_FAILED})

# Why an authentication failed, as counted in Redis (core/notice_digest.py) and as shown.
CAUSE_SECRET = "secret"
CAUSE_ADDRESS = "address"
CAUSE_UNREADABLE = "unreadable"
CAUSE_TEXTS = {
    CAUSE_SECRET: "wrong or missing secret (401)",
    CAUSE_ADDRESS: "address not allowed by TRADINGVIEW_IPS_ONLY (403)",
    CAUSE_UNREADABLE: "body not JSON and no secret in it (400)",
}
MAX_ERROR_LINES = 12
# How intake's pseudo fields read in a notice: the whole body, the alert as a whole.
_PSEUDO_FIELDS = {"_body": "body", "_schema": "alert"}
_REASON_PREFIX = "invalid alert: "
MAX_SHOWN = 300  # characters of one shown value (an error message, a strategy name)
MASK = "***"
# Control characters (NUL is refused by PostgreSQL's text columns) and lone surrogates (not
# encodable): an alert may send either in any field, a notice shows a replacement character.
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` in any letter case (the last net)."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(re.escape(s) for s in ordered), MASK, text, flags=re.IGNORECASE)


def _shown(value: Any, secrets: Iterable[str], limit: int = MAX_SHOWN) -> str:
    """An outside value as shown in a notice: masked, on one line, cut, then HTML-escaped (masked
    first: escaping would change a secret holding ``&`` or ``<``)."""
    text = _UNSHOWABLE.sub(REPLACEMENT, mask_secrets("" if value is None else str(value), secrets))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def error_lines(errors: Mapping[str, Any], limit: int = MAX_ERROR_LINES) -> list[str]:
    """Field errors as ``path: message`` lines (``takeProfit.percent: must be > 0``), at most
    ``limit`` plus a line saying how many more."""
    lines: list[str] = []
    stack = [(_PSEUDO_FIELDS.get(k, k), v) for k, v in reversed(list(errors.items()))]
    while stack:
        path, problems = stack.pop()
        if isinstance(problems, Mapping):
            inner = [(path if k == "_schema" else f"{path}.{k}", v) for k, v in problems.items()]
            stack.extend(reversed(inner))
        elif isinstance(problems, list):
            lines.extend(f"{path}: {p}" for p in problems)
        else:
            lines.append(f"{path}: {problems}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"(and {len(lines) - limit} more)"]
    return lines


def _draft(kind: str, lines: list[str], secrets: Iterable[str], dedup_key: str) -> NoticeDraft:
    """The notice: its lines masked (the last net for a secret), then cut to Telegram's limit
    (a value of astral characters counts twice there)."""
    return NoticeDraft(kind, fit(mask_secrets("\n".join(lines), secrets)), dedup_key)


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def _strategy(name: str | None, secrets: Iterable[str]) -> str:
    return f"strategy <b>{_shown(name, secrets, 200)}</b>" if name else "no strategy named"


def invalid_alert_draft(
    alert_id: str,
    *,
    errors: Mapping[str, Any],
    shown: Mapping[str, Any],
    client_ip: str | None,
    digest_seconds: float,
    secrets: Iterable[str],
) -> NoticeDraft:
    """The notice of one invalid alert: what it was, each field error, what to do.

    ``shown``: the alert's strategy, account, ticker and action as sent (redacted by intake)."""
    secrets = tuple(secrets)
    what = " ".join(_shown(shown.get(k), secrets, 64) for k in ("action", "ticker") if shown.get(k))
    lines = [f"⚠️ <b>Invalid alert, not executed</b>{' · ' + what if what else ''}"]
    origin = [_strategy(shown.get("strategy"), secrets), f"alert <code>{html.escape(alert_id)}</code>"]
    if shown.get("account"):
        origin.append(f"account {_shown(shown.get('account'), secrets, 64)}")
    if client_ip:
        origin.append(f"from {_shown(client_ip, secrets, 64)}")
    lines.append(" · ".join(origin))
    lines.extend(f"• {_shown(line, secrets, 200)}" for line in error_lines(errors))
    lines.append(
        "TradingView does not show this answer: fix the alert's message. More invalid alerts of "
        f"this strategy within {_duration(digest_seconds)} come in one digest."
    )
    return _draft(ALERT_INVALID, lines, secrets, f"invalid:{alert_id}")


def invalid_digest_draft(
    *,
    strategy: str | None,
    count: int,
    first_at: float,
    last_id: str | None,
    last_reason: str | None,
    digest_seconds: float,
    secrets: Iterable[str],
    dedup_key: str,
) -> NoticeDraft:
    """The digest of the invalid alerts of one strategy that were not reported one by one."""
    secrets = tuple(secrets)
    noun = "alert" if count == 1 else "alerts"
    lines = [
        f"⚠️ <b>{count} more invalid {noun}, not executed</b> · {_strategy(strategy, secrets)}",
        f"since {_clock(first_at)} (one digest per {_duration(digest_seconds)})",
    ]
    if last_id or last_reason:
        reason = (last_reason or "").removeprefix(_REASON_PREFIX)
        latest = f"latest: alert <code>{_shown(last_id or '?', secrets, 64)}</code>"
        lines.append(f"{latest}: {_shown(reason, secrets, 1000)}" if reason else latest)
    lines.append("The dashboard lists each one with its field errors.")
    return _draft(ALERT_INVALID, lines, secrets, dedup_key)


def auth_failures_draft(
    *,
    counts: Iterable[tuple[str, str, int]],
    others: int,
    started_at: float,
    secrets: Iterable[str],
    dedup_key: str,
) -> NoticeDraft:
    """One notice for a run of refused requests: ``counts`` holds ``(cause, address, count)``;
    ``others`` the failures of addresses past the number listed one by one."""
    secrets = tuple(secrets)
    rows = sorted(counts, key=lambda row: (-row[2], row[1], row[0]))
    total = sum(n for _, _, n in rows) + others
    noun = "request" if total == 1 else "requests"
    lines = [f"🔒 <b>{total} {noun} refused: no valid secret</b> · since {_clock(started_at)}"]
    for cause, address, n in rows:
        lines.append(
            f"• {_shown(address, secrets, 64)}: {n} × {CAUSE_TEXTS.get(cause, _shown(cause, secrets))}"
        )
    if others:
        lines.append(f"• other addresses: {others}")
    lines.append(
        "Nothing was stored or executed. Your own alerts? Check the secret in the alert's message "
        "(or TRUSTED_PROXIES behind a proxy). Not yours? Someone is guessing; each address gets "
        "429 after AUTH_FAILURE_LIMIT."
    )
    return _draft(AUTH_FAILED, lines, secrets, dedup_key)
