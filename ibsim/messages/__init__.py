"""Message layouts of the TWS API at server version 157, one module per family.

Encoders build the field lists of server → client messages (frame them with
:func:`ibsim.framing.frame`); decoders turn client → server field lists into typed requests.
The layouts are the ones both clients' decoders read at that version (docs/ibsim-protocol.md says
how they were found and which rules they keep); the field counts the clients check strictly
(execDetails 31, commissionReport 8, position 16, updatePortfolio 20, tickPrice 7,
nextValidId/managedAccounts 3) are pinned by tests.

This package only gathers the families under one name (``ibsim.messages.open_order``); modules
inside ibsim import the family module they need.
"""

from ibsim.messages.account import (
    account_download_end,
    account_summary,
    account_summary_end,
    account_update_multi,
    account_update_multi_end,
    pnl,
    pnl_single,
    position,
    position_end,
    update_account_time,
    update_account_value,
    update_portfolio,
)
from ibsim.messages.connection import current_time, error, handshake_reply, managed_accounts, next_valid_id
from ibsim.messages.contracts import (
    contract_details,
    contract_details_end,
    contract_head,
    market_rule,
    parse_contract_details_request,
    read_contract,
    symbol_samples,
)
from ibsim.messages.executions import (
    commission_report,
    exec_details,
    exec_details_end,
    parse_executions_request,
)
from ibsim.messages.historical import (
    HistoricalRequest,
    head_timestamp,
    historical_data,
    parse_historical_request,
)
from ibsim.messages.layout import Fields
from ibsim.messages.market_data import (
    MktDataRequest,
    market_data_type,
    parse_mkt_data_request,
    tick_price,
    tick_size,
    tick_snapshot_end,
)
from ibsim.messages.orders import (
    completed_order,
    completed_orders_end,
    open_order,
    open_order_end,
    order_status,
)
from ibsim.messages.place_order import parse_place_order
from ibsim.model import Bar, ExecFilter, WhatIfState

__all__ = [
    "Bar",
    "ExecFilter",
    "Fields",
    "HistoricalRequest",
    "MktDataRequest",
    "WhatIfState",
    "account_download_end",
    "account_summary",
    "account_summary_end",
    "account_update_multi",
    "account_update_multi_end",
    "commission_report",
    "completed_order",
    "completed_orders_end",
    "contract_details",
    "contract_details_end",
    "contract_head",
    "current_time",
    "error",
    "exec_details",
    "exec_details_end",
    "handshake_reply",
    "head_timestamp",
    "historical_data",
    "managed_accounts",
    "market_data_type",
    "market_rule",
    "next_valid_id",
    "open_order",
    "open_order_end",
    "order_status",
    "parse_contract_details_request",
    "parse_executions_request",
    "parse_historical_request",
    "parse_mkt_data_request",
    "parse_place_order",
    "pnl",
    "pnl_single",
    "position",
    "position_end",
    "read_contract",
    "symbol_samples",
    "tick_price",
    "tick_size",
    "tick_snapshot_end",
    "update_account_time",
    "update_account_value",
    "update_portfolio",
]
