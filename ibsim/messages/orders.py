"""Order messages to the client: openOrder, orderStatus, completedOrder and their ends.

openOrder (120 fields at version 157) and completedOrder (92) are long field lists that share
most of their runs, so they are written as layout tables (:mod:`ibsim.messages.layout`) built from
named segments in wire order; each row names its field as the protocol reference does.
"""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument
from ibsim.messages.contracts import contract_head
from ibsim.messages.ids import COMPLETED_ORDER, COMPLETED_ORDERS_END, OPEN_ORDER, OPEN_ORDER_END, ORDER_STATUS
from ibsim.messages.layout import Fields, Row, as_float, attr, blanks, encode, unset_blank
from ibsim.model import Order, WhatIfState

# ---------------------------------------------------------------- segments both layouts carry

_TERMS: tuple[Row, ...] = (
    ("action", attr("action")),
    ("totalQuantity", as_float("total_quantity")),
    ("orderType", attr("order_type")),
    ("lmtPrice", unset_blank("lmt_price")),
    ("auxPrice", unset_blank("aux_price")),
    ("tif", attr("tif")),
    ("ocaGroup", attr("oca_group")),
    ("account", attr("account")),
    ("openClose", "O"),
    ("origin", 0),
    ("orderRef", attr("order_ref")),
)
_RTH_HIDDEN: tuple[Row, ...] = (
    ("outsideRth", attr("outside_rth")),
    ("hidden", False),
    ("discretionaryAmt", 0),
    ("goodAfterTime", ""),
)
_FA_TO_EXEMPT: tuple[Row, ...] = (
    *blanks("faGroup", "faMethod", "faPercentage", "faProfile (below 177)", "modelCode"),
    ("goodTillDate", attr("good_till_date")),
    *blanks("rule80A", "percentOffset", "settlingFirm"),
    ("shortSaleSlot", 0),
    ("designatedLocation", ""),
    ("exemptCode", -1),
)
_BOX_TO_DISPLAY: tuple[Row, ...] = (
    *blanks("startingPrice", "stockRefPrice", "delta", "stockRangeLower", "stockRangeUpper"),
    ("displaySize", 0),
)
_SWEEP_TO_OCA: tuple[Row, ...] = (
    ("sweepToFill", False),
    ("allOrNone", False),
    ("minQty", ""),
    ("ocaType", attr("oca_type")),
)
_TRIGGER_TO_TRAIL: tuple[Row, ...] = (
    ("triggerMethod", 0),
    *blanks("volatility", "volatilityType", "deltaNeutralOrderType", "deltaNeutralAuxPrice"),
    ("continuousUpdate", False),
    ("referencePriceType", ""),
    ("trailStopPrice", unset_blank("trail_stop_price")),
    ("trailingPercent", unset_blank("trailing_percent")),
)
_COMBO_TO_HEDGE: tuple[Row, ...] = (
    ("comboLegsDescrip", ""),
    ("comboLegsCount", 0),
    ("orderComboLegsCount", 0),
    ("smartComboRoutingParamsCount", 0),
    *blanks("scaleInitLevelSize", "scaleSubsLevelSize", "scalePriceIncrement", "hedgeType"),
)
_CLEARING_TO_SOLICITED: tuple[Row, ...] = (
    *blanks("clearingAccount", "clearingIntent"),
    ("notHeld", False),
    ("deltaNeutralContract present", False),
    ("algoStrategy", ""),
    ("solicited", False),
)
_RANDOMIZE_TO_CONDITIONS: tuple[Row, ...] = (
    ("randomizeSize", False),
    ("randomizePrice", False),
    ("conditionsCount", 0),
)

# ---------------------------------------------------------------- openOrder 5

#: after the order id and the contract block, up to the whatIf flag
OPEN_ORDER_BODY: tuple[Row, ...] = (
    *_TERMS,
    ("clientId", attr("client_id")),
    ("permId", attr("perm_id")),
    *_RTH_HIDDEN,
    ("sharesAllocation (deprecated)", ""),
    *_FA_TO_EXEMPT,
    ("auctionStrategy", 0),
    *_BOX_TO_DISPLAY,
    ("blockOrder", False),
    *_SWEEP_TO_OCA,
    ("eTradeOnly", False),
    ("firmQuoteOnly", False),
    ("nbboPriceCap", ""),
    ("parentId", attr("parent_id")),
    *_TRIGGER_TO_TRAIL,
    *blanks("basisPoints", "basisPointsType"),
    *_COMBO_TO_HEDGE,
    ("optOutSmartRouting", False),
    *_CLEARING_TO_SOLICITED,
)
#: the order state's figures after whatIf and status (all empty unless the order is a whatIf)
WHAT_IF_FIELDS = (
    "init_margin_before", "maint_margin_before", "equity_with_loan_before",
    "init_margin_change", "maint_margin_change", "equity_with_loan_change",
    "init_margin_after", "maint_margin_after", "equity_with_loan_after",
    "commission", "min_commission", "max_commission", "commission_currency",
)  # fmt: skip
#: after the order state
OPEN_ORDER_TAIL: tuple[Row, ...] = (
    *_RANDOMIZE_TO_CONDITIONS,
    *blanks("adjustedOrderType", "triggerPrice"),
    ("trailStopPrice", unset_blank("trail_stop_price")),
    *blanks("lmtPriceOffset", "adjustedStopPrice", "adjustedStopLimitPrice", "adjustedTrailingAmount"),
    ("adjustableTrailingUnit", 0),
    *blanks("softDollarTier.name", "softDollarTier.val", "softDollarTier.displayName", "cashQty"),
    ("dontUseAutoPriceForHedge", False),
    ("isOmsContainer", False),
    ("discretionaryUpToLimitPrice", False),
    ("usePriceMgmtAlgo", False),
)


def open_order(
    order: Order, inst: Instrument, status: str | None = None, what_if: WhatIfState | None = None
) -> Fields:
    """openOrder 5: 120 fields at version 157 for a plain order."""
    fields: Fields = [OPEN_ORDER, order.order_id, *contract_head(inst, order.exchange)]
    fields += encode(OPEN_ORDER_BODY, order)
    fields += [what_if is not None, status or order.status]
    if what_if is None:
        fields += [""] * (len(WHAT_IF_FIELDS) + 1)
    else:
        fields += [what_if.texts.get(name, getattr(what_if, name)) for name in WHAT_IF_FIELDS]
        fields.append(what_if.warning_text)
    fields += encode(OPEN_ORDER_TAIL, order)
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
        "",  # whyHeld
        0.0,  # mktCapPrice
    ]


# ---------------------------------------------------------------- completedOrder 101

#: after the contract block (a completed order has no order id and no client id)
COMPLETED_ORDER_BODY: tuple[Row, ...] = (
    *_TERMS,
    ("permId", attr("perm_id")),
    *_RTH_HIDDEN,
    *_FA_TO_EXEMPT,
    *_BOX_TO_DISPLAY,
    *_SWEEP_TO_OCA,
    *_TRIGGER_TO_TRAIL,
    *_COMBO_TO_HEDGE,
    *_CLEARING_TO_SOLICITED,
    ("orderState.status", attr("status")),
    *_RANDOMIZE_TO_CONDITIONS,
    ("trailStopPrice", unset_blank("trail_stop_price")),
    *blanks("lmtPriceOffset", "cashQty"),
    ("dontUseAutoPriceForHedge", False),
    ("isOmsContainer", False),
    ("autoCancelDate", ""),
    ("filledQuantity", as_float("filled")),
    ("refFuturesConId", 0),
    ("autoCancelParent", False),
    ("shareholder", ""),
    ("imbalanceOnly", False),
    ("routeMarketableToBbo", False),
    ("parentPermId", attr("parent_perm_id")),
    ("completedTime", attr("completed_time")),
    ("completedStatus", lambda order: order.completed_status or order.status),
)


def completed_order(order: Order, inst: Instrument) -> Fields:
    """completedOrder 101: 92 fields at version 157 (only in reply to reqCompletedOrders)."""
    return [COMPLETED_ORDER, *contract_head(inst, order.exchange), *encode(COMPLETED_ORDER_BODY, order)]


def completed_orders_end() -> Fields:
    """completedOrdersEnd 102 (no version field)."""
    return [COMPLETED_ORDERS_END]
