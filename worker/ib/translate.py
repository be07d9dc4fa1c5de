"""Pure translation between ib_async objects and tv2ib's records (no I/O, no loop)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ib_async import Contract, Crypto, Forex, Option, Stock, Trade
from ib_async import Future as IBFuture
from ib_async.util import UNSET_DOUBLE

from worker.contracts.roll import Listed, Pick, exchange_today, exchange_zone, last_trade_of, pick_front
from worker.contracts.tickers import ContractSpec
from worker.decision.margin import WhatIf
from worker.decision.model import Instrument
from worker.recording.snapshots import FillSnapshot, OrderSnapshot, PositionSnapshot

_UNSET = Decimal("1e300")  # IB's UNSET_DOUBLE (1.797e308) and anything near it means "not given"
# Exchanges for a contract IB returns without one (a position's contract, for closing it).
DEFAULT_EXCHANGES = {"STK": "SMART", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}


def num(value: float | None) -> Decimal | None:
    """IB's float (UNSET_DOUBLE = unset) as a Decimal with the digits IB sent."""
    if value is None or value == UNSET_DOUBLE or (isinstance(value, float) and math.isnan(value)):
        return None
    return Decimal(str(value))


def ib_number(value: Any) -> Decimal | None:
    """IB's figure given as text (a what-if's margins) as a Decimal; None for empty, NaN or IB's
    UNSET_DOUBLE (1.797e308, and anything near it)."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) >= _UNSET:
        return None
    return number


def what_if_of(state: Any) -> WhatIf:
    """IB's answer to a what-if, from ib_async's ``OrderState`` (margin figures are strings there,
    commissions floats)."""
    return WhatIf(
        init_margin_change=ib_number(state.initMarginChange),
        maint_margin_change=ib_number(state.maintMarginChange),
        init_margin_before=ib_number(state.initMarginBefore),
        init_margin_after=ib_number(state.initMarginAfter),
        equity_with_loan_before=ib_number(state.equityWithLoanBefore),
        equity_with_loan_after=ib_number(state.equityWithLoanAfter),
        commission=ib_number(state.commission),
        commission_currency=state.commissionCurrency or "",
        warning_text=str(getattr(state, "warningText", "") or ""),
    )


def order_snapshot(trade: Trade) -> OrderSnapshot:
    """A plain, thread-safe copy of an order's identity, terms and status."""
    order, contract, status = trade.order, trade.contract, trade.orderStatus
    filled, average = _filled(trade)
    return OrderSnapshot(
        order_ref=order.orderRef or "",
        ib_order_id=order.orderId or None,
        perm_id=order.permId or status.permId or None,
        client_id=order.clientId,
        account=order.account or None,
        **_on_contract(contract),
        parent_ib_order_id=order.parentId or None,
        action=order.action,
        order_type=order.orderType,
        quantity=num(order.totalQuantity) or Decimal(0),
        limit_price=num(order.lmtPrice) if order.orderType in ("LMT", "STP LMT", "LOC") else None,
        # a TRAIL's auxPrice is its trail amount: its stop is trailStopPrice (as sent or reported)
        stop_price=num(order.trailStopPrice if order.orderType == "TRAIL" else order.auxPrice)
        if order.orderType in ("STP", "STP LMT", "TRAIL")
        else None,
        tif=order.tif or None,
        oca_group=order.ocaGroup or None,
        status=status.status or "PendingSubmit",
        filled=filled,
        remaining=num(status.remaining),
        avg_fill_price=average,
        why_held=status.whyHeld or None,
        log=tuple((e.time.isoformat(), e.status, e.message, e.errorCode) for e in trade.log[-1:]),
    )


def _on_contract(contract: Contract) -> dict[str, Any]:
    """The contract part of an order's or an execution's snapshot (:class:`Placed`)."""
    return {"con_id": contract.conId or None, "symbol": contract.symbol, "local_symbol": contract.localSymbol,
            "sec_type": contract.secType}  # fmt: skip


def _filled(trade: Trade) -> tuple[Decimal, Decimal | None]:
    """The filled quantity and average price of an order: IB's order status, or, when that says
    nothing was filled, the order's executions. An order known only from reqCompletedOrders (a
    worker restarted after IB filled it) has a status without quantities in ib_async: "Filled"
    with 0 filled, while its executions (reqExecutions, attached to the trade) hold the fill."""
    status = trade.orderStatus
    if status.filled:
        return num(status.filled) or Decimal(0), num(status.avgFillPrice)
    shares, cost = Decimal(0), Decimal(0)
    for fill in trade.fills:
        quantity, price = num(fill.execution.shares), num(fill.execution.price)
        if quantity and price is not None:
            shares, cost = shares + quantity, cost + quantity * price
    return shares, (cost / shares if shares else None)


def fill_snapshot(trade: Trade | None, fill: Any) -> FillSnapshot:
    """A plain copy of one execution (with its commission report when already received)."""
    ex, contract, report = fill.execution, fill.contract, fill.commissionReport
    reported = bool(report and report.execId)
    when = ex.time if isinstance(ex.time, datetime) else datetime.now(UTC)
    return FillSnapshot(
        exec_id=ex.execId,
        order_ref=ex.orderRef or (trade.order.orderRef if trade else "") or "",
        ib_order_id=ex.orderId or None,
        perm_id=ex.permId or None,
        client_id=ex.clientId,
        account=ex.acctNumber or None,
        **_on_contract(contract),
        side=ex.side,
        quantity=num(ex.shares) or Decimal(0),
        price=num(ex.price) or Decimal(0),
        cum_quantity=num(ex.cumQty),
        avg_price=num(ex.avgPrice),
        order_quantity=num(trade.order.totalQuantity) if trade else None,
        time=when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC),
        commission=num(report.commission) if reported else None,
        commission_currency=(report.currency or None) if reported else None,
        realized_pnl=num(report.realizedPNL) if reported else None,
    )


def position_snapshot(pos: Any) -> PositionSnapshot:
    """A plain copy of one position."""
    contract = pos.contract
    return PositionSnapshot(
        account=pos.account,
        con_id=contract.conId,
        symbol=contract.symbol,
        sec_type=contract.secType,
        local_symbol=contract.localSymbol,
        quantity=num(pos.position) or Decimal(0),
        avg_cost=num(pos.avgCost),
    )


def request_contract(spec: ContractSpec) -> Contract:
    """The contract to ask IB's contract details for (a map's con_id alone pins it)."""
    if spec.con_id:
        return Contract(conId=spec.con_id, exchange=spec.exchange if spec.sec_type != "STK" else "")
    contract = _request_contract(spec)
    # the symbol map's fields that tell similar contracts apart (MNQ vs NQ, a class, a local name)
    if spec.trading_class:
        contract.tradingClass = spec.trading_class
    if spec.local_symbol:
        contract.localSymbol = spec.local_symbol
    if spec.multiplier:
        contract.multiplier = spec.multiplier
    return contract


def _request_contract(spec: ContractSpec) -> Contract:
    if spec.sec_type == "CASH":
        return Forex(spec.symbol + spec.currency, exchange=spec.exchange)
    if spec.sec_type == "CRYPTO":
        return Crypto(spec.symbol, spec.exchange, spec.currency)
    if spec.sec_type == "FUT":
        return IBFuture(spec.symbol, spec.contract_month, spec.exchange, currency=spec.currency)
    if spec.sec_type == "OPT":
        return Option(spec.symbol, spec.contract_month, float(spec.strike), spec.right, spec.exchange,
                      currency=spec.currency)  # fmt: skip
    return Stock(spec.symbol, spec.exchange, spec.currency, primaryExchange=spec.primary_exchange)


def describe(spec: ContractSpec) -> str:
    """``FUT ES (front #1) on CME in USD`` (for refusals)."""
    text = f"{spec.sec_type} {spec.symbol}"
    if spec.contract_month:
        text += f" {spec.contract_month}"
    if spec.right:
        text += f" {spec.right} {spec.strike}"
    if spec.front_index:
        text += f" (front #{spec.front_index})"
    if spec.con_id:
        text += f" (conId {spec.con_id})"
    return f"{text} on {spec.exchange} in {spec.currency}"


def pick_details(details: list[Any], spec: ContractSpec, now: datetime) -> tuple[list[Any], Pick | None]:
    """The contract details that answer ``spec``: for a continuous future the n-th listed one not
    rolled at the exchange's today (worker/contracts/roll.py), with the roll facts; for an explicit month
    the first unexpired one."""
    details = [d for d in details if d.contract is not None]
    if spec.sec_type != "FUT":
        return details, None
    if spec.front_index:
        pick = pick_front(listed_of(details), spec.front_index, now, spec.roll_days, spec.exchange)
        return ([details[pick.chosen.key]] if pick.chosen else []), pick
    zone = exchange_zone(getattr(details[0], "timeZoneId", "") if details else "", spec.exchange)
    today = exchange_today(now, zone)
    details = [d for d in details if (_last_trade(d) or today) >= today]
    details.sort(key=lambda d: d.contract.lastTradeDateOrContractMonth)
    return details[:1], None


def listed_of(details: list[Any]) -> list[Listed]:
    """The roll's view of IB's contract details (those with a last trade date), keyed by position."""
    listed = []
    for key, detail in enumerate(details):
        last = _last_trade(detail)
        if last is not None:
            contract = detail.contract
            listed.append(Listed(str(contract.localSymbol or contract.symbol), last,
                                 getattr(detail, "timeZoneId", "") or "", key))  # fmt: skip
    return listed


def _last_trade(detail: Any) -> date | None:
    """The contract's last trade date: ``lastTradeDateOrContractMonth``, else ``realExpirationDate``."""
    return last_trade_of(getattr(detail.contract, "lastTradeDateOrContractMonth", ""),
                         getattr(detail, "realExpirationDate", ""))  # fmt: skip


def instrument_of(detail: Any, spec: ContractSpec) -> tuple[Contract, Instrument]:
    """The contract to trade and the facts the planner needs, from one contract detail."""
    contract = detail.contract
    if spec.sec_type != "STK" and not contract.exchange:
        contract.exchange = spec.exchange
    if spec.sec_type == "STK":
        contract.exchange = "SMART"
    increment = num(getattr(detail, "sizeIncrement", None)) or Decimal(0)
    minimum = num(getattr(detail, "minSize", None)) or Decimal(0)
    if increment <= 0:
        increment = Decimal("0.00000001") if spec.sec_type == "CRYPTO" else Decimal(1)
    if minimum <= 0:
        minimum = increment
    inst = Instrument(
        con_id=contract.conId,
        symbol=contract.symbol,
        sec_type=contract.secType,
        exchange=contract.exchange,
        currency=contract.currency,
        local_symbol=contract.localSymbol,
        min_tick=num(detail.minTick) or Decimal("0.01"),
        min_size=minimum,
        size_increment=increment,
        multiplier=contract.multiplier or "",
    )
    return contract, inst


def closing_contract(contract: Contract) -> Contract:
    """A position's contract made orderable (IB reports positions without an exchange)."""
    if not contract.exchange:
        contract.exchange = DEFAULT_EXCHANGES.get(contract.secType, contract.primaryExchange or "SMART")
    return contract
