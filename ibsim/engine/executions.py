"""The executions log: every fill as an Execution record with its execId, and the reqExecutions
filter over them."""

from __future__ import annotations

import secrets

from ibsim.catalog.instruments import Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.framing import parse_time_field
from ibsim.model import ExecFilter, Execution, Order

#: where a fill executes, by secType (futures execute on their listing exchange)
VENUES = {"STK": "ISLAND", "FUT": "CME", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}
_SIDES = {"BUY": "BOT", "SELL": "SLD", "SSHORT": "SLD"}


class ExecutionLog:
    """Executions in the order they happened. execIds are unique as IB's are: they number on
    across resets, and each simulator (each engine, and each start of one) puts its own random
    ``prefix`` first, so two ibsims, or one restarted without its state file, never report the
    same execId for different fills to a client that keeps them (tv2ib's database)."""

    def __init__(self, catalog: Catalog, count: int = 0, prefix: str | None = None) -> None:
        self.catalog = catalog
        self.executions: list[Execution] = []
        #: executions ever recorded (execIds number on from it, across resets)
        self.count = count
        #: the execIds' first part: 8 hex digits, random per engine and kept across resets
        self.prefix = prefix or secrets.token_hex(4)

    def record(
        self,
        order: Order,
        inst: Instrument,
        fill: tuple[float, float],
        commission: float,
        realized: float | None,
        time: float,
    ) -> Execution:
        """Log one fill of ``(quantity, price)`` of an order (after the order's totals moved)."""
        qty, price = fill
        self.count += 1
        execution = Execution(
            exec_id=f"{self.prefix}.{order.perm_id:08x}.{self.count:02d}.01",
            client_id=order.client_id,
            order_id=order.order_id,
            perm_id=order.perm_id,
            con_id=order.con_id,
            account=order.account,
            side="BOT" if order.is_buy else "SLD",
            shares=qty,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
            time=time,
            exchange=VENUES.get(inst.sec_type, inst.exchange) if inst.sec_type != "FUT" else inst.exchange,
            order_exchange=order.exchange,
            commission=commission,
            commission_currency="USD",
            realized_pnl=None if realized is None else round(realized - commission, 6),
        )
        self.executions.append(execution)
        return execution

    def matching(self, flt: ExecFilter) -> list[Execution]:
        """Executions selected by a reqExecutions filter (empty fields and clientId 0 match all)."""
        after = parse_time_field(flt.time, date_only=True)
        return [ex for ex in self.executions if self._selected(ex, flt, after)]

    def _selected(self, ex: Execution, flt: ExecFilter, after: float | None) -> bool:
        inst = self.catalog.get(ex.con_id)
        side = flt.side.upper()
        return not (
            (flt.client_id and ex.client_id != flt.client_id)
            or (flt.account and ex.account != flt.account)
            or (after is not None and ex.time < after)
            or (flt.symbol and (inst is None or flt.symbol.upper() not in (inst.symbol, inst.local_symbol)))
            or (flt.sec_type and (inst is None or flt.sec_type.upper() != inst.sec_type))
            or (flt.exchange and flt.exchange.upper() not in (ex.exchange, ex.order_exchange))
            or (side and _SIDES.get(side, side) != ex.side)
        )
