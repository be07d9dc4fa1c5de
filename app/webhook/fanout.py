"""One alert, several accounts: which accounts an alert goes to, and how its rows look.

An alert fans out when it names several accounts (``"account": ["DU1", "DU2"]``) or, naming none,
when its strategy has ``accounts`` in the risk file (``strategies: {trend: {accounts: [..]}}``).
Intake then stores a **parent** alert, which trades nothing and ends ``fanned_out`` at once, and
one **child** alert per account (``Alert.parent_id``), all in ONE transaction before the answer.
Each child is an ordinary alert on its own account's queue: that account's worker sizes it from
its own figures, places it with the child's own ``orderRef`` (``tv2ib:<child id>:<leg>``) and
reports it; nothing in the worker knows about fan-outs.

Precedence: the alert's own ``account`` wins over the risk file (a string: that account only; a
list: exactly those). A one-element list, or a strategy with one account in the risk file, is no
fan-out: the alert simply goes to that account.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from app.webhook.schema import Normalised
from core.payload import AlertPayload
from core.risk_file import RiskFile


@dataclass(frozen=True)
class Route:
    """Where a valid alert goes.

    ``payload`` is what a single alert executes (its account possibly taken from the risk file);
    ``accounts`` (two or more) makes it a fan-out; ``source`` says who asked for the accounts."""

    payload: AlertPayload
    accounts: tuple[str, ...] = ()
    source: str = "the alert"
    from_risk_file: bool = False

    @property
    def fans_out(self) -> bool:
        return len(self.accounts) > 1

    def child_payload(self, account: str) -> dict[str, Any]:
        """A child's stored payload: the alert with ONE account (what the worker executes)."""
        return dataclasses.replace(self.payload, account=account).to_json()

    def parent_reason(self) -> str:
        """The parent's terminal reason, for a trader: where it went and why."""
        names = ", ".join(self.accounts)
        return f"fanned out to {len(self.accounts)} accounts: {names} ({self.source})"


def route(normalised: Normalised, risk_file: RiskFile) -> Route:
    """The route of a valid alert (see the module docstring for the precedence)."""
    payload = normalised.payload
    if normalised.accounts:
        return Route(payload, normalised.accounts, "accounts named in the alert")
    if payload.account is not None:
        return Route(payload)
    configured = risk_file.accounts_for(payload.strategy)
    source = f'risk file: strategy "{payload.strategy}" accounts'
    if len(configured) == 1:
        return Route(dataclasses.replace(payload, account=configured[0]), (), source, from_risk_file=True)
    return Route(payload, configured, source, from_risk_file=True) if configured else Route(payload)
