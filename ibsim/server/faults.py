"""Fault injection (the control API's ``POST /fault``): one method per fault kind, in the table
:data:`FaultInjector.KINDS`. Connection-level faults act on the connections and the server's
conditions; the rest on the engine's faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ibsim.engine.core import Engine
from ibsim.engine.events import Event
from ibsim.handlers.feeds import Feeds
from ibsim.model import Json, Order
from ibsim.server.conditions import CONNECTIVITY_TEXT
from ibsim.server.connection_faults import ConnectionFaults
from ibsim.server.connections import Connections


class FaultInjector(ConnectionFaults):
    """Injects the faults of the control API into one server."""

    def __init__(
        self,
        engine: Engine,
        connections: Connections,
        apply: Callable[[Sequence[Event]], None],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        feeds: Feeds | None = None,
    ) -> None:
        self.engine = engine
        self.connections = connections
        #: the conditions the connections and the router read
        self.conditions = connections.conditions
        self.apply = apply
        self.spawn = spawn
        self.feeds = feeds  # the market-data farm (the ``farm`` fault stops its ticks)

    def inject(self, kind: str, **kw: Any) -> Json:
        """Inject one fault; the control API's answer (ValueError for an unknown kind)."""
        inject = self.KINDS.get(kind)
        if inject is None:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(self.KINDS)}")
        return inject(self, kw)

    def _drop(self, kw: Json) -> Json:
        """Close every client connection, or only ``clientId``'s (orders keep working)."""
        client_id = kw.get("clientId", kw.get("client_id"))
        return {"dropped": self.connections.drop(None if client_id is None else int(client_id))}

    def _refuse(self, kw: Json) -> Json:
        """Drop every connection and stop listening for ``seconds``."""
        seconds = float(kw.get("seconds", 5.0))
        dropped = self.connections.drop()
        self.conditions.refusing_until = time.monotonic() + seconds
        self.spawn(self.connections.refuse_for(seconds))
        return {"dropped": dropped, "refusingFor": seconds}

    def _fill_while_away(self, kw: Json) -> Json:
        """Drop the order's owner and refuse connections for ``seconds``; meanwhile fill the working
        order (``orderRef``, or ``clientId`` + ``orderId``) by ``quantity`` (all) at ``price`` (the
        market's): the owner hears of the fill only by asking for its executions on reconnect."""
        order = self._working_order(kw)
        seconds = float(kw.get("seconds", 2.0))
        dropped = self._refuse({"seconds": seconds})["dropped"]
        quantity, price = kw.get("quantity"), kw.get("price")
        self.apply(
            self.engine.manual_fill(
                order.client_id,
                order.order_id,
                None if quantity is None else float(quantity),
                None if price is None else float(price),
            )
        )
        done = self.engine.orders[(order.client_id, order.order_id)]
        return {"dropped": dropped, "refusingFor": seconds, "orderId": done.order_id,
                "clientId": done.client_id, "filled": done.filled, "status": done.status}  # fmt: skip

    def _working_order(self, kw: Json) -> Order:
        """The working order a fault names: ``orderRef``, or ``clientId`` + ``orderId`` (KeyError)."""
        ref = kw.get("orderRef")
        for order in self.engine.orders.values():
            if ref is not None and order.order_ref != ref:
                continue
            if ref is None and (order.client_id, order.order_id) != (
                int(kw.get("clientId", 0)),
                int(kw.get("orderId", -1)),
            ):
                continue
            if order.is_active and order.transmit:
                return order
        raise KeyError(f"no working order {ref or kw.get('orderId')!r}")

    def _connectivity(self, kw: Json) -> Json:
        """Error 1100 now, ``code`` (1101 or 1102) after ``seconds``; no fills meanwhile."""
        code = int(kw.get("code", 1102))
        if code not in (1101, 1102):
            raise ValueError("connectivity code must be 1101 or 1102")
        seconds = float(kw.get("seconds", kw.get("after", 1.0)))
        self.spawn(self._outage(code, seconds))
        return {"code": code, "seconds": seconds}

    async def _outage(self, code: int, seconds: float) -> None:
        self.conditions.outage = True
        self.connections.broadcast(1100, CONNECTIVITY_TEXT[1100])
        was_paused = self.engine.fills_paused
        self.engine.pause_fills()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._restored(code, was_paused)  # the reset window's end, the same (connection_faults.py)

    def _delay(self, kw: Json) -> Json:
        """Hold order messages back ``ms`` (0 clears)."""
        self.conditions.latency.orders = _seconds(kw)
        return {"delayMs": self.conditions.latency.orders * 1000.0}

    def _position_delay(self, kw: Json) -> Json:
        """Hold position reports back ``ms`` more than the fill: a client deciding on its position
        right after its own fill sees the old one unless it waits for the report."""
        self.conditions.latency.positions = _seconds(kw)
        return {"positionDelayMs": self.conditions.latency.positions * 1000.0}

    def _reject_next(self, kw: Json) -> Json:
        """Refuse the next ``count`` orders with ``code`` and ``reason``."""
        count = int(kw.get("count", 1))
        code = int(kw.get("code", 201))
        reason = str(kw.get("reason", "Simulated rejection"))
        return {"pending": self.engine.faults.queue_rejections(code, reason, count)}

    def _broken_what_if(self, kw: Json) -> Json:
        """Answer the next ``count`` what-ifs with a ``warningText`` and their margin figures
        ``figures``: ``unset`` (IB's 1.7976931348623157E308) or ``infinite`` (erdewit/ib_insync#380)."""
        count = int(kw.get("count", 1))
        figures = str(kw.get("figures", "unset"))
        warning = str(
            kw.get("warningText", kw.get("warning", "Margin impact is not available for this order"))
        )
        return {
            "pending": self.engine.faults.queue_broken_what_ifs(figures, warning, count),
            "figures": figures,
        }

    def _cancel_working(self, kw: Json) -> Json:
        """IB cancels working orders by itself (a purge, a risk system): every working order whose
        orderRef starts with ``prefix`` (all), of ``clientId`` (any), at most ``count`` (all), each
        with orderStatus Cancelled and error 202 ``reason``; a parent takes its children with it."""
        prefix = str(kw.get("prefix", ""))
        client_id = kw.get("clientId")
        count = kw.get("count")
        reason = str(kw.get("reason", "Cancelled by IB"))
        chosen = [
            o for o in self.engine.orders.values()
            if o.is_active and o.transmit and o.order_ref.startswith(prefix)
            and (client_id is None or o.client_id == int(client_id))
        ]  # fmt: skip
        cancelled = 0
        for order in chosen[: None if count is None else int(count)]:
            if order.is_active:  # not gone with a parent cancelled before it
                self.apply(self.engine._cancel(order, reason))
                cancelled += 1
        return {"cancelled": cancelled, "reason": reason}

    def _pacing(self, kw: Json) -> Json:
        """A pacing storm: IB answers error 100 ("Max rate of messages per second has been
        exceeded") to the next ``count`` order messages (placeOrder, cancelOrder; not what-ifs), or
        to every one for ``seconds``, of ``clientId`` (every client's), and drops them: no order
        is created, cancelled or modified. ``count`` 0 and ``seconds`` 0 end it."""
        count = int(kw.get("count", 0 if "seconds" in kw else 1))
        seconds = float(kw.get("seconds", 0.0))
        if count < 0 or not seconds >= 0:
            raise ValueError("count and seconds must be 0 or more")
        client_id = kw.get("clientId", kw.get("client_id"))
        self.conditions.paced_count = count
        self.conditions.paced_until = time.monotonic() + seconds if seconds else 0.0
        self.conditions.paced_client = None if client_id is None else int(client_id)
        return {"count": count, "seconds": seconds, "clientId": self.conditions.paced_client}

    def _drop_mid_bracket(self, kw: Json) -> Json:
        """The next ``count`` staged orders (transmit=False, a bracket's first legs) each close
        their client's connection as soon as IB has read them: the legs sent after, already on the
        wire, are lost with the connection; then connections are refused for ``refuseSeconds`` (0).
        ``count`` 0 ends it."""
        count = int(kw.get("count", 1))
        refuse = float(kw.get("refuseSeconds", 0.0))
        if count < 0 or not refuse >= 0:
            raise ValueError("count and refuseSeconds must be 0 or more")
        self.conditions.drop_after_staged, self.conditions.refuse_after_staged = count, refuse
        return {"count": count, "refuseSeconds": refuse}

    def _pause_fills(self, kw: Json) -> Json:
        self.engine.pause_fills()
        return {"fillsPaused": True}

    def _resume_fills(self, kw: Json) -> Json:
        self.apply(self.engine.resume_fills())
        return {"fillsPaused": False}

    def _clear(self, kw: Json) -> Json:
        """No latency, no pending rejections, the refusal and the pacing storm over, fills resumed."""
        self.conditions.latency.orders = 0.0
        self.conditions.latency.positions = 0.0
        self.engine.reject_queue.clear()
        self.engine.faults.broken_what_ifs.clear()
        self.conditions.refusing_until = 0.0
        self.connections.end_refusal()
        self.conditions.held_sessions.clear()
        self.conditions.unanswered.clear()
        self.conditions.paced_count, self.conditions.paced_until = 0, 0.0
        self.conditions.drop_after_staged = 0
        self.apply(self.engine.resume_fills())
        return {"cleared": True}

    #: fault kind -> its method, in the order the error for an unknown kind lists them
    KINDS: dict[str, Callable[[FaultInjector, Json], Json]] = {
        "drop": _drop,
        "refuse": _refuse,
        "fill_while_away": _fill_while_away,
        "connectivity": _connectivity,
        "delay": _delay,
        "position_delay": _position_delay,
        "reject_next": _reject_next,
        "cancel_working": _cancel_working,
        "broken_what_if": _broken_what_if,
        "pacing": _pacing,
        "drop_mid_bracket": _drop_mid_bracket,
        "pause_fills": _pause_fills,
        "resume_fills": _resume_fills,
        "clear": _clear,
    }
    # IB's everyday connection failures (ibsim/server/connection_faults.py)
    KINDS.update(ConnectionFaults.CONNECTION_KINDS)


def _seconds(kw: Json) -> float:
    return max(0.0, float(kw.get("ms", 0.0)) / 1000.0)
