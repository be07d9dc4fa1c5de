"""IB's error 100 on our order messages: caught before ib_async reads it as a cancel, and the
message sent again, later and slower (the rules: worker/decision/pacing.py).

IB answers 100 ("Max rate of messages per second has been exceeded") when a client sends more
than its budget, and drops the message. ib_async marks the order Cancelled on any error, which
is wrong twice over: a refused new order was never at IB (so an alert would sit ``submitted``
with nothing working), and a refused cancel leaves the order working at IB (so the worker would
believe an exit gone that still works, and place a second one: invariant 7). So 100 on one of
our orders is caught here, the pacer slows down (:meth:`Pacer.refused`) and:

* **a placement** (an alert's legs, which the Placer registers as a :class:`Batch` for
  :data:`WATCH_SECONDS`): once IB answered the batch's last leg, the legs IB refused, and those IB
  refused because of them (a bracket child whose parent was dropped gets 201 "Parent order is not
  active"), are placed again by the Placer's idempotent step: IB's view of the orderRefs first,
  staged legs IB holds under their own ids, the rest under new ids (IB takes no id at or below the
  highest it has seen), a child of a bracket IB already transmitted alone under its parent. At
  most ``MAX_RESENDS`` times; then the refused legs end Cancelled with error 100 and the alert
  ``rejected``, reason ``IB pacing: ...`` (the recorder), and the staged legs IB holds are
  cancelled. Never a second order for a leg: each re-send asks IB's view of its ref first.
* **a cancel or modification of an order IB holds** (status beyond PendingSubmit): the same
  message is sent again for the same order id, up to ``MAX_LIVE_RESENDS`` times, while the order
  still works and the connection is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.ids import order_ref as make_order_ref
from worker.decision.model import Leg
from worker.decision.pacing import MAX_RESENDS, give_up_text, gives_up, resend_delay
from worker.ib.pacing import wait_drained

if TYPE_CHECKING:
    from worker.ib.connection import IBConnection

#: the Placer's idempotent step: (alert id, contract, legs, OCA type) -> (trades sent, their snapshots)
SendStep = Callable[[str, Any, list[Leg], int], tuple[list[Any], list[Any]]]

log = logging.getLogger(__name__)

PACING = 100
WATCH_SECONDS = 30.0  # a placement's answers (100 included) come within this
ANSWER_TIMEOUT = 5.0  # waiting for IB's answer to a placement's last leg


@dataclass
class Batch:
    """One placement of an alert's legs, watched for error 100."""

    alert_id: str
    contract: Any
    legs: list[Leg]
    oca_type: int
    record: Callable[[list[Any], list[Any]], Any]
    trades: list[Any]  # the trades of the last send
    refused: dict[int, str] = field(default_factory=dict)  # order id -> IB's 100 text
    followed: dict[int, str] = field(default_factory=dict)  # order id -> an error caused by a 100
    resends: int = 0
    task: asyncio.Future[None] | None = None
    held: set[int] = field(default_factory=set)  # staged legs IB holds (re-sent as a modification)

    def __post_init__(self) -> None:
        self.sent(self.trades)

    def sent(self, trades: list[Any]) -> None:
        """The trades of a (re-)send, taken right after it: a modification of a staged leg is an
        order IB holds even when it refuses the message."""
        self.trades = trades
        self.held = {t.order.orderId for t in trades if t.log and t.log[-1].message == "Modify"}


class PacedOrders:
    """Catches IB's error 100 on this connection's orders and sends the message again."""

    def __init__(self, conn: IBConnection, send: SendStep, known: Callable[[list[str]], set[str]]) -> None:
        self.conn = conn
        self.send = send  # the Placer's step: IB's view of the refs first, then what is missing
        self.known = known
        self.ib = conn.ib
        self.by_id: dict[int, Batch] = {}
        self._watched: deque[tuple[float, list[int]]] = deque()
        self._live: dict[int, int] = {}  # order id -> re-sends of a cancel / modification
        wrapper = self.ib.wrapper
        self._original = wrapper.error
        wrapper.error = self._error

    def watch(self, batch: Batch) -> None:
        """Watch a placement's legs for error 100 (called right after they were sent)."""
        now = time.monotonic()
        while self._watched and now - self._watched[0][0] > WATCH_SECONDS:
            for order_id in self._watched.popleft()[1]:
                old = self.by_id.get(order_id)
                if old is not None and (old.task is None or old.task.done()):
                    del self.by_id[order_id]
        ids = [t.order.orderId for t in batch.trades]
        for order_id in ids:
            self.by_id[order_id] = batch
        self._watched.append((now, ids))

    # ------------------------------------------------------------------ IB's errors

    def _error(self, req_id: int, code: int, text: str, advanced: str = "", *args: Any) -> None:
        try:
            caught = self._caught(req_id, code, text)
        except Exception:  # noqa: BLE001 - ib_async's own handling must still run
            log.exception("pacing: error %s on %s not handled", code, req_id)
            caught = False
        if not caught:
            self._original(req_id, code, text, advanced, *args)

    def _caught(self, req_id: int, code: int, text: str) -> bool:
        """Whether the error is ours to handle (ib_async must not cancel the order)."""
        if code == PACING:
            self.conn.pacing_violations += 1
            self.conn.pacer.refused()
            log.error("IB refused a message for pacing (%s): %s", req_id, text)
        if req_id is None or req_id <= 0:
            return False
        trade = self.ib.wrapper.trades.get((self.ib.wrapper.clientId, req_id))
        if trade is None:
            return False
        batch = self.by_id.get(req_id)
        # IB reported the order (beyond PendingSubmit): the refused message was a cancel / modify
        held_at_ib = trade.orderStatus.status not in ("PendingSubmit", "ApiPending")
        if code == PACING and held_at_ib:
            self._resend_live(trade, text)
            return True
        if code == PACING and batch is None:
            return False  # a new order not placed by the Placer: ib_async cancels it, the guard re-places
        if batch is None:
            return False
        if code == PACING:
            batch.refused[req_id] = text
            if batch.task is None or batch.task.done():
                batch.task = asyncio.ensure_future(self._place_again(batch))
            return True
        if batch.refused and req_id not in batch.refused:
            # IB refused this leg because of a leg it dropped (a child without its parent)
            log.info("alert %s: order %s refused after a pacing refusal (%s %s): placed again",
                     batch.alert_id, req_id, code, text)  # fmt: skip
            batch.followed[req_id] = f"{code} {text}"
            return True
        return False

    # ------------------------------------------------------------------ a placement again

    async def _place_again(self, batch: Batch) -> None:
        try:
            while await self._answered(batch) and batch.refused:
                text = next(iter(batch.refused.values()))
                if gives_up(batch.resends, live=False):
                    await self._give_up(batch, text)
                    return
                batch.resends += 1
                log.warning("alert %s: IB refused %d order message(s) for pacing; sending again in %gs (%d/%s)",
                            batch.alert_id, len(batch.refused), resend_delay(batch.resends), batch.resends,
                            MAX_RESENDS)  # fmt: skip
                await asyncio.sleep(resend_delay(batch.resends))
                if not self.ib.isConnected():
                    log.warning(
                        "alert %s: disconnected before the re-send; the reconnect re-reads IB", batch.alert_id
                    )
                    return
                if not await self._send_again(batch):
                    return
        except Exception:  # noqa: BLE001 - a background task must log, never vanish silently
            log.exception("alert %s: placing again after a pacing refusal failed", batch.alert_id)

    async def _answered(self, batch: Batch) -> bool:
        """Wait until IB answered the batch's last leg (every earlier answer came before it)."""
        last = batch.trades[-1]
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            order_id = last.order.orderId
            if order_id in batch.refused or order_id in batch.followed:
                return True
            if last.orderStatus.status not in ("PendingSubmit", "ApiPending") or last.isDone():
                return True
            await asyncio.sleep(0.01)
        return True  # no answer: go by what came

    def _forget_refused(self, batch: Batch) -> None:
        """The trades IB dropped or refused are not at IB: forget them, so that the refs are free."""
        wrapper = self.ib.wrapper
        for trade in batch.trades:
            order_id = trade.order.orderId
            if (order_id in batch.refused or order_id in batch.followed) and order_id not in batch.held:
                wrapper.trades.pop((wrapper.clientId, order_id), None)
                self.by_id.pop(order_id, None)
        self.conn.trade_index.dropped()  # it files ib_async's trades as they come: not their removal
        batch.refused.clear()
        batch.followed.clear()

    async def _send_again(self, batch: Batch) -> bool:
        """One re-send of what IB does not hold; False when nothing was left to send."""
        await self.conn.pacer.acquire(len(batch.legs))
        if not self.ib.isConnected():
            return False
        self._forget_refused(batch)
        legs = self._legs_to_send(batch)
        sent, placed = self.send(batch.alert_id, batch.contract, legs, batch.oca_type)
        if not sent:
            log.info("alert %s: IB holds every leg now; nothing sent again", batch.alert_id)
            return False
        batch.sent(sent)
        self.watch(batch)
        ids = ", ".join(f"{t.order.orderRef} #{t.order.orderId}" for t in sent)
        log.info("alert %s: sent again after a pacing refusal: %s", batch.alert_id, ids)
        if await wait_drained(self.ib.client):
            batch.record(placed, [])
        return True

    def _legs_to_send(self, batch: Batch) -> list[Leg]:
        """The legs still to send: all (the Placer's step adopts or reuses what IB holds), or, when
        IB already transmitted the bracket (it holds the last leg), the children it refused, each
        sent alone and transmitting under its working parent."""
        refs = [make_order_ref(batch.alert_id, leg.leg) for leg in batch.legs]
        known = self.known(refs)
        if refs[-1] not in known:
            return batch.legs
        return [replace(leg, transmit=True) for leg, ref in zip(batch.legs, refs, strict=True)
                if ref not in known and leg.parent_leg]  # fmt: skip

    async def _give_up(self, batch: Batch, text: str) -> None:
        """Refused every time: the refused legs end Cancelled with error 100 (the recorder ends the
        alert ``IB pacing: ...``); staged legs IB holds are cancelled (they can never transmit)."""
        reason = give_up_text(text, batch.resends)
        log.error(
            "alert %s: IB refused its orders for pacing %d times; giving up",
            batch.alert_id,
            batch.resends + 1,
        )
        for trade in batch.trades:
            order_id = trade.order.orderId
            self.by_id.pop(order_id, None)
            if (order_id in batch.refused or order_id in batch.followed) and order_id not in batch.held:
                self._original(order_id, PACING, reason, "")
            elif trade.orderStatus.status == "PendingSubmit" and not trade.order.transmit:
                await self.conn.pacer.acquire(1)
                self.ib.cancelOrder(trade.order)
        batch.refused.clear()
        batch.followed.clear()

    # ------------------------------------------------------------------ a cancel / modification again

    def _resend_live(self, trade: Any, text: str) -> None:
        order_id = trade.order.orderId
        done = self._live.get(order_id, 0)
        if gives_up(done, live=True):
            log.error("order %s: IB refused its cancel / modification for pacing %d times; it keeps "
                      "working at IB as IB last reported it", order_id, done + 1)  # fmt: skip
            self._live.pop(order_id, None)
            return
        self._live[order_id] = done + 1
        asyncio.ensure_future(self._resend_live_later(trade, done + 1))

    async def _resend_live_later(self, trade: Any, attempt: int) -> None:
        await asyncio.sleep(resend_delay(attempt))
        order_id = trade.order.orderId
        if trade.isDone() or not self.ib.isConnected():
            self._live.pop(order_id, None)
            return
        await self.conn.pacer.acquire(1)
        if trade.orderStatus.status == "PendingCancel":
            log.info("order %s: cancel sent again after a pacing refusal", order_id)
            self.ib.client.cancelOrder(order_id, "")
        else:
            log.info("order %s: modification sent again after a pacing refusal", order_id)
            self.ib.client.placeOrder(order_id, trade.contract, trade.order)
