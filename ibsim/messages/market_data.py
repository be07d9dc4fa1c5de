"""Market-data messages: marketDataType, tickPrice, tickSize, tickSnapshotEnd, and the reqMktData
decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ibsim.messages.contracts import ContractRequest, read_request_head
from ibsim.messages.ids import MARKET_DATA_TYPE, TICK_PRICE, TICK_SIZE, TICK_SNAPSHOT_END
from ibsim.messages.layout import Fields


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


@dataclass(frozen=True)
class MktDataRequest(ContractRequest):
    """reqMktData 1."""

    generic_ticks: str
    snapshot: bool
    regulatory_snapshot: bool


def parse_mkt_data_request(fields: Sequence[str]) -> MktDataRequest:
    """reqMktData 1 (BAG legs are skipped)."""
    r, req_id, contract = read_request_head(fields, 2)
    if contract.sec_type.upper() == "BAG":
        r.skip(4 * r.int())
    if r.bool():  # deltaNeutralContract
        r.skip(3)
    generic = r.str()
    snapshot = r.bool()
    regulatory = r.bool()
    return MktDataRequest(req_id, contract, generic, snapshot, regulatory)
