"""IB's everyday connection failures as faults of the control API (``POST /fault``), a base of
:class:`~ibsim.server.faults.FaultInjector`:

* ``reset_window``: the nightly reset / an IBC restart. Every connection drops, reconnects are
  refused for ``refuseSeconds``, then a reconnect meets 1100 until ``outageSeconds`` later 1101 or
  1102 (``code``) says IB's servers are back. No fills during the whole window.
* ``hold_session``: IB has not freed the old session yet. ``clientId``'s connection (every one
  without it) drops and a new startApi with that id gets 326 for ``seconds``.
* ``competing_session``: another login (TWS, the mobile app) took the session. 1100 to every
  client, each open market-data stream ended with 10197 "No market data during competing live
  session", no fills, until ``seconds`` later 1101 or 1102 (``code``, default 1101) says it is back.
* ``stall_sync``: a connect whose positions (``what: positions``) or open orders (``openOrders``)
  answer never comes (ib_async issue #84): those requests go unanswered for ``seconds``; with
  ``drop`` (default true) every connection drops first, so the client's reconnect meets it.
* ``farm``: a data farm breaks (2103 market data, 2105 HMDS, 2157 sec-def: ``farm`` is ``market``,
  ``hmds`` or ``secdef``) and ``seconds`` later is OK again (2104 / 2106 / 2158). While the market
  data farm is broken no ticks flow. Orders are untouched: it concerns data only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ibsim.engine.core import Engine
from ibsim.engine.events import Event
from ibsim.handlers.feeds import Feeds
from ibsim.messages import ids
from ibsim.model import Json
from ibsim.server.conditions import CONNECTIVITY_TEXT, Conditions
from ibsim.server.connections import Connections

COMPETING_SESSION_CODE = 10197
COMPETING_SESSION_TEXT = "No market data during competing live session"
#: farm -> (broken code and text, OK code and text), as IB words them
FARMS: dict[str, tuple[tuple[int, str], tuple[int, str]]] = {
    "market": ((2103, "Market data farm connection is broken:usfarm"),
               (2104, "Market data farm connection is OK:usfarm")),
    "hmds": ((2105, "HMDS data farm connection is broken:ushmds"),
             (2106, "HMDS data farm connection is OK:ushmds")),
    "secdef": ((2157, "Sec-def data farm connection is broken:secdefnj"),
               (2158, "Sec-def data farm connection is OK:secdefnj")),
}  # fmt: skip
#: what ``stall_sync`` leaves unanswered
STALLS = {"positions": (ids.REQ_POSITIONS,), "openOrders": (ids.REQ_OPEN_ORDERS, ids.REQ_ALL_OPEN_ORDERS)}


def _restore_code(kw: Json, default: int) -> int:
    code = int(kw.get("code", default))
    if code not in (1101, 1102):
        raise ValueError("the restoring code must be 1101 or 1102")
    return code


def _positive(kw: Json, name: str, default: float) -> float:
    value = float(kw.get(name, default))
    if not value >= 0:
        raise ValueError(f"{name} must be 0 or more")
    return value


class ConnectionFaults:
    """The connection-level faults above (see module docstring); the injector supplies the parts."""

    engine: Engine
    connections: Connections
    conditions: Conditions
    apply: Callable[[Sequence[Event]], None]
    spawn: Callable[[Coroutine[Any, Any, None]], object]
    feeds: Feeds | None

    def _reset_window(self, kw: Json) -> Json:
        """Drop every connection, refuse for ``refuseSeconds``, then 1100 until 1101/1102."""
        code = _restore_code(kw, 1101)
        refuse = _positive(kw, "refuseSeconds", 5.0)
        outage = _positive(kw, "outageSeconds", 2.0)
        self.conditions.outage = True  # a reconnect meets 1100 at startApi
        dropped = self.connections.drop()
        self.conditions.refusing_until = time.monotonic() + refuse
        self.spawn(self._play_reset(code, refuse, outage))
        return {"dropped": dropped, "refuseSeconds": refuse, "outageSeconds": outage, "code": code}

    async def _play_reset(self, code: int, refuse: float, outage: float) -> None:
        was_paused = self.engine.fills_paused
        self.engine.pause_fills()
        try:
            await self.connections.refuse_for(refuse)
            await asyncio.sleep(outage)
        finally:
            self._restored(code, was_paused)

    def _restored(self, code: int, was_paused: bool) -> None:
        """IB's servers are back: 1101 (streams gone) or 1102, fills resume."""
        self.conditions.outage = False
        if code == 1101:
            for session in self.connections.sessions:
                session.mkt.clear()
        self.connections.broadcast(code, CONNECTIVITY_TEXT[code])
        if not was_paused:
            self.apply(self.engine.resume_fills())

    def _hold_session(self, kw: Json) -> Json:
        """Drop ``clientId``'s connection (every one) and answer its reconnects 326 for ``seconds``."""
        seconds = _positive(kw, "seconds", 5.0)
        raw = kw.get("clientId", kw.get("client_id"))
        ids_held = [int(raw)] if raw is not None else sorted(self.connections.by_client)
        until = time.monotonic() + seconds
        for client_id in ids_held:
            self.conditions.held_sessions[client_id] = until
        dropped = sum(self.connections.drop(client_id) for client_id in ids_held)
        return {"dropped": dropped, "held": ids_held, "seconds": seconds}

    def _competing_session(self, kw: Json) -> Json:
        """1100 and 10197 on every open stream; ``seconds`` later 1101 (or ``code``)."""
        code = _restore_code(kw, 1101)
        seconds = _positive(kw, "seconds", 5.0)
        self.conditions.outage = True
        self.connections.broadcast(1100, str(kw.get("text") or CONNECTIVITY_TEXT[1100]))
        ended = 0
        for session in list(self.connections.sessions):
            for req_id in list(session.mkt):
                session.mkt.pop(req_id, None)
                session.mkt_type.pop(req_id, None)
                session.error(req_id, COMPETING_SESSION_CODE, COMPETING_SESSION_TEXT)
                ended += 1
        self.spawn(self._play_competing(code, seconds))
        return {"code": code, "seconds": seconds, "streamsEnded": ended}

    async def _play_competing(self, code: int, seconds: float) -> None:
        was_paused = self.engine.fills_paused
        self.engine.pause_fills()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._restored(code, was_paused)

    def _stall_sync(self, kw: Json) -> Json:
        """Leave the positions (or open-orders) requests unanswered for ``seconds``."""
        what = str(kw.get("what", "positions"))
        if what not in STALLS:
            raise ValueError(f"what must be one of {', '.join(STALLS)}")
        seconds = _positive(kw, "seconds", 10.0)
        until = time.monotonic() + seconds
        for msg_id in STALLS[what]:
            self.conditions.unanswered[msg_id] = until
        dropped = self.connections.drop() if kw.get("drop", True) else 0
        return {"what": what, "seconds": seconds, "dropped": dropped}

    def _farm(self, kw: Json) -> Json:
        """A data farm broken now and OK ``seconds`` later (data only: no connection drops)."""
        farm = str(kw.get("farm", "market"))
        if farm not in FARMS:
            raise ValueError(f"farm must be one of {', '.join(FARMS)}")
        seconds = _positive(kw, "seconds", 3.0)
        (broken, broken_text), _ok = FARMS[farm]
        if farm == "market" and self.feeds is not None:
            self.feeds.farm_broken = True
        self.connections.broadcast(broken, broken_text)
        self.spawn(self._farm_back(farm, seconds))
        return {"farm": farm, "code": broken, "seconds": seconds}

    async def _farm_back(self, farm: str, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            if farm == "market" and self.feeds is not None:
                self.feeds.farm_broken = False
            self.connections.broadcast(*FARMS[farm][1])

    #: fault kind -> its method (merged into :data:`FaultInjector.KINDS`)
    CONNECTION_KINDS: dict[str, Callable[[Any, Json], Json]] = {
        "reset_window": _reset_window,
        "hold_session": _hold_session,
        "competing_session": _competing_session,
        "stall_sync": _stall_sync,
        "farm": _farm,
    }
