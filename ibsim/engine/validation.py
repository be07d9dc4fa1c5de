"""What TWS refuses at placement (and on a modify): unknown (or expired) contracts, unsupported order types and
time in force, bad quantities and prices, halts, short sales in a cash account."""

from __future__ import annotations

import math

from ibsim.catalog.instruments import Instrument
from ibsim.catalog.ticks import on_tick
from ibsim.engine.events import OrderRejected, rejected
from ibsim.engine.ledger import Ledger
from ibsim.engine.market import Market
from ibsim.framing import UNSET_DOUBLE
from ibsim.model import Order, OrderRequest, unset_to_none

SUPPORTED_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "MOC", "LOC"})
SUPPORTED_TIFS = frozenset({"", "DAY", "GTC", "IOC", "FOK", "GTD", "OPG"})
LIMIT_TYPES = ("LMT", "STP LMT", "LOC")
STOP_TYPES = ("STP", "STP LMT")


def resolve(req: OrderRequest, market: Market, ledger: Ledger) -> tuple[Instrument, str]:
    """The one instrument and the managed account a new order is for, its fields checked."""
    if req.sec_type_bag:
        raise rejected("Combination orders are not supported")
    matches = market.catalog.match(req.contract)
    if len(matches) != 1 or market.expired(matches[0]):  # an expired option: only its conId knows it
        raise OrderRejected(200, "No security definition has been found for the request")
    inst = matches[0]
    check_fields(req, inst, market)
    account = req.account or ledger.default_account
    if account not in ledger.accounts:
        raise rejected(f"Account {account} is not a managed account")
    return inst, account


def check_fields(req: OrderRequest, inst: Instrument, market: Market) -> None:
    """The order's type, side, time in force, quantity and prices (new order or modify)."""
    _check_terms(req, inst)
    _check_prices(req, inst, market)


def _check_terms(req: OrderRequest, inst: Instrument) -> None:
    otype = req.order_type
    if otype not in SUPPORTED_TYPES:
        raise rejected(f"Unsupported order type {otype or '(empty)'}")
    if req.conditions_count:
        raise rejected("Conditional orders are not supported")
    if req.action not in ("BUY", "SELL", "SSHORT"):
        raise rejected(f"Invalid action {req.action!r}")
    if req.tif not in SUPPORTED_TIFS:
        raise rejected(f"Unsupported time in force {req.tif}")
    qty = req.total_quantity
    if not (qty > 0) or qty >= UNSET_DOUBLE or math.isinf(qty):
        raise rejected("The order quantity must be positive")
    if inst.sec_type in ("STK", "FUT") and not float(qty).is_integer():
        raise rejected("Fractional-sized orders are not supported via API")
    if qty < inst.min_size:
        raise rejected(f"Order size is below the minimum of {inst.min_size}")


def _check_prices(req: OrderRequest, inst: Instrument, market: Market) -> None:
    otype = req.order_type
    lmt, aux = unset_to_none(req.lmt_price), unset_to_none(req.aux_price)
    if otype in LIMIT_TYPES and lmt is None:
        raise rejected("A limit price is required")
    if otype in STOP_TYPES and aux is None:
        raise rejected("A stop price is required")
    pct = unset_to_none(req.trailing_percent)
    if otype == "TRAIL" and aux is None and pct is None:
        raise rejected("A trailing amount or percent is required")
    if otype == "TRAIL" and pct is not None and not 0 < pct < 100:
        raise rejected("The trailing percent must be between 0 and 100")
    for value in (lmt if otype in LIMIT_TYPES else None, aux if otype not in ("MKT", "MOC", "LOC") else None):
        if value is None:
            continue
        if value <= 0 or math.isinf(value):
            raise rejected("The price must be positive")
        # the price band's increment at this price (IB's market rule), not minTick alone; a
        # trailing amount is an offset: on the increment at the contract's current price
        at = market.price(inst.con_id) if otype == "TRAIL" else value
        if not on_tick(value, market.catalog.increment_at(inst, at)):
            raise OrderRejected(
                110, "The price does not conform to the minimum price variation for this contract."
            )


def check_restrictions(order: Order, inst: Instrument, market: Market, ledger: Ledger) -> None:
    """Halts and cash accounts (simulator policy: the position alone decides what is a short
    sale; other working SELL orders are not counted)."""
    if inst.con_id in market.halted:
        raise rejected(f"Trading in {inst.symbol} is halted")
    if order.account in ledger.cash_accounts and not order.is_buy:
        held = ledger.quantity(order.account, inst.con_id)
        if order.total_quantity > held + 1e-12:
            raise rejected(
                "Short sales are not permitted in a cash account "
                f"(position {held:g}, order SELL {order.total_quantity:g})"
            )
