"""Intake's notices about refused requests: the trader learns that a template broke from Telegram,
not from a missed trade (TradingView never shows the answer to a webhook).

* an alert stored ``invalid`` gets an ``alert_invalid`` notice with its field errors, written in
  the transaction that stores it (the first of its strategy at once; the next ones within
  ``NOTIFY_DIGEST_SECONDS`` in one digest, :class:`core.notice_digest.InvalidAlertGate`);
* failed authentications are counted by the rate limiter's own Redis call and reported by the
  relay as one ``auth_failed`` notice per run (:mod:`core.notice_digest`).

Either kind switched off with ``NOTIFY`` costs nothing: no Redis key, no row. The valid-alert
path never comes here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis

from config.settings import Settings
from core.intake_notices import ALERT_INVALID, AUTH_FAILED, invalid_alert_draft
from core.notice_digest import InvalidAlertGate
from core.notices import NoticeDraft, mode_of

log = logging.getLogger(__name__)


class IntakeNotices:
    """What intake needs for its notices; one per :class:`~app.webhook.intake.Intake`."""

    def __init__(self, settings: Settings, client: redis.Redis):
        self.settings = settings
        self.secrets = settings.secrets()
        self._gate = (
            InvalidAlertGate(client, settings.notify_digest_seconds)
            if mode_of(settings, ALERT_INVALID) != "off"
            else None
        )

    @property
    def failure_digest_seconds(self) -> float | None:
        """The run length of the ``auth_failed`` notice for the rate limiter (None: off)."""
        if mode_of(self.settings, AUTH_FAILED) == "off":
            return None
        return self.settings.notify_digest_seconds

    def invalid_alert(
        self,
        alert_id: str,
        *,
        errors: Mapping[str, Any],
        reason: str,
        client_ip: str | None,
        shown: Mapping[str, Any],
    ) -> NoticeDraft | None:
        """The notice of an invalid alert, or None when it is counted for a digest (or off).

        ``errors``, ``reason`` and ``shown`` are redacted already (they are what intake stores)."""
        if self._gate is None or not self._gate.first(shown.get("strategy"), alert_id, reason):
            return None
        try:
            return invalid_alert_draft(
                alert_id,
                errors=errors,
                shown=shown,
                client_ip=client_ip,
                digest_seconds=self.settings.notify_digest_seconds,
                secrets=self.secrets,
            )
        except Exception:  # noqa: BLE001 - a formatting bug must never cost the alert's row
            log.exception("alert_invalid notice of %s not composed", alert_id)
            text = f"⚠️ <b>Invalid alert, not executed</b>\nalert <code>{alert_id}</code>: see the dashboard"
            return NoticeDraft(ALERT_INVALID, text, f"invalid:{alert_id}")
