"""What trading costs in the simulator: the commission schedule and the margin rates.

Commissions follow a simple IBKR-Pro-like schedule; initial margin is a share of notional by
secType in a margin account (maintenance is :data:`MAINTENANCE_SHARE` of it). Crypto is not
marginable at IB (paid in full); a cash account pays everything but futures in full.
"""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument

MARGIN_RATE = {"STK": 0.25, "FUT": 0.06, "CASH": 0.03, "CRYPTO": 1.0}
#: maintenance margin as a share of the initial margin
MAINTENANCE_SHARE = 0.8


def commission_for(inst: Instrument, quantity: float, price: float, fx: float) -> float:
    """Commission in USD for one fill, on a simple IBKR-Pro-like schedule."""
    value = abs(quantity * price * inst.mult * fx)
    if inst.sec_type == "STK":
        fee = max(1.0, 0.005 * quantity)
        fee = min(fee, max(0.01 * value, 0.35)) if value else fee
    elif inst.sec_type == "FUT":
        fee = (0.25 if inst.mult < 10 else 0.85) * quantity
    elif inst.sec_type == "CASH":
        fee = max(2.0, 0.00002 * value)
    elif inst.sec_type == "CRYPTO":
        fee = max(1.75, 0.0018 * value)
    else:
        fee = 1.0
    return round(fee, 4)


def margin_rate(sec_type: str, cash_account: bool) -> float:
    """Initial margin per unit of notional: the same rate for the account's figures and for a
    whatIf answer, so IB's ``initMarginChange`` and ``AvailableFunds`` always agree."""
    if cash_account and sec_type != "FUT":
        return 1.0
    return MARGIN_RATE.get(sec_type, 0.25)
