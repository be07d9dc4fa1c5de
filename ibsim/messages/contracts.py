"""Contract messages: the contract block both ways, contractDetails, symbolSamples, marketRule,
and the reqContractDetails decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ibsim.catalog.instruments import ContractQuery, Instrument
from ibsim.framing import FieldReader
from ibsim.messages.ids import CONTRACT_DATA, CONTRACT_DATA_END, MARKET_RULE, SYMBOL_SAMPLES
from ibsim.messages.layout import Fields


@dataclass(frozen=True)
class ContractRequest:
    """A request about one contract: its request id and the contract block."""

    req_id: int
    contract: ContractQuery


def contract_head(inst: Instrument, exchange: str) -> Fields:
    """conId..tradingClass as openOrder/completedOrder/execDetails/position carry them (11 fields)."""
    return [
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        float(inst.strike),
        inst.right,
        inst.multiplier,
        exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,
    ]


def read_contract(r: FieldReader) -> ContractQuery:
    """The 12-field contract block [C12] of a client request."""
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


def read_request_head(fields: Sequence[str], start: int) -> tuple[FieldReader, int, ContractQuery]:
    """The request id and the contract block that open a request at field ``start``, and the
    reader past them."""
    r = FieldReader(fields, start)
    req_id = r.int()
    return r, req_id, read_contract(r)


def contract_details(req_id: int, inst: Instrument, exchange: str = "") -> Fields:
    """contractDetails 10: 39 fields at version 157 (no secIds)."""
    return [
        CONTRACT_DATA,
        8,
        int(req_id),
        inst.symbol,
        inst.sec_type,
        inst.packed_expiry,
        float(inst.strike) if inst.right else 0,
        inst.right,
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


def parse_contract_details_request(fields: Sequence[str]) -> tuple[int, ContractQuery]:
    """reqContractDetails 9: (reqId, contract)."""
    _, req_id, contract = read_request_head(fields, 2)
    return req_id, contract
