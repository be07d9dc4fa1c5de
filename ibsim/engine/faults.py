"""What the control API can make the engine do wrong: refuse the next orders, stop matching, and
fill in small pieces. (Connection-level faults live in the server.)"""

from __future__ import annotations

from ibsim.model import Order


class EngineFaults:
    """Pending rejections, paused matching and per-contract fill-size limits."""

    def __init__(self) -> None:
        #: (code, text) errors the next placeOrders get instead of being accepted
        self.reject_queue: list[tuple[int, str]] = []
        self.fills_paused = False
        #: max quantity per fill event, per conId (an order's own ``fill_limit`` wins)
        self.contract_fill_limits: dict[int, float] = {}

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
