"""What a notice says: pure functions from a typed event (``core/events/``) to a :class:`NoticeDraft`.

No I/O here (freqtrade's rpc/telegram split): the outbox stores drafts, the sender delivers them.
Texts are Telegram HTML: every value that comes from outside (symbols such as ``ES1!`` or
``BRK.B``, strategy names with ``<``, ``>`` or ``&``, IB's reasons) goes through :func:`esc`, and
:func:`fit` cuts a text to Telegram's 4096-character limit without splitting a tag or an entity.

Each composer takes the TypedDict of its kind and reads its keys as ``event["key"]``: a key the
event type does not promise is a type error, not a silent None (only ``NotRequired`` keys are read
with ``.get``). A new notice kind is its event type in ``core/events/`` (see the steps there) and
one function in the composers' module of its family (``trade_notices``: the recorder's facts;
``alarm_notices``: the alarms and the safety nets' warnings)::

    @composer("margin_call")
    def _margin_call(event: MarginCallEvent) -> NoticeDraft:
        return NoticeDraft("margin_call", f"⚠️ margin call: {esc(event['detail'])}", None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import worker.notify.alarm_notices  # noqa: F401 - its composers register themselves
import worker.notify.trade_notices  # noqa: F401 - its composers register themselves
from core.approval import APPROVAL_KIND
from core.intake_notices import WEB_NOTICE_KINDS
from core.notice_text import fit
from core.notices import MAX_DEDUP_KEY, NoticeDraft  # plain data: the outbox row's shape
from worker.notify.registry import COMPOSERS, composer
from worker.notify.trade_notices import fill_key
from worker.notify.wording import esc, shorten

__all__ = [
    "COMPOSERS",
    "IGNORED_TYPES",
    "NoticeDraft",
    "compose",
    "compose_safely",
    "composer",
    "known_kinds",
]

# What the outbox hands in: a core.events.Event, or (from a caller with a bug) any mapping.
Event = Mapping[str, Any]

# Event types that are facts for the dashboard only; they make no notice.
IGNORED_TYPES = frozenset({"alert_status", "order_status"})


def known_kinds() -> frozenset[str]:
    """Every notice kind: those a composer exists for, and those the web writes itself
    (``core/intake_notices.py``, ``core/notices.py``), and the approval question
    (``core/approval.py``). Used to warn about typos in ``NOTIFY``;
    ``docs/telegram.md`` lists the same set (a test holds them equal)."""
    return frozenset(COMPOSERS) | WEB_NOTICE_KINDS | {APPROVAL_KIND}


def compose(event: Event) -> NoticeDraft | None:
    """The notice for ``event``, or None when its type makes none. May raise on malformed events;
    :func:`compose_safely` is the caller-facing version."""
    kind = str(event.get("type") or "")
    if kind in IGNORED_TYPES:
        return None
    draft = COMPOSERS.get(kind, _unknown)(event)
    if draft is None:
        return None
    explicit = event.get("dedup_key")
    key = str(explicit) if explicit else draft.dedup_key
    return NoticeDraft(draft.kind, fit(draft.text), _bounded_key(key), draft.silent)


def compose_safely(event: Event) -> NoticeDraft | None:
    """Like :func:`compose` but never raises: a malformed event still tells the trader something."""
    try:
        return compose(event)
    except Exception as exc:  # noqa: BLE001 - a formatting bug must never cost the fact's transaction
        kind = str(event.get("type") or "event") if isinstance(event, Mapping) else "event"
        body = shorten(repr(dict(event)) if isinstance(event, Mapping) else repr(event), 1500)
        text = f"⚠️ <b>{esc(kind)}</b> (notice formatting failed: {esc(type(exc).__name__)})\n<code>{esc(body)}</code>"
        key = None
        if isinstance(event, Mapping):
            key = event.get("dedup_key") or _default_key(event)
        return NoticeDraft(kind[:32], fit(text), _bounded_key(key))


def _bounded_key(key: str | None) -> str | None:
    """Dedup keys fit the column; a long key keeps a readable prefix and a hash of the whole."""
    if key is None:
        return None
    key = str(key)
    # Room for the ":<chat id>" suffix the outbox appends (chat ids are at most ~20 characters).
    room = MAX_DEDUP_KEY - 24
    if len(key) <= room:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"{key[: room - 25]}#{digest}"


def _default_key(event: Event) -> str | None:
    """The dedup key of a malformed event (read defensively: its keys are unknown)."""
    return fill_key(event.get("exec_id")) if event.get("type") == "fill" else None


def _unknown(event: Mapping[str, Any]) -> NoticeDraft:
    """An event type nobody wrote a composer for: say so rather than lose it."""
    kind = str(event.get("type") or "event")
    fields = ", ".join(f"{esc(k)}={esc(shorten(str(v), 200))}" for k, v in event.items() if k != "type")
    return NoticeDraft(shorten(kind, 32), f"ℹ️ <b>{esc(kind)}</b>\n{fields}", None)
