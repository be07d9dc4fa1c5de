"""The engine's state as documents: the control API's GET /state view, and the --state file
(written by :func:`dump`, read back by :func:`restore`)."""

from __future__ import annotations

import logging

from ibsim.catalog.instruments import Instrument
from ibsim.engine.state import EngineState
from ibsim.model import Account, Execution, Expiration, Json, Order, Position

logger = logging.getLogger(__name__)


def _by_con_id(values: dict[int, float]) -> dict[str, float]:
    return {str(k): v for k, v in values.items()}


def _option_fields(row: Json, inst: Instrument | None) -> Json:
    """An option's row also shows its right, strike and expiry (YYYYMMDD) and multiplier."""
    if inst is not None and inst.sec_type == "OPT":
        row.update(
            right=inst.right, strike=inst.strike, expiry=inst.last_trade_date, multiplier=inst.multiplier
        )
    return row


def state_view(state: EngineState) -> Json:
    """The GET /state document's engine part."""
    book, ledger, market, faults = state.book, state.ledger, state.market, state.faults
    orders = []
    for o in book.orders.values():
        inst = market.catalog.get(o.con_id)
        row = o.to_json()
        row["symbol"] = inst.symbol if inst else ""
        row["secType"] = inst.sec_type if inst else ""
        row["localSymbol"] = inst.local_symbol if inst else ""
        orders.append(_option_fields(row, inst))
    positions = [
        _option_fields(ledger.portfolio_row(account, con_id), market.catalog.get(con_id))
        for (account, con_id), pos in ledger.positions.items()
        if pos.quantity
    ]
    return {
        "accounts": list(ledger.account_ids),
        "orders": orders,
        "executions": [e.to_json() for e in state.execution_log.executions],
        "positions": positions,
        "accountValues": {a: ledger.account_values(a) for a in ledger.account_ids},
        "prices": _by_con_id(market.prices),
        "fillsPaused": faults.fills_paused,
        "fillLimits": _by_con_id(faults.contract_fill_limits),
        "rejectNext": len(faults.reject_queue),
        "expirations": [e.to_json() for e in state.expirations],
    }


def dump(state: EngineState) -> Json:
    """Everything a restart must keep (--state)."""
    book, ledger, market = state.book, state.ledger, state.market
    return {
        "version": 1,
        "orders": [o.dump() for o in book.orders.values()],
        "executions": [e.dump() for e in state.execution_log.executions],
        "positions": [p.dump() for p in ledger.positions.values()],
        "accounts": [a.dump() for a in ledger.accounts.values()],
        "prices": _by_con_id(market.prices),
        "maxOrderId": {str(k): v for k, v in book.max_order_id.items()},
        "nextPermId": book.next_perm_id,
        "execCount": state.execution_log.count,
        "expirations": [e.dump() for e in state.expirations],
    }


def restore(data: Json, state: EngineState) -> None:
    """Load a :func:`dump` into freshly reset parts. Orders, fills, positions and prices of conIds
    the catalog no longer lists (expired futures) are dropped: they cannot be served."""
    book, ledger, market, execution_log = state.book, state.ledger, state.market, state.execution_log
    known = market.catalog.get
    for row in data.get("orders", []):
        order = Order(**row)
        if known(order.con_id):
            book.register(order)
    execution_log.executions = [
        ex for ex in (Execution(**row) for row in data.get("executions", [])) if known(ex.con_id)
    ]
    for row in data.get("positions", []):
        pos = Position(**row)
        if not known(pos.con_id):
            logger.warning("dropping position in conId %s: no longer in the catalog", pos.con_id)
            continue
        ledger.positions[(pos.account, pos.con_id)] = pos
        if pos.account not in ledger.accounts:
            ledger.add_account(Account(pos.account, cash=ledger.initial_cash))
    for row in data.get("accounts", []):
        ledger.add_account(Account(**row))
    for key, value in data.get("prices", {}).items():
        if known(int(key)):
            market.prices[int(key)] = float(value)
    book.max_order_id = {int(k): int(v) for k, v in data.get("maxOrderId", {}).items()}
    book.next_perm_id = int(data.get("nextPermId", book.next_perm_id))
    execution_log.count = int(data.get("execCount", len(execution_log.executions)))
    state.expirations = [Expiration(**row) for row in data.get("expirations", [])]
