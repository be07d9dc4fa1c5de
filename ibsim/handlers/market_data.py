"""Market-data requests and the login's entitlement: reqMarketDataType, reqMktData (snapshot or
streaming, live or delayed; its answer held back by the latency profile's ``snapshot``) and
cancelMktData. A change of the entitlement ends the streams it no longer covers, with the error a
new request would get (as IB ends a stream with 10197 when a competing session takes the data).
Every request and cancel is counted in ``GET /state``'s ``stats``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ibsim.catalog.instruments import Instrument
from ibsim.engine.core import Engine
from ibsim.framing import FieldReader
from ibsim.handlers.contracts import one_contract
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.handlers.feeds import Feeds, market_lane
from ibsim.latency import Latency
from ibsim.messages import ids
from ibsim.messages.market_data import (
    MktDataRequest,
    market_data_type,
    parse_mkt_data_request,
    tick_snapshot_end,
)
from ibsim.session import Session

MARKET_DATA_MODES = ("live", "delayed", "none")


@dataclass
class Entitlement(RequestGroup):
    """What the login's market data subscriptions allow: ``live``; ``delayed`` (no live API
    subscription: a live request is refused with ``live_error``, 354 or 10089, a delayed one gets
    10167 and delayed ticks); ``none`` (354 live, 10168 delayed)."""

    mode: str = "live"
    live_error: int = 354

    def set(self, mode: str = "live", live_error: int = 354) -> dict[str, object]:
        """Change it (applies to later requests); the control API's answer."""
        if mode not in MARKET_DATA_MODES:
            raise ValueError(f"market data must be one of {', '.join(MARKET_DATA_MODES)}, got {mode!r}")
        if live_error not in (354, 10089):
            raise ValueError(f"the live-data error must be 354 or 10089, got {live_error!r}")
        self.mode, self.live_error = mode, live_error
        return {"marketData": mode, "liveError": live_error}

    def refusal(self, data_type: int, inst: Instrument) -> tuple[int, str] | None:
        """The error IB answers a request of ``data_type`` (1-4) for ``inst`` with, or None when the
        login's data covers it (a delayed request on a delayed login: data, with warning 10167)."""
        if self.mode == "live" or (self.mode == "delayed" and data_type in (3, 4)):
            return None
        if data_type in (3, 4):
            return 10168, "Requested market data is not subscribed. Delayed market data is not enabled."
        venue = f"{inst.symbol} {inst.primary_exchange or inst.exchange}/TOP/ALL"
        if self.mode == "delayed" and self.live_error == 10089:
            return 10089, ("Requested market data requires additional subscription for API. See link in 'Market "
                           f"Data Connections' dialog for more details.Delayed market data is available.{venue}")  # fmt: skip
        if self.mode == "delayed":
            return 354, f"Requested market data is not subscribed.Delayed market data is available.{venue}"
        return 354, "Requested market data is not subscribed."

    def end_uncovered(self, session: Session, instrument: Callable[[int], Instrument]) -> int:
        """End the session's streams the login's data no longer covers, each with its error (in the
        request's market-data lane, after any ticks still held); returns how many."""
        ended = 0
        for req_id, con_id in list(session.mkt.items()):
            refused = self.refusal(session.mkt_type.get(req_id, 1), instrument(con_id))
            if refused is None:
                continue
            session.mkt.pop(req_id, None)
            session.mkt_type.pop(req_id, None)
            session.error(req_id, *refused, lane=market_lane(req_id))
            ended += 1
        return ended


class MarketDataRequests(RequestGroup):
    """Market-data subscriptions of every client, within the login's entitlement."""

    def __init__(self, engine: Engine, feeds: Feeds, entitlement: Entitlement, latency: Latency) -> None:
        self.engine = engine
        self.feeds = feeds
        self.entitlement = entitlement
        self.latency = latency

    @answers(ids.REQ_MARKET_DATA_TYPE)
    def market_data_type(self, session: Session, fields: list[str]) -> None:
        """reqMarketDataType: kept per connection until the client changes it."""
        data_type = FieldReader(fields, 2).int()
        if data_type in (1, 2, 3, 4):
            session.market_data_type = data_type

    @answers(ids.REQ_MKT_DATA)
    def mkt_data(self, session: Session, fields: list[str]) -> None:
        """reqMktData: the data type, a full round of ticks, then a snapshot's end or the subscription
        (the whole answer in the request's market-data lane, held back by the latency profile)."""
        req = parse_mkt_data_request(fields)
        session.server.stats["mkt_data_snapshots" if req.snapshot or req.regulatory_snapshot else "mkt_data_streams"] += 1  # fmt: skip
        profile = self.latency.profile
        held = self.latency.log.note("snapshot", session.client_id, req.req_id, profile.snapshot)
        with session.holding(market_lane(req.req_id), profile.snapshot, held):
            self._answer(session, req, profile.snapshot_end)

    def _answer(self, session: Session, req: MktDataRequest, end_delay: float) -> None:
        inst = one_contract(self.engine.catalog, session, req)
        if inst is None:
            return
        data_type = self._data_type_for(session, req.req_id, inst)
        if data_type is None:
            return  # the error went out; IB sends no ticks and no snapshot end
        session.send(market_data_type(req.req_id, data_type))
        self.feeds.send_ticks(session, req.req_id, inst.con_id, full=True, data_type=data_type)
        if req.snapshot or req.regulatory_snapshot:
            session.send(tick_snapshot_end(req.req_id), end_delay)
        else:
            session.mkt[req.req_id] = inst.con_id
            session.mkt_type[req.req_id] = data_type

    @answers(ids.CANCEL_MKT_DATA)
    def cancel_mkt_data(self, session: Session, fields: list[str]) -> None:
        """cancelMktData."""
        req_id = FieldReader(fields, 2).int()
        session.server.stats["mkt_data_cancels"] += 1
        session.mkt.pop(req_id, None)
        session.mkt_type.pop(req_id, None)

    def _data_type_for(self, session: Session, req_id: int, inst: Instrument) -> int | None:
        """The data type IB would deliver for this request, or None after sending its error.

        With a live subscription IB sends live data whatever type was asked (frozen only applies
        when the market is closed; ibsim's never is). Without one, a live or frozen request is an
        error (354, or 10089 "delayed market data is available"); a delayed request gets warning
        10167 and the delayed data; an account without delayed data either gets 10168.
        """
        refused = self.entitlement.refusal(session.market_data_type, inst)
        if refused is None:
            if self.entitlement.mode == "delayed":
                session.error(
                    req_id, 10167, "Requested market data is not subscribed. Displaying delayed market data."
                )
            return 1 if self.entitlement.mode == "live" else session.market_data_type
        session.error(req_id, *refused)
        return None
