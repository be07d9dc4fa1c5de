"""What an IB account id is, in one place: alerts (one account or a fan-out list), the risk file,
and every flatten front end (API, CLI, dashboard, Telegram) check it here.

An account id becomes part of Redis keys and rq queue names (``tv2ib:orders:<account>``), so only
letters, digits and ``_ . -`` pass (IB's own ids are ``DU1234567``, ``U1234567``, ``F1234567``;
the others keep room for sub-account naming). ``default`` is refused in any letter case: it is
tv2ib's internal name of the queue for alerts that name no account (core/keys.py). Were it an
account, an alert naming it would reach whichever worker takes those alerts, on whatever account
that worker trades: ``"account": ["DU1", "default"]`` ordered twice on DU1.
"""

from __future__ import annotations

import re

from core.keys import DEFAULT_ACCOUNT

MAX_LENGTH = 64
# \Z, not $: "$" also matches before a trailing newline, which would end up in a queue name.
ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
CHARACTERS = "letters, digits, _ . - only"
RESERVED = (
    f"{DEFAULT_ACCOUNT!r} is not an account id: it is tv2ib's name for alerts that name no account "
    "(leave the account out for those) - name the IB account itself, e.g. DU1234567"
)


def account_id_problem(text: str) -> str | None:
    """Why ``text`` is not an account id (one phrase, for a field error), or None when it is one."""
    if not text:
        return "must not be empty"
    if len(text) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if not ACCOUNT_ID_RE.match(text):
        return f"contains characters that are not allowed ({CHARACTERS})"
    if text.casefold() == DEFAULT_ACCOUNT:
        return RESERVED
    return None
