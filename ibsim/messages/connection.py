"""Connection-level messages: the handshake answer, managed accounts, ids, the clock, errors."""

from __future__ import annotations

from collections.abc import Sequence

from ibsim.messages.ids import CURRENT_TIME, ERR_MSG, MANAGED_ACCTS, NEXT_VALID_ID, SERVER_VERSION
from ibsim.messages.layout import Fields


def handshake_reply(conn_time: str, version: int = SERVER_VERSION) -> Fields:
    """The 2-field handshake answer: server version and connection time."""
    return [version, conn_time]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    """managedAccounts 15 (exactly 3 fields)."""
    return [MANAGED_ACCTS, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Fields:
    """nextValidId 9 (exactly 3 fields)."""
    return [NEXT_VALID_ID, 1, int(order_id)]


def current_time(unix_seconds: int) -> Fields:
    """currentTime 49."""
    return [CURRENT_TIME, 1, int(unix_seconds)]


def error(req_id: int, code: int, text: str) -> Fields:
    """error 4 (no advancedOrderRejectJson below version 166)."""
    return [ERR_MSG, 2, int(req_id), int(code), text]
