"""What the control API can make the engine do wrong: refuse the next orders, stop matching,
fill in small pieces, and answer the next what-ifs with broken figures. (Connection-level faults
live in the server.)"""

from __future__ import annotations

from dataclasses import replace

from ibsim.framing import UNSET_DOUBLE_TEXT
from ibsim.model import Order, WhatIfState

#: how a broken what-if sends its margin figures: IB's unset double, or Java's infinity
BROKEN_FIGURES = {"unset": UNSET_DOUBLE_TEXT, "infinite": "Infinity"}
#: the figures a broken what-if leaves unset (the commission stays)
MARGIN_FIGURES = (
    "init_margin_before", "maint_margin_before", "equity_with_loan_before",
    "init_margin_change", "maint_margin_change", "equity_with_loan_change",
    "init_margin_after", "maint_margin_after", "equity_with_loan_after",
)  # fmt: skip


class EngineFaults:
    """Pending rejections, paused matching and per-contract fill-size limits."""

    def __init__(self) -> None:
        #: (code, text) errors the next placeOrders get instead of being accepted
        self.reject_queue: list[tuple[int, str]] = []
        self.fills_paused = False
        #: max quantity per fill event, per conId (an order's own ``fill_limit`` wins)
        self.contract_fill_limits: dict[int, float] = {}
        #: (figures, warningText) the next what-ifs are answered with
        self.broken_what_ifs: list[tuple[str, str]] = []

    def queue_broken_what_ifs(self, figures: str, warning: str, count: int) -> int:
        """Answer the next ``count`` what-ifs with ``warning`` and their margin figures ``figures``
        (unset or infinite); how many wait. ValueError for other figures."""
        if figures not in BROKEN_FIGURES:
            raise ValueError(f"figures must be one of {', '.join(BROKEN_FIGURES)}, got {figures!r}")
        self.broken_what_ifs.extend([(figures, warning)] * count)
        return len(self.broken_what_ifs)

    def what_if_answer(self, state: WhatIfState) -> WhatIfState:
        """The what-if answer to send: ``state``, or broken as the next queued fault says."""
        if not self.broken_what_ifs:
            return state
        figures, warning = self.broken_what_ifs.pop(0)
        text = BROKEN_FIGURES[figures]
        return replace(state, warning_text=warning, texts=dict.fromkeys(MARGIN_FIGURES, text))

    def queue_rejections(self, code: int, reason: str, count: int) -> int:
        """Refuse the next ``count`` orders with ``code`` (201 reasons get IB's prefix); how many wait."""
        text = (
            reason
            if code != 201 or reason.startswith("Order rejected")
            else f"Order rejected - reason:{reason}"
        )
        self.reject_queue.extend([(code, text)] * count)
        return len(self.reject_queue)

    def next_rejection(self) -> tuple[int, str] | None:
        """The rejection the next order gets, if one is queued (taken off the queue)."""
        return self.reject_queue.pop(0) if self.reject_queue else None

    def fill_limit(self, order: Order) -> float | None:
        """The most one matching pass may fill of this order (None: all of it)."""
        return order.fill_limit or self.contract_fill_limits.get(order.con_id)

    def set_contract_limit(self, con_id: int, quantity: float | None) -> None:
        """Limit each fill on a contract (None removes the limit)."""
        if quantity is None:
            self.contract_fill_limits.pop(con_id, None)
        else:
            self.contract_fill_limits[con_id] = quantity
