"""Historical-data messages: historicalData, headTimestamp, and the reqHistoricalData decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ibsim.messages.contracts import ContractRequest, read_request_head
from ibsim.messages.ids import HEAD_TIMESTAMP, HISTORICAL_DATA
from ibsim.messages.layout import Fields
from ibsim.model import Bar


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
class HistoricalRequest(ContractRequest):
    """reqHistoricalData 20."""

    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


def parse_historical_request(fields: Sequence[str]) -> HistoricalRequest:
    """reqHistoricalData 20 at version 157 (no version field)."""
    r, req_id, contract = read_request_head(fields, 1)
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
