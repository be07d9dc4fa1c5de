"""The notice composers by event kind: the ``@composer`` decorator and the table that
:func:`worker.notify.compose.compose` dispatches on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.notices import NoticeDraft

# Each composer takes its own event type; the registry dispatches on ``type``.
Composer = Callable[[Any], NoticeDraft | None]
COMPOSERS: dict[str, Composer] = {}


def composer(kind: str) -> Callable[[Composer], Composer]:
    """Register ``func`` as the composer of events whose ``type`` is ``kind``."""

    def register(func: Composer) -> Composer:
        COMPOSERS[kind] = func
        return func

    return register
