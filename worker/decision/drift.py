"""Drift check (pure): is IB's position the one the strategy believed it had before this alert?

TradingView can send the strategy's previous position with an alert
(``{{strategy.prev_market_position}}`` = long / short / flat and
``{{strategy.prev_market_position_size}}``, an absolute size) as ``prevMarketPosition`` and
``prevMarketPositionSize``. When IB's position differs (a missed or refused alert, a manual trade,
a stop that filled while the strategy's did not), the worker still executes the alert by the
position table (``positionSize`` makes it go to the strategy's target whatever the drift) and an
alarm notice (``position_drift``) says what differed. Nothing here refuses an alert.
"""

from __future__ import annotations

from concurrent.futures import Future
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from core import events
from core.payload import AlertPayload
from worker.decision.positions import describe

if TYPE_CHECKING:
    from worker.recording.recorder import Recorder, UnitOfWork

SIDES = {"long": 1, "short": -1, "flat": 0}


def _size(raw: Any) -> Decimal | None:
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def expected_position(payload: AlertPayload) -> tuple[int | None, Decimal | None]:
    """(side sign or None, absolute size or None) the alert says the strategy held before it."""
    side = SIDES.get(payload.prev_market_position or "")
    size = _size(payload.prev_market_position_size)
    if size is not None and size < 0 and side is None:
        return -1, -size  # a signed size (strategy.position_size style) says the side too
    return side, None if size is None else abs(size)


def drift_message(payload: AlertPayload, ib_position: Decimal) -> str | None:
    """What differs between the strategy's previous position and IB's, or None when they agree
    (or the alert does not say what the strategy held)."""
    side, size = expected_position(payload)
    if side is None and size is None:
        return None
    actual_side = (ib_position > 0) - (ib_position < 0)
    if side == 0:
        expected_text = "flat"
        agrees = ib_position == 0
    elif side is not None and size is not None:
        expected = size * side
        expected_text = describe(expected)
        agrees = ib_position == expected
    elif side is not None:
        expected_text = {1: "long", -1: "short"}[side]
        agrees = actual_side == side
    else:
        assert size is not None
        expected_text = f"a position of {format(size.normalize(), 'f')}" if size else "flat"
        agrees = abs(ib_position) == size
    if agrees:
        return None
    given = []
    if payload.prev_market_position is not None:
        given.append(f"prevMarketPosition {payload.prev_market_position}")
    if payload.prev_market_position_size is not None:
        given.append(f"prevMarketPositionSize {format(payload.prev_market_position_size.normalize(), 'f')}")
    return (
        f"the strategy expected {expected_text} before this alert ({', '.join(given)}); "
        f"IB has {describe(ib_position)} (a missed alert or a manual trade?)"
    )


def drift_event(
    alert_id: str,
    payload: AlertPayload,
    ib_position: Decimal,
    *,
    account: str | None,
    symbol: str | None = None,
) -> events.PositionDriftEvent | None:
    """The ``position_drift`` event (for the notice and the dashboard), or None without drift."""
    message = drift_message(payload, ib_position)
    if message is None:
        return None
    side, size = expected_position(payload)
    if side == 0:
        expected = "flat"
    elif side is not None and size is not None:
        expected = describe(size * side)
    elif side is not None:
        expected = {1: "long", -1: "short"}[side]
    else:
        expected = f"a position of {format(size.normalize(), 'f')}" if size else "flat"
    goes_on = "to its target" if payload.position_size is not None else "by the position table"
    return events.position_drift(
        alert_id, strategy=payload.strategy, ticker=payload.ticker, symbol=symbol or payload.ticker,
        account=account, expected=expected, actual=describe(ib_position),
        detail=f"{message}; the alert goes on {goes_on}",
    )  # fmt: skip


def report_drift(
    recorder: Recorder,
    alert_id: str,
    payload: AlertPayload,
    ib_position: Decimal,
    *,
    account: str | None,
    symbol: str | None = None,
) -> Future[Any] | None:
    """Check for drift and, when there is some, have the recorder write an audit line on the alert
    and the ``position_drift`` alarm (never blocks: safe on the IB loop). None without drift."""
    event = drift_event(alert_id, payload, ib_position, account=account, symbol=symbol)
    if event is None:
        return None

    def write(uow: UnitOfWork) -> None:
        recorder.note(uow, alert_id, f"position drift: {event['detail']}")
        uow.emit(event)

    return recorder.run(write)
