"""One transaction of the recorder thread, and the facts it writes (worker/recording/recorder.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from core.events import Event
from worker.decision.stored import StoredDecision
from worker.recording.snapshots import IBFact, OrderSnapshot
from worker.risk.state import CountedRow


@dataclass
class UnitOfWork:
    """One transaction of the writer thread, the events it produced (published after commit) and
    the rows the risk counters count (handed to them after commit: worker/risk/tally.py)."""

    session: Session
    events: list[Event] = field(default_factory=list)
    counted: list[CountedRow] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        """An event for pub/sub and the notifier; goes out only if the transaction commits."""
        self.events.append(event)

    def count(self, row: CountedRow) -> None:
        """A row the risk counters count; reaches them only if the transaction commits."""
        self.counted.append(row)


@dataclass(frozen=True)
class PlacementFact:
    """Legs just sent to IB (or found there by orderRef) for one alert, with its decision."""

    alert_id: str
    decision: StoredDecision
    placed: list[OrderSnapshot]
    adopted: list[OrderSnapshot]


Fact = IBFact | PlacementFact
