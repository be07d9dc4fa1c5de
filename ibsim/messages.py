"""Message layouts of the TWS API at server version 157.

Encoders build the field lists of server → client messages (frame them with
:func:`ibsim.framing.frame`); decoders turn client → server field lists into typed requests.
The layouts are the ones both clients' decoders read at that version (docs/ibsim-protocol.md says how
they were found and which rules they keep); the field counts the clients
check strictly (execDetails 31, commissionReport 8, position 16, updatePortfolio 20,
tickPrice 7, nextValidId/managedAccounts 3) are pinned by tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ibsim.catalog import ContractQuery, Instrument
from ibsim.framing import UNSET_DOUBLE, UNSET_DOUBLE_TEXT, FieldError, FieldReader
from ibsim.model import Execution, Order, OrderRequest

SERVER_VERSION = 157

# server -> client message ids
TICK_PRICE = 1
TICK_SIZE = 2
ORDER_STATUS = 3
ERR_MSG = 4
OPEN_ORDER = 5
ACCT_VALUE = 6
PORTFOLIO_VALUE = 7
ACCT_UPDATE_TIME = 8
NEXT_VALID_ID = 9
CONTRACT_DATA = 10
EXECUTION_DATA = 11
MANAGED_ACCTS = 15
CURRENT_TIME = 49
CONTRACT_DATA_END = 52
OPEN_ORDER_END = 53
ACCT_DOWNLOAD_END = 54
EXECUTION_DATA_END = 55
TICK_SNAPSHOT_END = 57
MARKET_DATA_TYPE = 58
COMMISSION_REPORT = 59
POSITION_DATA = 61
POSITION_END = 62
ACCOUNT_SUMMARY = 63
ACCOUNT_SUMMARY_END = 64
ACCOUNT_UPDATE_MULTI = 73
ACCOUNT_UPDATE_MULTI_END = 74
SYMBOL_SAMPLES = 79
MARKET_RULE = 93
PNL = 94
PNL_SINGLE = 95
COMPLETED_ORDER = 101
COMPLETED_ORDERS_END = 102

# client -> server message ids
REQ_MKT_DATA = 1
CANCEL_MKT_DATA = 2
PLACE_ORDER = 3
CANCEL_ORDER = 4
REQ_OPEN_ORDERS = 5
REQ_ACCT_DATA = 6
REQ_EXECUTIONS = 7
REQ_IDS = 8
REQ_CONTRACT_DATA = 9
REQ_AUTO_OPEN_ORDERS = 15
REQ_ALL_OPEN_ORDERS = 16
REQ_MANAGED_ACCTS = 17
REQ_CURRENT_TIME = 49
REQ_GLOBAL_CANCEL = 58
REQ_MARKET_DATA_TYPE = 59
REQ_POSITIONS = 61
REQ_ACCOUNT_SUMMARY = 62
CANCEL_ACCOUNT_SUMMARY = 63
CANCEL_POSITIONS = 64
START_API = 71
REQ_ACCOUNT_UPDATES_MULTI = 76
CANCEL_ACCOUNT_UPDATES_MULTI = 77
REQ_MATCHING_SYMBOLS = 81
REQ_MARKET_RULE = 91
REQ_PNL = 92
CANCEL_PNL = 93
REQ_PNL_SINGLE = 94
CANCEL_PNL_SINGLE = 95
REQ_COMPLETED_ORDERS = 99

Fields = list[object]


def _num(value: float | None) -> object:
    """A float field where UNSET / None is sent as ""."""
    if value is None or value >= UNSET_DOUBLE:
        return ""
    return float(value)


# ------------------------------------------------------------------ session


def handshake_reply(conn_time: str, version: int = SERVER_VERSION) -> Fields:
    """The 2-field handshake answer: server version and connection time."""
    return [version, conn_time]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    """managedAccounts 15 (exactly 3 fields)."""
    return [MANAGED_ACCTS, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Fields:
    """nextValidId 9 (exactly 3 fields)."""
    return [NEXT_VALID_ID, 1, int(order_id)]


def current_time(unix_seconds: int) -> Fields:
    """currentTime 49."""
    return [CURRENT_TIME, 1, int(unix_seconds)]


def error(req_id: int, code: int, text: str) -> Fields:
    """error 4 (no advancedOrderRejectJson below version 166)."""
    return [ERR_MSG, 2, int(req_id), int(code), text]


# ------------------------------------------------------------------ contracts


def contract_details(req_id: int, inst: Instrument, exchange: str = "") -> Fields:
    """contractDetails 10: 39 fields at version 157 (no secIds)."""
    return [
        CONTRACT_DATA,
        8,
        int(req_id),
        inst.symbol,
        inst.sec_type,
        inst.packed_expiry,
        0,
        "",
        exchange or inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.market_name or inst.trading_class,
        inst.trading_class,
        inst.con_id,
        float(inst.min_tick),
        1,  # mdSizeMultiplier (below 164)
        inst.multiplier,
        inst.order_types,
        inst.valid_exchanges or inst.exchange,
        1,  # priceMagnifier
        int(inst.under_con_id),
        inst.long_name,
        inst.primary_exchange,
        inst.contract_month,
        inst.industry,
        inst.category,
        inst.subcategory,
        inst.time_zone_id,
        inst.trading_hours,
        inst.liquid_hours,
        "",  # evRule
        "",  # evMultiplier
        0,  # secIdList count
        1,  # aggGroup
        inst.under_symbol,
        inst.under_sec_type,
        inst.market_rule_ids,
        inst.last_trade_date,  # realExpirationDate
        inst.stock_type,
    ]


def contract_details_end(req_id: int) -> Fields:
    """contractDetailsEnd 52."""
    return [CONTRACT_DATA_END, 1, int(req_id)]


def symbol_samples(req_id: int, instruments: Sequence[Instrument]) -> Fields:
    """symbolSamples 79 (no description/issuerId below version 176)."""
    fields: Fields = [SYMBOL_SAMPLES, int(req_id), len(instruments)]
    for inst in instruments:
        derivs = ["FUT", "OPT"] if inst.sec_type == "STK" else []
        fields += [
            inst.con_id,
            inst.symbol,
            inst.sec_type,
            inst.primary_exchange or inst.exchange,
            inst.currency,
        ]
        fields += [len(derivs), *derivs]
    return fields


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> Fields:
    """marketRule 93: (lowEdge, increment) pairs."""
    fields: Fields = [MARKET_RULE, int(rule_id), len(increments)]
    for low, inc in increments:
        fields += [float(low), float(inc)]
    return fields


def _contract_head(inst: Instrument, exchange: str) -> Fields:
    """conId..tradingClass as openOrder/completedOrder/execDetails carry them (11 fields)."""
    return [
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        0.0,
        "",
        inst.multiplier,
        exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,
    ]


# ------------------------------------------------------------------ orders


@dataclass(frozen=True)
class WhatIfState:
    """Margin and commission figures of a whatIf answer (numeric, never unset)."""

    init_margin_before: float
    maint_margin_before: float
    equity_with_loan_before: float
    init_margin_change: float
    maint_margin_change: float
    equity_with_loan_change: float
    init_margin_after: float
    maint_margin_after: float
    equity_with_loan_after: float
    commission: float
    min_commission: float
    max_commission: float
    commission_currency: str = "USD"


def open_order(
    order: Order, inst: Instrument, status: str | None = None, what_if: WhatIfState | None = None
) -> Fields:
    """openOrder 5: 120 fields at version 157 for a plain order."""
    fields: Fields = [OPEN_ORDER, order.order_id, *_contract_head(inst, order.exchange)]
    fields += [
        order.action,
        float(order.total_quantity),
        order.order_type,
        _num(order.lmt_price),
        _num(order.aux_price),
        order.tif,
        order.oca_group,
        order.account,
        "O",
        0,
        order.order_ref,
        order.client_id,
        order.perm_id,
        order.outside_rth,
        False,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
        "",  # faProfile (below 177)
        "",  # modelCode
        order.good_till_date,
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        0,  # auctionStrategy
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        0,  # displaySize
        False,  # blockOrder
        False,  # sweepToFill
        False,  # allOrNone
        "",  # minQty
        order.oca_type,
        False,  # eTradeOnly
        False,  # firmQuoteOnly
        "",  # nbboPriceCap
        order.parent_id,
        0,  # triggerMethod
        "",  # volatility
        "",  # volatilityType
        "",  # deltaNeutralOrderType
        "",  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        "",  # referencePriceType
        _num(order.trail_stop_price),
        _num(order.trailing_percent),
        "",  # basisPoints
        "",  # basisPointsType
        "",  # comboLegsDescrip
        0,  # comboLegsCount
        0,  # orderComboLegsCount
        0,  # smartComboRoutingParamsCount
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement
        "",  # hedgeType
        False,  # optOutSmartRouting
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        False,  # deltaNeutralContract present
        "",  # algoStrategy
        False,  # solicited
        what_if is not None,
        status or order.status,
    ]
    if what_if is None:
        fields += ["", "", "", "", "", "", "", "", "", "", "", "", "", ""]
    else:
        w = what_if
        fields += [
            w.init_margin_before,
            w.maint_margin_before,
            w.equity_with_loan_before,
            w.init_margin_change,
            w.maint_margin_change,
            w.equity_with_loan_change,
            w.init_margin_after,
            w.maint_margin_after,
            w.equity_with_loan_after,
            w.commission,
            w.min_commission,
            w.max_commission,
            w.commission_currency,
            "",  # warningText
        ]
    fields += [
        False,  # randomizeSize
        False,  # randomizePrice
        0,  # conditionsCount
        "",  # adjustedOrderType
        "",  # triggerPrice
        _num(order.trail_stop_price),
        "",  # lmtPriceOffset
        "",  # adjustedStopPrice
        "",  # adjustedStopLimitPrice
        "",  # adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "",  # softDollarTier.name
        "",  # softDollarTier.val
        "",  # softDollarTier.displayName
        "",  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        False,  # discretionaryUpToLimitPrice
        False,  # usePriceMgmtAlgo
    ]
    return fields


def open_order_end() -> Fields:
    """openOrderEnd 53."""
    return [OPEN_ORDER_END, 1]


def order_status(order: Order, status: str | None = None) -> Fields:
    """orderStatus 3: 12 fields, no version field."""
    return [
        ORDER_STATUS,
        order.order_id,
        status or order.status,
        float(order.filled),
        float(order.remaining),
        float(order.avg_fill_price),
        order.perm_id,
        order.parent_id,
        float(order.last_fill_price),
        order.client_id,
        "",
        0.0,
    ]


def completed_order(order: Order, inst: Instrument) -> Fields:
    """completedOrder 101: 92 fields at version 157 (only in reply to reqCompletedOrders)."""
    fields: Fields = [COMPLETED_ORDER, *_contract_head(inst, order.exchange)]
    fields += [
        order.action,
        float(order.total_quantity),
        order.order_type,
        _num(order.lmt_price),
        _num(order.aux_price),
        order.tif,
        order.oca_group,
        order.account,
        "O",
        0,
        order.order_ref,
        order.perm_id,
        order.outside_rth,
        False,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
        "",  # faProfile (below 177)
        "",  # modelCode
        order.good_till_date,
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        0,  # displaySize
        False,  # sweepToFill
        False,  # allOrNone
        "",  # minQty
        order.oca_type,
        0,  # triggerMethod
        "",  # volatility
        "",  # volatilityType
        "",  # deltaNeutralOrderType
        "",  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        "",  # referencePriceType
        _num(order.trail_stop_price),
        _num(order.trailing_percent),
        "",  # comboLegsDescrip
        0,  # comboLegsCount
        0,  # orderComboLegsCount
        0,  # smartComboRoutingParamsCount
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement
        "",  # hedgeType
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        False,  # deltaNeutralContract present
        "",  # algoStrategy
        False,  # solicited
        order.status,
        False,  # randomizeSize
        False,  # randomizePrice
        0,  # conditionsCount
        _num(order.trail_stop_price),
        "",  # lmtPriceOffset
        "",  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        "",  # autoCancelDate
        float(order.filled),
        0,  # refFuturesConId
        False,  # autoCancelParent
        "",  # shareholder
        False,  # imbalanceOnly
        False,  # routeMarketableToBbo
        order.parent_perm_id,
        order.completed_time,
        order.completed_status or order.status,
    ]
    return fields


def completed_orders_end() -> Fields:
    """completedOrdersEnd 102 (no version field)."""
    return [COMPLETED_ORDERS_END]


# ------------------------------------------------------------------ executions


def exec_details(req_id: int, ex: Execution, inst: Instrument) -> Fields:
    """execDetails 11: exactly 31 fields (ib_insync 0.9.86 drops any other count)."""
    return [
        EXECUTION_DATA,
        int(req_id),
        ex.order_id,
        *_contract_head(inst, ex.order_exchange),
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
        UNSET_DOUBLE_TEXT,
        "",
    ]


# ------------------------------------------------------------------ positions and account


def position(account: str, inst: Instrument, quantity: float, avg_cost: float) -> Fields:
    """position 61: exactly 16 fields."""
    return [
        POSITION_DATA,
        3,
        account,
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        0.0,
        "",
        inst.multiplier,
        inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,
        float(quantity),
        float(avg_cost),
    ]


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
    return [
        PORTFOLIO_VALUE,
        8,
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        0.0,
        "",
        inst.multiplier,
        inst.primary_exchange or inst.exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,
        float(quantity),
        float(market_price),
        float(market_value),
        float(avg_cost),
        float(unrealized_pnl),
        float(realized_pnl),
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
    return [
        PNL_SINGLE,
        int(req_id),
        float(pos),
        float(daily),
        float(unrealized),
        float(realized),
        float(value),
    ]


# ------------------------------------------------------------------ market data


def market_data_type(req_id: int, data_type: int = 1) -> Fields:
    """marketDataType 58."""
    return [MARKET_DATA_TYPE, 1, int(req_id), int(data_type)]


def tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> Fields:
    """tickPrice 1: exactly 7 fields."""
    return [TICK_PRICE, 6, int(req_id), int(tick_type), float(price), float(size), int(attr_mask)]


def tick_size(req_id: int, tick_type: int, size: float) -> Fields:
    """tickSize 2."""
    return [TICK_SIZE, 6, int(req_id), int(tick_type), float(size)]


def tick_snapshot_end(req_id: int) -> Fields:
    """tickSnapshotEnd 57."""
    return [TICK_SNAPSHOT_END, 1, int(req_id)]


# ================================================================== client -> server decoders


def read_contract(r: FieldReader) -> ContractQuery:
    """The 12-field contract block [C12]."""
    return ContractQuery(
        con_id=r.int(),
        symbol=r.str(),
        sec_type=r.str(),
        last_trade_date_or_contract_month=r.str(),
        strike=r.float(0.0),
        right=r.str(),
        multiplier=r.str(),
        exchange=r.str(),
        primary_exchange=r.str(),
        currency=r.str(),
        local_symbol=r.str(),
        trading_class=r.str(),
    )


_CONDITION_WIDTH = {1: 7, 3: 4, 4: 4, 5: 5, 6: 6, 7: 6}


def parse_place_order(fields: Sequence[str]) -> OrderRequest:
    """Decode placeOrder 3 at version 157 (110 fields for a plain order); every field must be consumed."""
    r = FieldReader(fields, 1)
    order_id = r.int()
    contract = read_contract(r)
    r.skip(2)  # secIdType, secId
    action = r.str()
    total_quantity = r.float(0.0)
    order_type = r.str()
    lmt_price = r.float()
    aux_price = r.float()
    tif = r.str()
    oca_group = r.str()
    account = r.str()
    open_close = r.str()
    origin = r.int()
    order_ref = r.str()
    transmit = r.bool()
    parent_id = r.int()
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.bool()
    hidden = r.bool()
    is_bag = contract.sec_type.upper() == "BAG"
    if is_bag:
        legs = r.int()
        r.skip(8 * legs)
        r.skip(r.int())
        r.skip(2 * r.int())
    r.skip(2)  # sharesAllocation, discretionaryAmt
    good_after_time = r.str()
    good_till_date = r.str()
    r.skip(5)  # faGroup, faMethod, faPercentage, faProfile, modelCode
    r.skip(3)  # shortSaleSlot, designatedLocation, exemptCode
    oca_type = r.int()
    r.skip(15)  # rule80A .. overridePercentageConstraints
    r.skip(2)  # volatility, volatilityType
    delta_neutral_type = r.str()
    r.skip(1)  # deltaNeutralAuxPrice
    if delta_neutral_type:
        r.skip(8)
    r.skip(2)  # continuousUpdate, referencePriceType
    trail_stop_price = r.float()
    trailing_percent = r.float()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    scale_price_increment = r.float()
    if 0 < scale_price_increment < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.str():  # hedgeType
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.bool():  # deltaNeutralContract
        r.skip(3)
    if r.str():  # algoStrategy
        r.skip(2 * r.int())
    r.skip(1)  # algoId
    what_if = r.bool()
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type.upper() in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)
    conditions = r.int()
    if conditions < 0 or conditions > 1000:
        raise FieldError(f"bad conditions count {conditions}")
    for _ in range(conditions):
        cond_type = r.int()
        width = _CONDITION_WIDTH.get(cond_type)
        if width is None:
            raise FieldError(f"unknown condition type {cond_type}")
        r.skip(width - 1)
    if conditions:
        r.skip(2)
    r.skip(10)  # adjustedOrderType .. softDollarTier.val
    cash_qty = r.float()
    r.skip(8)  # mifid2 x4, dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpTo, usePriceMgmtAlgo
    r.expect_end()
    return OrderRequest(
        order_id=order_id,
        contract=contract,
        action=action.upper(),
        total_quantity=total_quantity,
        order_type=order_type.upper(),
        lmt_price=lmt_price,
        aux_price=aux_price,
        tif=tif.upper(),
        oca_group=oca_group,
        account=account,
        open_close=open_close,
        origin=origin,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        hidden=hidden,
        good_after_time=good_after_time,
        good_till_date=good_till_date,
        oca_type=oca_type,
        trail_stop_price=trail_stop_price,
        trailing_percent=trailing_percent,
        what_if=what_if,
        cash_qty=cash_qty,
        sec_type_bag=is_bag,
        conditions_count=conditions,
    )


def parse_contract_details_request(fields: Sequence[str]) -> tuple[int, ContractQuery]:
    """reqContractDetails 9: (reqId, contract)."""
    r = FieldReader(fields, 2)
    req_id = r.int()
    return req_id, read_contract(r)


@dataclass(frozen=True)
class ExecFilter:
    """reqExecutions filter; empty fields and clientId 0 are wildcards."""

    client_id: int = 0
    account: str = ""
    time: str = ""
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""


def parse_executions_request(fields: Sequence[str]) -> tuple[int, ExecFilter]:
    """reqExecutions 7: (reqId, filter)."""
    r = FieldReader(fields, 2)
    req_id = r.int()
    return req_id, ExecFilter(
        client_id=r.int(),
        account=r.str(),
        time=r.str(),
        symbol=r.str(),
        sec_type=r.str(),
        exchange=r.str(),
        side=r.str(),
    )


@dataclass(frozen=True)
class MktDataRequest:
    """reqMktData 1."""

    req_id: int
    contract: ContractQuery
    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool


def parse_mkt_data_request(fields: Sequence[str]) -> MktDataRequest:
    """reqMktData 1 (BAG legs are skipped)."""
    r = FieldReader(fields, 2)
    req_id = r.int()
    contract = read_contract(r)
    if contract.sec_type.upper() == "BAG":
        r.skip(4 * r.int())
    if r.bool():
        r.skip(3)
    generic = r.str()
    snapshot = r.bool()
    regulatory = r.bool()
    return MktDataRequest(req_id, contract, generic, snapshot, regulatory)


# ------------------------------------------------------------------ historical data

HISTORICAL_DATA = 17
HEAD_TIMESTAMP = 88
REQ_HISTORICAL_DATA = 20
REQ_HEAD_TIMESTAMP = 87


@dataclass(frozen=True)
class Bar:
    """One historical bar; ``date`` is already in wire form (``YYYYMMDD`` or unix seconds)."""

    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    average: float
    bar_count: int


def historical_data(req_id: int, start: str, end: str, bars: Sequence[Bar]) -> Fields:
    """historicalData 17 (no version field at 157): header, bar count, 8 fields per bar."""
    fields: Fields = [HISTORICAL_DATA, int(req_id), start, end, len(bars)]
    for b in bars:
        fields += [b.date, b.open, b.high, b.low, b.close, b.volume, b.average, int(b.bar_count)]
    return fields


def head_timestamp(req_id: int, stamp: str) -> Fields:
    """headTimestamp 88."""
    return [HEAD_TIMESTAMP, int(req_id), stamp]


@dataclass(frozen=True)
class HistoricalRequest:
    """reqHistoricalData 20."""

    req_id: int
    contract: ContractQuery
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


def parse_historical_request(fields: Sequence[str]) -> HistoricalRequest:
    """reqHistoricalData 20 at version 157 (no version field)."""
    r = FieldReader(fields, 1)
    req_id = r.int()
    contract = read_contract(r)
    r.skip(1)  # includeExpired
    end = r.str()
    bar_size = r.str()
    duration = r.str()
    use_rth = r.bool()
    what_to_show = r.str()
    format_date = r.int(1)
    if contract.sec_type.upper() == "BAG":
        r.skip(4 * r.int())
    keep_up_to_date = r.bool()
    return HistoricalRequest(
        req_id, contract, end, bar_size, duration, use_rth, what_to_show, format_date, keep_up_to_date
    )
