"""What trading costs in the simulator: the commission schedule and the margin rates.

Commissions follow a simple IBKR-Pro-like schedule; initial margin is a share of notional by
secType in a margin account (maintenance is :data:`MAINTENANCE_SHARE` of it). Crypto is not
marginable at IB (paid in full); a cash account pays everything but futures in full. Options:
a long option is paid in full (its margin is its premium); a short one needs the Reg-T formula of
:func:`short_option_margin`.
"""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument

MARGIN_RATE = {"STK": 0.25, "FUT": 0.06, "CASH": 0.03, "CRYPTO": 1.0, "OPT": 1.0}
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
    elif inst.sec_type == "OPT":
        fee = max(1.0, option_fee_per_contract(price) * quantity)
    else:
        fee = 1.0
    return round(fee, 4)


def margin_rate(sec_type: str, cash_account: bool) -> float:
    """Initial margin per unit of notional: the same rate for the account's figures and for a
    whatIf answer, so IB's ``initMarginChange`` and ``AvailableFunds`` always agree."""
    if cash_account and sec_type != "FUT":
        return 1.0
    return MARGIN_RATE.get(sec_type, 0.25)


def option_fee_per_contract(premium: float) -> float:
    """IBKR Pro's fixed option rates: 0.65 a contract, 0.50 under a 0.10 premium, 0.25 under 0.05
    (1.00 a fill at least, applied by :func:`commission_for`)."""
    if premium < 0.05:
        return 0.25
    return 0.50 if premium < 0.10 else 0.65


def short_option_margin(inst: Instrument, und_price: float, premium: float) -> float:
    """Initial margin of one short option (Reg-T style, per contract in USD): the premium plus 20 %
    of the underlying's value less the amount out of the money, at least the premium plus 10 % of
    the underlying's value (a call) or of the strike (a put)."""
    out_of_money = (
        max(inst.strike - und_price, 0.0) if inst.right == "C" else max(und_price - inst.strike, 0.0)
    )
    floor = 0.10 * (und_price if inst.right == "C" else inst.strike)
    return (premium + max(0.20 * und_price - out_of_money, floor)) * inst.mult


def position_margin(inst: Instrument, quantity: float, price: float, und_price: float, rate: float) -> float:
    """Initial margin of a signed position at ``price`` (in the instrument's currency): a short
    option's by :func:`short_option_margin`, anything else ``rate`` of its notional (a long option:
    its premium, rate 1)."""
    if inst.sec_type == "OPT" and quantity < 0:
        return -quantity * short_option_margin(inst, und_price, price)
    return abs(quantity * price * inst.mult) * rate
