"""Pure rules for IB's error 100 ("Max rate of messages per second has been exceeded"): how far the
worker's order pacer slows down, for how long, when a refused message is sent again and when the
worker gives up. No IB, clock or I/O: the callers pass instants (``time.monotonic()``).

What IB does with a message it answers 100: it drops it. A refused new order does not exist at IB
(its order id was never used, so it may be sent again); a refused cancel or modification leaves the
order working as it was. The worker therefore sends the same message again, later and slower:

* a refusal halves the pacer's limit (never below :data:`FLOOR`), at most once per second (a burst
  of refusals answers one burst of messages), and holds the lower limit :data:`HOLD_SECONDS` after
  the last refusal; then the limit is back to its base;
* the n-th re-send waits :func:`resend_delay` (1 s, 2 s, 4 s, 4 s ...: IB counts messages per
  second, so a second lets its budget refill), without jitter: one worker is the only sender on
  its client id;
* a new order is sent again at most :data:`MAX_RESENDS` times, then the alert is refused
  ``IB pacing: ...``; a cancel or modification of a working order (an exit the guard resizes)
  is sent again up to :data:`MAX_LIVE_RESENDS` times: exits are never abandoned lightly.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOOR = 5  # messages per second at the slowest
HOLD_SECONDS = 5.0  # the lowered limit lasts this long after the last refusal
HALVE_AT_MOST_EVERY = 1.0  # seconds: one halving per burst of refusals
MAX_RESENDS = 4  # a refused new order (an alert's legs) is sent again at most this many times
MAX_LIVE_RESENDS = 10  # a refused cancel / modification of a working order
RESEND_DELAYS = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Backoff:
    """The pacer's lowered limit: ``limit`` messages per second until ``until``; ``halved`` is
    when it was last halved. ``Backoff()`` is no back-off."""

    limit: int | None = None
    halved: float = float("-inf")
    until: float = float("-inf")


def after_refusal(state: Backoff, base: int, now: float) -> Backoff:
    """The back-off after IB refused a message for pacing at ``now``."""
    current = limit_at(state, base, now)
    if now - state.halved < HALVE_AT_MOST_EVERY:
        return Backoff(current, state.halved, now + HOLD_SECONDS)
    return Backoff(max(FLOOR, min(current, current // 2)), now, now + HOLD_SECONDS)


def limit_at(state: Backoff, base: int, now: float) -> int:
    """The pacer's limit at ``now``: lowered while the back-off holds, else ``base``."""
    if state.limit is None or now >= state.until:
        return base
    return min(base, state.limit)


def resend_delay(attempt: int) -> float:
    """Seconds before the ``attempt``-th re-send (1-based) of a refused message."""
    return RESEND_DELAYS[min(max(attempt, 1), len(RESEND_DELAYS)) - 1]


def gives_up(resends_done: int, live: bool) -> bool:
    """Whether a message refused again after ``resends_done`` re-sends is given up (``live``: a
    cancel or modification of a working order, else a new order)."""
    return resends_done >= (MAX_LIVE_RESENDS if live else MAX_RESENDS)


def give_up_text(ib_text: str, resends: int) -> str:
    """IB's text when it refused an order for pacing every time (the alert's reason is
    ``IB pacing: <this>``)."""
    text = " ".join(ib_text.split()) or "Max rate of messages per second has been exceeded"
    return f"{text} (refused {resends + 1} times; not sent again)"
