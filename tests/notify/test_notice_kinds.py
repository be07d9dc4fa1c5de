"""The notice kinds: one list in the docs that is the code's list (issue 16, item 9), and the texts
of the kinds the web writes (``core/intake_notices.py``): well-formed Telegram HTML, within
Telegram's length, never a secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_notify_compose import visible

from core import events
from core import intake_notices as n
from core import notice_text as t
from core.notices import MONEY_ALARM_KINDS
from worker.notify import compose as c

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telegram.md"
SECRET = "Sup3r&<secret>-0123456789"


def documented_kinds() -> list[str]:
    """The first column of the table under "## 3. Notice kinds" in docs/telegram.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## 3. Notice kinds", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


def test_the_documented_kinds_are_the_code_kinds() -> None:
    documented = documented_kinds()
    assert len(documented) == len(set(documented)), "a kind is listed twice"
    assert set(documented) == set(c.known_kinds())
    assert set(documented) >= MONEY_ALARM_KINDS


def test_every_kind_written_in_the_code_is_a_known_kind() -> None:
    # A NoticeDraft built with a literal kind anywhere in the product must be in the list too.
    written: set[str] = set()
    for package in ("app", "core", "worker", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            written |= set(re.findall(r'NoticeDraft\(\s*"([a-z_]+)"', source))
    written.discard("margin_call")  # the example in compose.py's docstring
    assert written <= c.known_kinds(), written - c.known_kinds()
    assert c.known_kinds() >= n.WEB_NOTICE_KINDS


def test_error_lines_flatten_nested_fields_and_stop_at_the_limit() -> None:
    errors = {
        "quantity": ["must be greater than 0"],
        "takeProfit": {"percent": ["must be below 100"], "_schema": ["give one of percent, amount"]},
        "_body": ["not JSON"],
    }
    assert n.error_lines(errors) == [
        "quantity: must be greater than 0",
        "takeProfit.percent: must be below 100",
        "takeProfit: give one of percent, amount",
        "body: not JSON",
    ]
    many = {f"f{i}": ["bad"] for i in range(30)}
    lines = n.error_lines(many)
    assert len(lines) == n.MAX_ERROR_LINES + 1 and lines[-1] == "(and 18 more)"


def test_mask_secrets_in_any_letter_case() -> None:
    text = f"a {SECRET.upper()} b {SECRET.lower()} c {SECRET}"
    assert n.mask_secrets(text, [SECRET]) == "a *** b *** c ***"
    assert n.mask_secrets("nothing", []) == "nothing"


def _worst_invalid(value: str) -> str:
    errors = {f"{value}{i}": [value * 3] for i in range(40)}
    shown = {"strategy": value * 10, "ticker": value, "action": value, "account": value}
    return n.invalid_alert_draft(
        "01ID", errors=errors, shown=shown, client_ip=value, digest_seconds=300, secrets=[SECRET]
    ).text


@given(st.text(st.characters(exclude_categories=()), min_size=1, max_size=300))
def test_texts_are_well_formed_and_fit_whatever_was_sent(value: str) -> None:
    # any character an alert can carry: NUL (PostgreSQL refuses it), lone surrogates, markup
    digest = n.invalid_digest_draft(
        strategy=value,
        count=3,
        first_at=0,
        last_id=value,
        last_reason=value * 5,
        digest_seconds=300,
        secrets=[SECRET],
        dedup_key="k",
    ).text
    auth = n.auth_failures_draft(
        counts=[("secret", value[:64] + str(i), i + 1) for i in range(25)],
        others=7,
        started_at=0,
        secrets=[SECRET],
        dedup_key="k",
    ).text
    for text in (_worst_invalid(value), digest, auth):
        visible(text)
        assert t.text_length(text) <= t.MAX_TEXT
        assert "\x00" not in text
        text.encode("utf-8")  # storable and sendable


@pytest.mark.parametrize("spelling", [SECRET, SECRET.upper(), SECRET.lower()])
def test_a_secret_that_slipped_through_is_masked(spelling: str) -> None:
    # Intake redacts everything it passes; this is the last net, and it knows HTML escaping.
    text = _worst_invalid(f"x{spelling}y")
    assert SECRET.lower() not in visible(text).lower()
    assert "x***y" in visible(text)


def test_every_event_type_makes_a_notice_or_is_documented_as_making_none() -> None:
    event_types: set[str] = set()
    for event_class in get_args(events.Event):
        event_types |= set(get_args(get_type_hints(event_class)["type"]))
    silent = event_types - c.known_kinds()
    assert silent == set(c.IGNORED_TYPES) | {"paused"}
    text = DOC.read_text(encoding="utf-8")
    stream = text.split("make no notice:", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", stream)) == silent
