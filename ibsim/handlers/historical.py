"""Historical-data requests: reqHistoricalData (synthetic bars, :mod:`ibsim.history`) and
reqHeadTimeStamp."""

from __future__ import annotations

import datetime as dt

from ibsim.engine.core import Engine
from ibsim.framing import FieldReader
from ibsim.handlers.contracts import one_contract
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.history import duration_seconds, parse_end, synthetic_bars
from ibsim.messages import ids
from ibsim.messages.historical import head_timestamp, historical_data, parse_historical_request
from ibsim.session import Session

_STAMP = "%Y%m%d %H:%M:%S"


class HistoricalRequests(RequestGroup):
    """Bars and the head timestamp, from the engine's current prices and clock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @answers(ids.REQ_HISTORICAL_DATA)
    def historical_data(self, session: Session, fields: list[str]) -> None:
        """Bars ending at the request's end (now by default) whose last close is the current price."""
        req = parse_historical_request(fields)
        inst = one_contract(self.engine.catalog, session, req)
        if inst is None:
            return
        end = parse_end(req.end, self.engine.clock())
        try:
            bars = synthetic_bars(
                inst, self.engine.market.price(inst.con_id), req.bar_size, req.duration, end
            )
        except ValueError as exc:
            session.error(req.req_id, 162, f"Historical Market Data Service error message:{exc}")
            return
        start = dt.datetime.fromtimestamp(end - duration_seconds(req.duration), dt.UTC).strftime(_STAMP)
        session.send(
            historical_data(req.req_id, start, dt.datetime.fromtimestamp(end, dt.UTC).strftime(_STAMP), bars)
        )

    @answers(ids.REQ_HEAD_TIMESTAMP)
    def head_timestamp(self, session: Session, fields: list[str]) -> None:
        """One year back: synthetic history has no beginning."""
        req_id = FieldReader(fields, 1).int()
        session.send(head_timestamp(req_id, str(int(self.engine.clock()) - 365 * 86400)))
