"""The execution protocol (close → confirm → open, restore, reprice) and the protective-order guard,
on a fake Trading (tests/worker/fake_trading.py): no simulated broker, no database. The decisions
are the pure core's (worker/decision/core.py) on the fake's state; the end-to-end tests cover the
same paths against the simulator."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fake_trading import FakeTrading
from worker_helpers import AAPL

from core.models import AlertStatus
from core.payload import AlertPayload
from worker.decision.core import DecisionConfig, propose, with_margin
from worker.decision.look import Look
from worker.decision.margin import WhatIf, judge
from worker.decision.model import Leg
from worker.decision.quote import Quote
from worker.decision.stored import StoredDecision
from worker.execution.guard import Guard, GuardSettings
from worker.execution.protocol import ExecutionProtocol, Run
from worker.recording.protection import ProtectionRegistry, ProtectionSpec

D = Decimal
CON_ID = AAPL.con_id


class FakeRecorder:
    """The recorder's interface the guard writes through: events and audit lines, kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.notes: list[tuple[str, str]] = []

    def run(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(SimpleNamespace(emit=self.events.append, session=None), *args))
        return future

    def note(self, uow: Any, alert_id: str, message: str) -> None:
        self.notes.append((alert_id, message))


def _bracket(fake: FakeTrading, alert_id: str = "OPEN", qty: int = 10) -> None:
    """An earlier alert's bracket, filled: long ``qty`` with its take-profit and stop-loss working."""
    legs = [
        Leg("entry", "BUY", "MKT", D(qty), transmit=False),
        Leg("tp", "SELL", "LMT", D(qty), limit_price=D(195), tif="GTC", transmit=False, parent_leg="entry"),
        Leg("sl", "SELL", "STP", D(qty), stop_price=D(187), tif="GTC", parent_leg="entry"),
    ]
    asyncio.run(fake.place_legs(alert_id, CON_ID, legs, 2, lambda leg: None, lambda placed, adopted: None))
    fake.calls.clear()


def _decide(fake: FakeTrading, doc: dict[str, Any], *, config: DecisionConfig | None = None,
            protection: ProtectionSpec | None = None, alert_id: str = "A1") -> Any:  # fmt: skip
    """The core's proposal for ``doc`` against the fake's position, exits and price."""
    position = fake.position_of(CON_ID)
    if protection is None and position:
        protection = ProtectionSpec(
            "DU1", CON_ID, "OPEN", 1 if position > 0 else -1, fake.exit_prices(CON_ID), "AAPL"
        )
    look = Look(alert_id, AAPL, position, "DU1", Quote(fake.price, "IB last price", "live", "live"), protection,
                fake.account_figures())  # fmt: skip
    payload = AlertPayload.from_json({"ticker": "AAPL", **doc})
    return propose(look, payload, config or DecisionConfig())


def _run(fake: FakeTrading, stored: StoredDecision, *, guard: Guard | None = None, timeout: float = 1.0,
         reprice: bool = False, alert_id: str = "A1") -> Any:  # fmt: skip
    protocol = ExecutionProtocol(fake, guard, reversal_fill_timeout=timeout)
    return asyncio.run(protocol.run(Run(alert_id, stored, reprice, submitted=False), CON_ID))


def test_a_reversal_closes_before_it_opens_and_the_exits_follow():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    proposal = _decide(fake, {"action": "sell", "quantity": 20, "price": 190,
                              "takeProfit": {"percent": 2}, "stopLoss": {"percent": 1}})  # fmt: skip
    assert proposal.decision.kind == "reverse"
    outcome = _run(fake, proposal.stored())
    assert fake.calls == [
        "cancel tp", "cancel sl",  # the exits fit what the close leaves (flat) before it goes
        "placed close SELL 10 MKT", "filled close 10",  # the close is confirmed filled...
        "placed entry SELL 10 MKT", "placed tp BUY 10 LMT", "placed sl BUY 10 STP", "filled entry 10",  # ...then the open
    ]  # fmt: skip
    assert outcome.ended is None and fake.position_of(CON_ID) == D(-10)
    assert sorted(fake.exits().values()) == [("sl", D(10), D("191.90")), ("tp", D(10), D("186.20"))]


def test_a_close_that_does_not_fill_opens_nothing_and_puts_the_exits_back():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    fake.fill_market = False  # IB takes the close but does not fill it
    proposal = _decide(fake, {"action": "sell", "quantity": 20, "price": 190})
    outcome = _run(fake, proposal.stored(), timeout=0.05)
    assert fake.calls[:3] == ["cancel tp", "cancel sl", "placed close SELL 10 MKT"]
    assert "cancel close" in fake.calls and not any(c.startswith("placed entry") for c in fake.calls)
    status, reason = outcome.ended
    assert status is AlertStatus.REJECTED
    assert reason == ("the close order did not fill completely within 0.05s (0/10 filled; the rest cancelled); "
                      "not reversed; position left long 10; its exits were put back: sl SELL 10, tp SELL 10")  # fmt: skip
    assert fake.position_of(CON_ID) == D(10)
    assert sorted(fake.exits().values()) == [("sl", D(10), D(187)), ("tp", D(10), D(195))]
    move = outcome.decision.position  # stored with the alert: the old protection is the one after
    assert move.outcome == reason and move.protection_after == move.protection_before


def test_a_close_ib_refuses_says_ibs_reason():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    fake.refuse = {"close"}
    outcome = _run(fake, _decide(fake, {"action": "sell", "quantity": 20, "price": 190}).stored())
    assert outcome.ended[1].startswith(
        "IB refused the close order: 201 Order rejected - reason:refused by the test;"
    )
    assert fake.position_of(CON_ID) == D(10) and len(fake.exits()) == 2


def test_a_refused_open_of_a_reversal_keeps_the_close():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    proposal = _decide(
        fake, {"action": "sell", "quantity": 20, "price": 190}, config=DecisionConfig(margin_check=True)
    )
    assert proposal.margin_ask is not None and proposal.margin_ask.order.quantity == D(20)  # the whole move
    answer = WhatIf(init_margin_change=D(5_000_000))
    proposal = with_margin(proposal, judge(answer, fake.account_figures(), proposal.margin_ask.described))
    stored = proposal.stored()
    assert [leg.leg for leg in stored.legs] == ["close"] and stored.position.kind == "close"
    outcome = _run(fake, stored)
    assert outcome.ended == (AlertStatus.REJECTED, (
        "margin: needs 5,000,000 USD initial, available 1,000,000 USD (IB what-if initMarginChange for "
        "SELL 20 AAPL MKT against AvailableFunds); the close went through: the position is flat, not reversed"))  # fmt: skip
    assert fake.position_of(CON_ID) == 0 and fake.exits() == {}
    assert not any(c.startswith("placed entry") for c in fake.calls)


def test_an_add_reprices_the_exits_now_and_leaves_their_size_to_the_guard():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    proposal = _decide(fake, {"action": "add", "quantity": 5, "price": 190,
                              "takeProfit": {"limitPrice": 200}, "stopLoss": {"stopPrice": 185}})  # fmt: skip
    stored = proposal.stored()
    assert [(leg.leg, leg.quantity, leg.transmit) for leg in stored.legs] == [("entry", D(5), True)]
    assert dict(stored.position.protection_after.prices) == {"tp": D(200), "sl": D(185)}
    outcome = _run(fake, stored)
    assert fake.calls == [
        "placed entry BUY 5 MKT",
        "filled entry 5",
        "modify sl 10 @ 185.00",  # the stop first: a target re-priced through the market fills at
        "modify tp 10 @ 200.00",  # once, and a stop modified after that would restate its quantity
    ]
    assert outcome.ended is None and fake.position_of(CON_ID) == D(15)
    assert sorted(fake.exits().values()) == [("sl", D(10), D(185)), ("tp", D(10), D(200))]


def test_a_reduce_fits_the_exits_at_their_prices_closes_then_reprices_stop_first():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    proposal = _decide(fake, {"action": "sell", "quantity": 4, "price": 188,
                              "takeProfit": {"limitPrice": 189}, "stopLoss": {"stopPrice": 185}})  # fmt: skip
    assert proposal.decision.kind == "reduce"
    outcome = _run(fake, proposal.stored(), reprice=True)
    assert fake.calls == [
        "modify tp 6", "modify sl 6",  # sized to what the close leaves, at their old prices
        "placed close SELL 4 MKT", "filled close 4",
        "modify sl 6 @ 185.00", "modify tp 6 @ 189.00",  # the alert's prices once the close is done
    ]  # fmt: skip
    assert outcome.ended is None and fake.position_of(CON_ID) == D(6)
    assert sorted(fake.exits().values()) == [("sl", D(6), D(185)), ("tp", D(6), D(189))]


class _TargetFillsWhileFitted(FakeTrading):
    """IB fills 3 of the take-profit right after the first change to the exits is acknowledged."""

    filled_once = False

    async def apply_exit_changes(self, con_id: int, changes: Any, **kwargs: Any) -> Any:
        touched = await super().apply_exit_changes(con_id, changes, **kwargs)
        if not self.filled_once:
            self.filled_once = True
            self.fill("tv2ib:OPEN:tp", D(3))
        return touched


def test_an_exit_filling_while_the_exits_are_fitted_resizes_the_close():
    fake = _TargetFillsWhileFitted(AAPL)
    _bracket(fake)
    outcome = _run(fake, _decide(fake, {"action": "sell", "quantity": 4, "price": 190}).stored())
    # long 10 -> 6: the target sold 3 of the 4 meanwhile, so the close sells 1, not 4 (which would
    # have left 3 with exits of 6), and the exits are fitted again to the 6 it leaves
    assert fake.calls == ["modify tp 6", "modify sl 6", "filled tp 3", "modify tp 6",
                          "placed close SELL 1 MKT", "filled close 1"]  # fmt: skip
    assert outcome.ended is None and fake.position_of(CON_ID) == D(6)
    assert sorted(fake.exits().values()) == [("sl", D(6), D(187)), ("tp", D(6), D(195))]


def test_a_rerun_adopts_what_ib_has_and_sends_nothing_again():
    fake = FakeTrading(AAPL)
    stored = _decide(
        fake, {"action": "buy", "quantity": 10, "price": 190, "stopLoss": {"percent": 1}}
    ).stored()
    _run(fake, stored)
    fake.calls.clear()
    outcome = _run(fake, stored)  # the job runs again (SIGKILL after the send)
    assert fake.calls == [] and outcome.placements[0].placed == []
    assert [s.leg for s in outcome.placements[0].adopted] == ["entry", "sl"]


def test_a_reversal_with_the_guard_hands_it_the_protection_after():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    registry = ProtectionRegistry()
    guard = Guard(fake, registry, FakeRecorder(), GuardSettings(check_delay=0.0))
    proposal = _decide(fake, {"action": "sell", "quantity": 20, "price": 190, "stopLoss": {"percent": 1}})

    async def run() -> Any:
        protocol = ExecutionProtocol(fake, guard, reversal_fill_timeout=1.0)
        return await protocol.run(Run("A1", proposal.stored(), False, submitted=False), CON_ID)

    assert asyncio.run(run()).ended is None
    spec = registry.get("DU1", CON_ID)
    assert spec is not None and spec.side == -1 and spec.alert_id == "A1" and set(spec.prices) == {"sl"}


# ------------------------------------------------------------------ the guard


def _guarded(flatten: bool = False) -> tuple[FakeTrading, Guard, FakeRecorder]:
    fake = FakeTrading(AAPL)
    fake.hold(D(10))  # a position whose exits IB no longer works
    registry = ProtectionRegistry()
    registry.set(ProtectionSpec("DU1", CON_ID, "A1", 1, {"tp": D(195), "sl": D(187)}, "AAPL"))
    recorder = FakeRecorder()
    return fake, Guard(fake, registry, recorder, GuardSettings(flatten, check_delay=0.0)), recorder


def _check(guard: Guard) -> str:
    return asyncio.run(guard.check(CON_ID, "test"))


def test_the_guard_reattaches_a_missing_exit_once_then_raises_the_alarm():
    fake, guard, recorder = _guarded()
    said = _check(guard)
    assert fake.calls == ["new sl SELL 10 @ 187", "new tp SELL 10 @ 195"]
    assert "re-attached stop-loss SELL 10 @ 187" in said and "re-attached take-profit SELL 10 @ 195" in said
    fake.cancel_by_ib("tv2ib:A1:sl")  # IB cancels the re-attached exits again
    fake.cancel_by_ib("tv2ib:A1:tp")
    fake.calls.clear()
    assert (
        _check(guard)
        == "unprotected: left as it is (FLATTEN_UNPROTECTED is off): protect or close it by hand"
    )
    assert fake.calls == []  # not placed a second time
    alarms = [e for e in recorder.events if e["type"] == "unprotected"]
    assert len(alarms) == 1 and alarms[0]["missing"] == ["sl", "tp"]
    assert _check(guard) == "unprotected (alarm already raised)"  # once, not at every check
    assert len([e for e in recorder.events if e["type"] == "unprotected"]) == 1


def test_the_guard_closes_an_unprotected_position_when_asked():
    fake, guard, recorder = _guarded(flatten=True)
    _check(guard)
    for ref in ("tv2ib:A1:sl", "tv2ib:A1:tp"):
        fake.cancel_by_ib(ref)
    assert _check(guard) == "unprotected: closing it at market (FLATTEN_UNPROTECTED): SELL 10"
    assert fake.calls[-2:] == ["flatten SELL 10", "filled flatten 10"] and fake.position_of(CON_ID) == 0


def test_the_guard_shrinks_exits_larger_than_the_position():
    fake = FakeTrading(AAPL)
    _bracket(fake)
    fake.hold(D(4))  # a partial close by hand: the exits would exceed the position
    registry = ProtectionRegistry()
    registry.set(ProtectionSpec("DU1", CON_ID, "OPEN", 1, {"tp": D(195), "sl": D(187)}, "AAPL"))
    guard = Guard(fake, registry, FakeRecorder(), GuardSettings(check_delay=0.0))
    _check(guard)
    assert sorted(fake.calls) == ["modify sl 4 @ 187", "modify tp 4 @ 195"]
    assert sorted(fake.exits().values()) == [("sl", D(4), D(187)), ("tp", D(4), D(195))]


@pytest.mark.parametrize("position", [D(0), D(-3)])
def test_the_guard_cancels_exits_on_a_flat_or_flipped_position(position):
    fake = FakeTrading(AAPL)
    _bracket(fake)
    fake.hold(position)
    registry = ProtectionRegistry()
    registry.set(ProtectionSpec("DU1", CON_ID, "OPEN", 1, {"tp": D(195), "sl": D(187)}, "AAPL"))
    guard = Guard(fake, registry, FakeRecorder(), GuardSettings(check_delay=0.0))
    _check(guard)
    assert fake.exits() == {}  # never on the opening side, never while flat
    assert (registry.get("DU1", CON_ID) is None) == (position == 0)
