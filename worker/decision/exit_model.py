"""The two records the exit rule works on (pure): a working exit as IB reports it, and one change
to bring an exit in line (worker/decision/positions.py ``exit_changes``; the slices of a
take-profit in levels: worker/decision/exit_slices.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Side = Literal["BUY", "SELL"]


@dataclass(frozen=True)
class WorkingExit:
    """One of tv2ib's working protective orders on the contract, as IB reports it."""

    ref: str
    role: Literal["tp", "sl"]
    action: Side
    quantity: Decimal  # remaining (unfilled) quantity
    slice: str = ""  # the take-profit level it belongs to ("1" for tp.1 / sl.1); "" for a plain exit


@dataclass(frozen=True)
class ExitChange:
    """Bring one exit in line: ``quantity`` 0 means cancel it; else modify (or place) to that size."""

    ref: str | None  # None: a new order for ``role``
    role: Literal["tp", "sl"]
    action: Side
    quantity: Decimal
    slice: str = ""  # a new order's level (its leg is ``sl.<slice>``); "" for a plain exit

    @property
    def leg(self) -> str:
        """The leg a new order for this change is named after (``sl``, ``sl.2``)."""
        return f"{self.role}.{self.slice}" if self.slice else self.role
