"""Execution messages: execDetails, execDetailsEnd, commissionReport, and the reqExecutions decoder."""

from __future__ import annotations

from collections.abc import Sequence

from ibsim.catalog.instruments import Instrument
from ibsim.framing import UNSET_DOUBLE_TEXT, FieldReader
from ibsim.messages.contracts import contract_head
from ibsim.messages.ids import COMMISSION_REPORT, EXECUTION_DATA, EXECUTION_DATA_END
from ibsim.messages.layout import Fields
from ibsim.model import ExecFilter, Execution


def exec_details(req_id: int, ex: Execution, inst: Instrument) -> Fields:
    """execDetails 11: exactly 31 fields (ib_insync 0.9.86 drops any other count)."""
    return [
        EXECUTION_DATA,
        int(req_id),
        ex.order_id,
        *contract_head(inst, ex.order_exchange),
        ex.exec_id,
        int(ex.time),  # unix seconds: parsed by both clients without a tz database
        ex.account,
        ex.exchange,
        ex.side,
        float(ex.shares),
        float(ex.price),
        ex.perm_id,
        ex.client_id,
        0,  # liquidation
        float(ex.cum_qty),
        float(ex.avg_price),
        ex.order_ref,
        "",  # evRule
        "",  # evMultiplier
        "",  # modelCode
        int(ex.liquidity),
    ]


def exec_details_end(req_id: int) -> Fields:
    """execDetailsEnd 55."""
    return [EXECUTION_DATA_END, 1, int(req_id)]


def commission_report(ex: Execution) -> Fields:
    """commissionReport 59: exactly 8 fields."""
    return [
        COMMISSION_REPORT,
        1,
        ex.exec_id,
        float(ex.commission),
        ex.commission_currency,
        UNSET_DOUBLE_TEXT if ex.realized_pnl is None else float(ex.realized_pnl),
        UNSET_DOUBLE_TEXT,  # yield
        "",  # yieldRedemptionDate
    ]


def parse_executions_request(fields: Sequence[str]) -> tuple[int, ExecFilter]:
    """reqExecutions 7: (reqId, filter)."""
    r = FieldReader(fields, 2)
    req_id = r.int()
    # clientId, then account, time, symbol, secType, exchange and side (ExecFilter's field order)
    return req_id, ExecFilter(r.int(), r.str(), r.str(), r.str(), r.str(), r.str(), r.str())
