"""What-if answers and the margin check: the change an order would make to the account's margin,
from the same rates as the account figures (so ``initMarginChange`` and ``AvailableFunds`` agree)."""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument
from ibsim.engine.costs import MAINTENANCE_SHARE, commission_for
from ibsim.engine.events import rejected
from ibsim.engine.ledger import Ledger
from ibsim.engine.market import Market
from ibsim.model import Order, WhatIfState, unset_to_none


def what_if_state(order: Order, inst: Instrument, market: Market, ledger: Ledger) -> WhatIfState:
    """Margin before / change / after and the commission, were the order to fill completely (a
    limit order at its limit price, anything else at the current price)."""
    ref = unset_to_none(order.lmt_price) or market.trade_price(inst.con_id, order.is_buy)
    fx = market.fx_to_usd(inst.currency)
    values = ledger.account_values(order.account)
    init_before = float(values["InitMarginReq"])
    maint_before = float(values["MaintMarginReq"])
    equity = float(values["EquityWithLoanValue"])
    current = ledger.quantity(order.account, inst.con_id)
    signed = order.total_quantity if order.is_buy else -order.total_quantity
    # margin changes with the exposure, so a closing order frees margin (a short option's by the
    # Reg-T formula: costs.short_option_margin)
    margin = ledger.position_margin
    change = margin(order.account, inst, current + signed, ref) - margin(order.account, inst, current, ref)
    commission = commission_for(inst, order.total_quantity, ref, fx)
    return WhatIfState(
        init_margin_before=round(init_before, 2),
        maint_margin_before=round(maint_before, 2),
        equity_with_loan_before=round(equity, 2),
        init_margin_change=round(change, 2),
        maint_margin_change=round(change * MAINTENANCE_SHARE, 2),
        equity_with_loan_change=round(-commission, 2),
        init_margin_after=round(init_before + change, 2),
        maint_margin_after=round(maint_before + change * MAINTENANCE_SHARE, 2),
        equity_with_loan_after=round(equity - commission, 2),
        commission=commission,
        min_commission=commission,
        max_commission=commission,
    )


def check_margin(order: Order, inst: Instrument, market: Market, ledger: Ledger) -> None:
    """Refuse (201, IB's wording) an order whose initial margin would exceed the equity with loan
    (``--margin-check``); an order that frees margin always passes."""
    state = what_if_state(order, inst, market, ledger)
    if state.init_margin_change > 0 and state.init_margin_after > state.equity_with_loan_after:
        raise rejected(
            "YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
            f"YOUR EQUITY WITH LOAN VALUE [{state.equity_with_loan_after:.2f} USD] MUST EXCEED THE INITIAL "
            f"MARGIN [{state.init_margin_after:.2f} USD]"
        )
