"""The order book: every order by (clientId, orderId), indexed by parent, OCA group and contract,
and the ids TWS hands out (order ids per client, permIds)."""

from __future__ import annotations

from ibsim.model import Order

FIRST_PERM_ID = 900_000_001


class OrderBook:
    """Orders of every client, with the indexes that keep placement O(1) with many orders."""

    def __init__(self, max_order_id: dict[int, int] | None = None, next_perm_id: int = FIRST_PERM_ID) -> None:
        self.orders: dict[tuple[int, int], Order] = {}
        self._children_of: dict[tuple[int, int], list[Order]] = {}
        self._by_oca: dict[tuple[str, str], list[Order]] = {}
        self._working_by_con: dict[int, dict[tuple[int, int], Order]] = {}
        #: the highest order id each client ever used (TWS never takes an id twice)
        self.max_order_id: dict[int, int] = dict(max_order_id or {})
        self.next_perm_id = next_perm_id

    def get(self, client_id: int, order_id: int) -> Order | None:
        """The order with this identity, if any."""
        return self.orders.get((client_id, order_id))

    def note_order_id(self, client_id: int, order_id: int) -> int:
        """Record an order id the client used; returns its highest id before this one."""
        before = self.max_order_id.get(client_id, 0)
        self.max_order_id[client_id] = max(before, order_id)
        return before

    def next_valid_id(self, client_id: int) -> int:
        """One more than the highest order id this client ever used (at least 1)."""
        return max(1, self.max_order_id.get(client_id, 0) + 1)

    def register(self, order: Order) -> None:
        """Store an order and index it by parent, OCA group and contract."""
        self.orders[order.key] = order
        if order.parent_id:
            self._children_of.setdefault((order.client_id, order.parent_id), []).append(order)
        if order.oca_group:
            self.join_oca(order, order.oca_group)
        if order.is_active:
            self._working_by_con.setdefault(order.con_id, {})[order.key] = order

    def join_oca(self, order: Order, group: str) -> None:
        """Index the order under an OCA group of its account."""
        self._by_oca.setdefault((order.account, group), []).append(order)

    def parent(self, order: Order) -> Order | None:
        """A child's parent order, if it has one in the book."""
        return self.orders.get((order.client_id, order.parent_id)) if order.parent_id else None

    def children(self, order: Order) -> list[Order]:
        """The orders whose parent this is, by order id."""
        return sorted(self._children_of.get((order.client_id, order.order_id), ()), key=lambda o: o.order_id)

    def siblings(self, order: Order) -> list[Order]:
        """The other children of this order's parent."""
        return [o for o in self._children_of.get((order.client_id, order.parent_id), ()) if o is not order]

    def oca_members(self, order: Order) -> list[Order]:
        """Every order of this order's OCA group (itself included), in joining order."""
        return list(self._by_oca.get((order.account, order.oca_group), ()))

    def working_on(self, con_id: int) -> list[Order]:
        """Active orders on a contract in placement order (finished ones are pruned lazily)."""
        book = self._working_by_con.get(con_id)
        if not book:
            return []
        for key in [k for k, o in book.items() if not o.is_active]:
            del book[key]
        return sorted(book.values(), key=lambda o: o.perm_id)

    def working_con_ids(self) -> list[int]:
        """The contracts with working orders (some may have just finished: pruned lazily)."""
        return [con_id for con_id, book in self._working_by_con.items() if book]

    def by_placement(self) -> list[Order]:
        """Every order, oldest permId first."""
        return sorted(self.orders.values(), key=lambda o: o.perm_id)

    def open_orders(self, client_id: int | None = None) -> list[Order]:
        """Active, transmitted orders (of one client, or all)."""
        return [
            o
            for o in self.orders.values()
            if o.is_active and o.transmit and (client_id is None or o.client_id == client_id)
        ]

    def completed_orders(self) -> list[Order]:
        """Finished orders, oldest first."""
        return [o for o in self.orders.values() if not o.is_active]
