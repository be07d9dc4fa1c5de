"""The events of tv2ib: one TypedDict per kind, each with a ``type`` Literal key, by family:

* :mod:`core.events.facts`   the recorder's facts and the web app's ``paused``
* :mod:`core.events.safety`  the safety nets' warnings (unprotected, drift, daily loss, protection
  locks, unknown strategy), the session-end flatten and the break-even stop
* :mod:`core.events.alarms`  the notifier's alarms (outbox only)

Import them from here (``from core import events``; ``events.fill(...)``).

Web and worker both read them. The worker's recorder emits the facts (``alert_status``,
``alert_rejected``, ``order_status``, ``order_rejected``, ``fill``) after their transaction
commits; they go out as one JSON object each on Redis pub/sub (``keys.EVENTS_CHANNEL``) to the
dashboard's SSE stream and ``tv2ib tail``, and the notifier composes its Telegram notices from them
(``worker/notify/compose.py``). The web app publishes ``paused``. The notifier makes its own alarms
(``ib_lost`` ... ``alarm``) and writes them to the outbox only (they never reach pub/sub).

A TypedDict is a plain dict at run time, so the JSON on the wire is exactly the dict the
constructor builds (keys in the order its class lists them). Build events through the constructors
rather than by hand: a forgotten key is then a type error at the call, and a reader can use
``event["key"]`` knowing the key is there.

Adding an event kind (as the guard's "unprotected" alarm was added):

1. a ``class UnprotectedEvent(TypedDict)`` with ``type: Literal["unprotected"]`` and its keys, and
   a constructor ``unprotected(...)``, in its family's module; both imported here, and the class
   in :data:`Event`;
2. one ``@composer("unprotected")`` function in ``worker/notify/compose.py`` taking that type
   (its notice kind is then switchable with ``NOTIFY`` like any other);
3. emit it: ``uow.emit(events.unprotected(...))`` in the recorder (it then also reaches the
   dashboard), or ``Notifier.enqueue_event`` for a notice that is no fact of the database.
"""

from typing import get_args, get_type_hints

from core.events.alarms import (
    AlarmEvent,
    DailySummaryEvent,
    OutageEvent,
    OutageKind,
    StrategyTotals,
    WorkerStoppedEvent,
    alarm,
    outage,
    worker_stopped,
)
from core.events.facts import (
    AlertRejectedEvent,
    AlertStatusEvent,
    FillEvent,
    OrderRejectedEvent,
    OrderStatusEvent,
    PausedEvent,
    alert_rejected,
    alert_status,
    fill,
    order_rejected,
    order_status,
    paused,
)
from core.events.safety import (
    BreakEvenEvent,
    DailyLossEvent,
    PositionDriftEvent,
    ProtectionEvent,
    SessionClose,
    SessionFlattenEvent,
    UnknownStrategyEvent,
    UnprotectedEvent,
    break_even,
    daily_loss,
    position_drift,
    protection,
    session_flatten,
    unknown_strategy,
    unprotected,
)

__all__ = [
    "OUTBOX_ONLY",
    "AlarmEvent",
    "AlertRejectedEvent",
    "AlertStatusEvent",
    "BreakEvenEvent",
    "DailyLossEvent",
    "DailySummaryEvent",
    "Event",
    "FillEvent",
    "OrderRejectedEvent",
    "OrderStatusEvent",
    "OutageEvent",
    "OutageKind",
    "PausedEvent",
    "PositionDriftEvent",
    "SessionClose",
    "SessionFlattenEvent",
    "ProtectionEvent",
    "StrategyTotals",
    "UnknownStrategyEvent",
    "UnprotectedEvent",
    "WorkerStoppedEvent",
    "alarm",
    "alert_rejected",
    "alert_status",
    "break_even",
    "daily_loss",
    "fill",
    "order_rejected",
    "order_status",
    "outage",
    "paused",
    "position_drift",
    "protection",
    "published_kinds",
    "session_flatten",
    "unknown_strategy",
    "unprotected",
    "worker_stopped",
]

Event = (
    AlertStatusEvent
    | AlertRejectedEvent
    | OrderStatusEvent
    | OrderRejectedEvent
    | FillEvent
    | PausedEvent
    | OutageEvent
    | WorkerStoppedEvent
    | DailySummaryEvent
    | AlarmEvent
    | UnprotectedEvent
    | PositionDriftEvent
    | DailyLossEvent
    | ProtectionEvent
    | UnknownStrategyEvent
    | SessionFlattenEvent
    | BreakEvenEvent
)


# --- kinds ------------------------------------------------------------------------------------------

# The notifier's alarms: written to the notice outbox only, never published on EVENTS_CHANNEL.
OUTBOX_ONLY: tuple[type, ...] = (OutageEvent, WorkerStoppedEvent, DailySummaryEvent, AlarmEvent)


def _kinds(types: tuple[type, ...]) -> frozenset[str]:
    return frozenset(kind for cls in types for kind in get_args(get_type_hints(cls)["type"]))


def published_kinds() -> frozenset[str]:
    """Every ``type`` a subscriber of ``EVENTS_CHANNEL`` can receive (the dashboard's stream,
    ``tv2ib tail --kind``): the kinds of :data:`Event` but the notifier's alarms."""
    return _kinds(get_args(Event)) - _kinds(OUTBOX_ONLY)
