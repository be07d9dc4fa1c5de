"""The pure rules of IB's error 100 (worker/decision/pacing.py), as tables."""

from __future__ import annotations

import pytest

from worker.decision.pacing import (
    FLOOR,
    HOLD_SECONDS,
    Backoff,
    after_refusal,
    give_up_text,
    gives_up,
    limit_at,
    resend_delay,
)

INF = float("-inf")


@pytest.mark.parametrize(
    ("state", "now", "limit", "halved", "until"),
    [
        # the first refusal halves the base and holds it
        (Backoff(), 100.0, 20, 100.0, 100.0 + HOLD_SECONDS),
        # more refusals within a second (one burst) only prolong the hold
        (Backoff(20, 100.0, 105.0), 100.5, 20, 100.0, 100.5 + HOLD_SECONDS),
        # a refusal a second or more after the last halving halves again
        (Backoff(20, 100.0, 105.0), 101.0, 10, 101.0, 101.0 + HOLD_SECONDS),
        (Backoff(10, 101.0, 106.0), 102.0, FLOOR, 102.0, 102.0 + HOLD_SECONDS),
        # never below the floor
        (Backoff(FLOOR, 102.0, 107.0), 103.0, FLOOR, 103.0, 103.0 + HOLD_SECONDS),
        # after the hold, a refusal starts again from the base
        (Backoff(FLOOR, 102.0, 107.0), 200.0, 20, 200.0, 200.0 + HOLD_SECONDS),
    ],
)
def test_after_refusal(state: Backoff, now: float, limit: int, halved: float, until: float) -> None:
    assert after_refusal(state, 40, now) == Backoff(limit, halved, until)


@pytest.mark.parametrize(
    ("state", "now", "limit"),
    [
        (Backoff(), 0.0, 40),  # no back-off: the base
        (Backoff(10, 100.0, 105.0), 104.9, 10),  # held
        (Backoff(10, 100.0, 105.0), 105.0, 40),  # the hold is over: back to the base
        (Backoff(60, 100.0, 105.0), 101.0, 40),  # never above the base
    ],
)
def test_limit_at(state: Backoff, now: float, limit: int) -> None:
    assert limit_at(state, 40, now) == limit


@pytest.mark.parametrize(("attempt", "delay"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (9, 4.0)])
def test_resend_delay(attempt: int, delay: float) -> None:
    assert resend_delay(attempt) == delay


@pytest.mark.parametrize(
    ("resends", "live", "given_up"),
    [
        (0, False, False),
        (3, False, False),
        (4, False, True),
        (4, True, False),
        (9, True, False),
        (10, True, True),
    ],
)
def test_gives_up(resends: int, live: bool, given_up: bool) -> None:
    assert gives_up(resends, live) is given_up


def test_give_up_text_keeps_ibs_words_and_counts_the_sends() -> None:
    text = give_up_text("Max rate of messages per second has been exceeded:max=50  rec=51", 4)
    assert text == ("Max rate of messages per second has been exceeded:max=50 rec=51 "
                    "(refused 5 times; not sent again)")  # fmt: skip
    assert give_up_text("", 0).startswith("Max rate of messages per second")
