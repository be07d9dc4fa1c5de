"""The placeOrder decoder (id 3, 110 fields for a plain order at version 157).

The layout is a table of steps in wire order: ``(name, reader)`` reads a field the simulator uses
into the request, :func:`skip` names fields it passes over, and a function reads a conditional
group (BAG legs, delta-neutral, scale, hedge, algo, PEG BENCH, conditions). Every field must be
consumed: a version or layout mistake fails loudly instead of shifting later fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ibsim.framing import UNSET_DOUBLE, FieldError, FieldReader
from ibsim.messages.contracts import read_contract
from ibsim.model import OrderRequest

Values = dict[str, Any]


class Skip(tuple[str, ...]):
    """Fields passed over (named as the protocol reference names them)."""


def skip(*names: str) -> Skip:
    """A step that passes over the named fields."""
    return Skip(names)


def _str(r: FieldReader) -> str:
    return r.str()


def _int(r: FieldReader) -> int:
    return r.int()


def _float(r: FieldReader) -> float:
    return r.float()


def _quantity(r: FieldReader) -> float:
    return r.float(0.0)


def _bool(r: FieldReader) -> bool:
    return r.bool()


def _bag_legs(r: FieldReader, v: Values) -> None:
    """[BAG] combo legs (8 fields each), order combo leg prices, smart combo routing params."""
    v["sec_type_bag"] = v["contract"].sec_type.upper() == "BAG"
    if v["sec_type_bag"]:
        r.skip(8 * r.int())
        r.skip(r.int())
        r.skip(2 * r.int())


def _delta_neutral(r: FieldReader, v: Values) -> None:
    """deltaNeutralOrderType, deltaNeutralAuxPrice, and [DN] (8 fields) when the type is set."""
    order_type = r.str()
    r.skip(1)
    if order_type:
        r.skip(8)


def _scale(r: FieldReader, v: Values) -> None:
    """scalePriceIncrement, and [SC] (7 fields) when it is set."""
    increment = r.float()
    if 0 < increment < UNSET_DOUBLE:
        r.skip(7)


def _hedge(r: FieldReader, v: Values) -> None:
    """hedgeType, and [HG] hedgeParam when it is set."""
    if r.str():
        r.skip(1)


def _delta_neutral_contract(r: FieldReader, v: Values) -> None:
    """deltaNeutralContract present, and its conId, delta, price."""
    if r.bool():
        r.skip(3)


def _algo(r: FieldReader, v: Values) -> None:
    """algoStrategy, and its (tag, value) params when it is set."""
    if r.str():
        r.skip(2 * r.int())


def _peg_bench(r: FieldReader, v: Values) -> None:
    """[PB] five pegged-to-benchmark fields for PEG BENCH orders."""
    if v["order_type"].upper() in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)


_CONDITION_WIDTH = {1: 7, 3: 4, 4: 4, 5: 5, 6: 6, 7: 6}


def _conditions(r: FieldReader, v: Values) -> None:
    """conditionsCount N, N condition records, then conditionsIgnoreRth and conditionsCancelOrder."""
    count = r.int()
    if count < 0 or count > 1000:
        raise FieldError(f"bad conditions count {count}")
    for _ in range(count):
        cond_type = r.int()
        width = _CONDITION_WIDTH.get(cond_type)
        if width is None:
            raise FieldError(f"unknown condition type {cond_type}")
        r.skip(width - 1)
    if count:
        r.skip(2)
    v["conditions_count"] = count


Step = tuple[str, Callable[[FieldReader], Any]] | Skip | Callable[[FieldReader, Values], None]

PLACE_ORDER: tuple[Step, ...] = (
    ("order_id", _int),
    ("contract", read_contract),
    skip("secIdType", "secId"),
    ("action", _str),
    ("total_quantity", _quantity),
    ("order_type", _str),
    ("lmt_price", _float),
    ("aux_price", _float),
    ("tif", _str),
    ("oca_group", _str),
    ("account", _str),
    ("open_close", _str),
    ("origin", _int),
    ("order_ref", _str),
    ("transmit", _bool),
    ("parent_id", _int),
    skip("blockOrder", "sweepToFill", "displaySize", "triggerMethod"),
    ("outside_rth", _bool),
    ("hidden", _bool),
    _bag_legs,
    skip("sharesAllocation", "discretionaryAmt"),
    ("good_after_time", _str),
    ("good_till_date", _str),
    skip("faGroup", "faMethod", "faPercentage", "faProfile", "modelCode"),
    skip("shortSaleSlot", "designatedLocation", "exemptCode"),
    ("oca_type", _int),
    skip(
        "rule80A",
        "settlingFirm",
        "allOrNone",
        "minQty",
        "percentOffset",
        "eTradeOnly",
        "firmQuoteOnly",
        "nbboPriceCap",
        "auctionStrategy",
        "startingPrice",
        "stockRefPrice",
        "delta",
        "stockRangeLower",
        "stockRangeUpper",
        "overridePercentageConstraints",
    ),
    skip("volatility", "volatilityType"),
    _delta_neutral,
    skip("continuousUpdate", "referencePriceType"),
    ("trail_stop_price", _float),
    ("trailing_percent", _float),
    skip("scaleInitLevelSize", "scaleSubsLevelSize"),
    _scale,
    skip("scaleTable", "activeStartTime", "activeStopTime"),
    _hedge,
    skip("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld"),
    _delta_neutral_contract,
    _algo,
    skip("algoId"),
    ("what_if", _bool),
    skip("orderMiscOptions", "solicited", "randomizeSize", "randomizePrice"),
    _peg_bench,
    _conditions,
    skip(
        "adjustedOrderType",
        "triggerPrice",
        "lmtPriceOffset",
        "adjustedStopPrice",
        "adjustedStopLimitPrice",
        "adjustedTrailingAmount",
        "adjustableTrailingUnit",
        "extOperator",
        "softDollarTier.name",
        "softDollarTier.val",
    ),
    ("cash_qty", _float),
    skip(
        "mifid2DecisionMaker",
        "mifid2DecisionAlgo",
        "mifid2ExecutionTrader",
        "mifid2ExecutionAlgo",
        "dontUseAutoPriceForHedge",
        "isOmsContainer",
        "discretionaryUpToLimitPrice",
        "usePriceMgmtAlgo",
    ),
)


def read_steps(r: FieldReader, steps: Sequence[Step]) -> Values:
    """Run a layout's steps over the reader; the values read, by name."""
    values: Values = {}
    for step in steps:
        if isinstance(step, Skip):
            r.skip(len(step))
        elif isinstance(step, tuple):
            name, read = step
            values[name] = read(r)
        else:
            step(r, values)
    return values


def parse_place_order(fields: Sequence[str]) -> OrderRequest:
    """Decode placeOrder 3 at version 157 (§5.4); every field must be consumed."""
    r = FieldReader(fields, 1)
    values = read_steps(r, PLACE_ORDER)
    r.expect_end()
    for name in ("action", "order_type", "tif"):
        values[name] = values[name].upper()
    return OrderRequest(**values)
