"""Account and position messages: positions, portfolio rows, account values, summaries, P&L."""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument
from ibsim.messages.contracts import contract_head
from ibsim.messages.ids import (
    ACCOUNT_SUMMARY,
    ACCOUNT_SUMMARY_END,
    ACCOUNT_UPDATE_MULTI,
    ACCOUNT_UPDATE_MULTI_END,
    ACCT_DOWNLOAD_END,
    ACCT_UPDATE_TIME,
    ACCT_VALUE,
    PNL,
    PNL_SINGLE,
    PORTFOLIO_VALUE,
    POSITION_DATA,
    POSITION_END,
)
from ibsim.messages.layout import Fields


def position(account: str, inst: Instrument, quantity: float, avg_cost: float) -> Fields:
    """position 61: exactly 16 fields."""
    return [POSITION_DATA, 3, account, *contract_head(inst, inst.exchange), float(quantity), float(avg_cost)]


def position_end() -> Fields:
    """positionEnd 62."""
    return [POSITION_END, 1]


def update_account_value(key: str, value: str, currency: str, account: str) -> Fields:
    """updateAccountValue 6."""
    return [ACCT_VALUE, 2, key, value, currency, account]


def update_portfolio(
    inst: Instrument,
    quantity: float,
    market_price: float,
    market_value: float,
    avg_cost: float,
    unrealized_pnl: float,
    realized_pnl: float,
    account: str,
) -> Fields:
    """updatePortfolio 7: exactly 20 fields, every number non-empty."""
    figures = (quantity, market_price, market_value, avg_cost, unrealized_pnl, realized_pnl)
    return [
        PORTFOLIO_VALUE,
        8,
        *contract_head(inst, inst.primary_exchange or inst.exchange),
        *(float(value) for value in figures),
        account,
    ]


def update_account_time(hhmm: str) -> Fields:
    """updateAccountTime 8."""
    return [ACCT_UPDATE_TIME, 1, hhmm]


def account_download_end(account: str) -> Fields:
    """accountDownloadEnd 54."""
    return [ACCT_DOWNLOAD_END, 1, account]


def account_update_multi(req_id: int, account: str, key: str, value: str, currency: str) -> Fields:
    """accountUpdateMulti 73."""
    return [ACCOUNT_UPDATE_MULTI, 1, int(req_id), account, "", key, value, currency]


def account_update_multi_end(req_id: int) -> Fields:
    """accountUpdateMultiEnd 74."""
    return [ACCOUNT_UPDATE_MULTI_END, 1, int(req_id)]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    """accountSummary 63."""
    return [ACCOUNT_SUMMARY, 1, int(req_id), account, tag, value, currency]


def account_summary_end(req_id: int) -> Fields:
    """accountSummaryEnd 64."""
    return [ACCOUNT_SUMMARY_END, 1, int(req_id)]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> Fields:
    """pnl 94."""
    return [PNL, int(req_id), float(daily), float(unrealized), float(realized)]


def pnl_single(
    req_id: int, pos: float, daily: float, unrealized: float, realized: float, value: float
) -> Fields:
    """pnlSingle 95."""
    return [PNL_SINGLE, int(req_id), *(float(figure) for figure in (pos, daily, unrealized, realized, value))]
