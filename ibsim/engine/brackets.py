"""OCA groups and brackets: which orders are held, sent together, cut back or cancelled, and
released, decided from the book (the fills module applies the decisions).

* Bracket children wait as ``PreSubmitted`` until the parent is completely filled, then become
  ``Submitted`` and are matched at once.
* A leg with ``transmit`` set sends its staged parent and staged siblings with it.
* Bracket children (same parentId) act as one OCA group: a partial fill of one reduces the
  others, a complete fill cancels them. Explicit OCA groups follow ocaType: 1 cancels the
  siblings on any fill, 2 and 3 reduce them by the filled quantity.
"""

from __future__ import annotations

from ibsim.engine.book import OrderBook
from ibsim.model import Order

CANCEL = "cancel"
REDUCE = "reduce"


def held(order: Order, book: OrderBook) -> bool:
    """A bracket child waiting for its parent's complete fill."""
    parent = book.parent(order)
    return parent is not None and parent.status != "Filled"


def transmit_batch(order: Order, book: OrderBook) -> list[Order]:
    """A transmitting leg with its staged parent and staged siblings: parent first, then the
    parent's other staged children by order id, this leg last."""
    batch: list[Order] = []
    root = order
    parent = book.parent(order)
    if parent is not None and parent.status == "PendingSubmit" and not parent.transmit:
        batch.append(parent)
        root = parent
    batch += [
        o for o in book.children(root) if o is not order and not o.transmit and o.status == "PendingSubmit"
    ]
    batch.append(order)
    return batch


def sibling_reactions(order: Order, done: bool, book: OrderBook) -> list[tuple[Order, str]]:
    """What a fill of ``order`` does to the other working orders of its OCA group, or else of its
    bracket: each (sibling, CANCEL or REDUCE by the filled quantity)."""
    if order.oca_group:
        reaction = REDUCE if order.oca_type in (2, 3) else CANCEL
        return [(o, reaction) for o in book.oca_members(order) if o is not order and o.is_active]
    if order.parent_id:
        reaction = CANCEL if done else REDUCE
        return [(o, reaction) for o in book.siblings(order) if o.is_active and not o.oca_group]
    return []


def released_children(order: Order, book: OrderBook) -> list[Order]:
    """The transmitted working children a completely filled parent releases."""
    return [c for c in book.children(order) if c.is_active and c.transmit]
