"""A take-profit in levels: one sub-bracket per level (``tp.<i>`` + ``sl.<i>`` in their own OCA
group), so the stops always add up to the position. The pure parts as tables (the sizes, the
legs' names, the slice rule of the exits), and the real worker (in a thread) against ibsim with
invariant 7 extended checked on EVERY change of ibsim's state: three levels fill one by one, the
stop shrinks with each fill and moves to break-even after the first, an ``update`` alert tightens
every slice's stop."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from support import stop_problem, wait_until
from worker_helpers import add_alert, alert_status

from app.webhook.schema import normalise
from core.ids import exit_leg_parts
from core.models import AlertEvent
from core.payload import AlertPayload, BreakEven, TakeProfitLevel
from core.slippage import _leg_order
from worker.decision.break_even import break_even_move
from worker.decision.intent import has_relative_exits
from worker.decision.levels import level_sizes, sized_legs
from worker.decision.model import Leg, PlanRejected
from worker.decision.positions import ExitChange, WorkingExit, exit_changes, exits_fit
from worker.decision.rounding import PriceGrid
from worker.notify.wording import leg_name
from worker.recording.protection import ProtectionSpec

D = Decimal
WORKING = frozenset({"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"})


@pytest.mark.parametrize(
    ("leg", "parts"),
    [("tp", ("tp", "")), ("sl2", ("sl", "")), ("tp.1", ("tp", "1")), ("sl.3", ("sl", "3")),
     ("sl.1r2", ("sl", "1")), ("entry", None), ("sl.", None), ("close", None)],
)  # fmt: skip
def test_the_names_of_the_legs(leg, parts):
    assert exit_leg_parts(leg) == parts


def _levels(*sizes: tuple[str, str] | None) -> tuple[TakeProfitLevel, ...]:
    return tuple(
        TakeProfitLevel(percent=D(1), **({size[0]: D(size[1])} if size else {}))  # type: ignore[arg-type]
        for size in sizes
    )


@pytest.mark.parametrize(
    ("levels", "position", "expected"),
    [
        (_levels(("quantity", "3"), ("quantity", "3"), None), D(10), [D(3), D(3), D(4)]),
        (_levels(("quantity", "3"), ("quantity", "3")), D(10), [D(3), D(3)]),  # 4 left: a stop-only slice
        (_levels(("quantity_percent", "50"), ("quantity_percent", "25"), None), D(7), [D(3), D(1), D(3)]),
        (_levels(("quantity", "6"), ("quantity", "6")), D(10), "add up to 12"),
        (_levels(("quantity", "5"), ("quantity", "5"), None), D(10), "comes to 0"),
        (_levels(("quantity_percent", "10"), None), D(5), "comes to 0"),
    ],
)
def test_the_sizes_of_the_levels(levels, position, expected):
    if isinstance(expected, str):
        with pytest.raises(PlanRejected, match=expected):
            level_sizes(levels, position, D(1))
    else:
        assert level_sizes(levels, position, D(1)) == expected


SLICES = [
    WorkingExit("tp.1", "tp", "SELL", D(3), "1"), WorkingExit("sl.1", "sl", "SELL", D(3), "1"),
    WorkingExit("tp.2", "tp", "SELL", D(3), "2"), WorkingExit("sl.2", "sl", "SELL", D(3), "2"),
    WorkingExit("tp.3", "tp", "SELL", D(4), "3"), WorkingExit("sl.3", "sl", "SELL", D(4), "3"),
]  # fmt: skip
BOTH = frozenset({"tp", "sl"})


def _change(ref, role, quantity, level=""):
    return ExitChange(ref, role, "SELL", D(quantity), level)


@pytest.mark.parametrize(
    ("position", "exits", "wanted", "expected"),
    [
        # the slices fit: nothing to do
        (D(10), SLICES, BOTH, []),
        # level 1 filled (IB cancelled its stop): the rest still fits
        (D(7), SLICES[2:], BOTH, []),
        # a manual partial close of 2: the last level shrinks (target and stop)
        (D(8), SLICES, BOTH, [_change("tp.3", "tp", 2, "3"), _change("sl.3", "sl", 2, "3")]),
        # ... of 5: level 3 goes, level 2 shrinks to 2
        (D(5), SLICES, BOTH, [_change("tp.3", "tp", 0, "3"), _change("sl.3", "sl", 0, "3"),
                              _change("tp.2", "tp", 2, "2"), _change("sl.2", "sl", 2, "2")]),
        # an add of 5 filled: the last level's stop covers it (no take-profit for the added 5)
        (D(15), SLICES, BOTH, [_change("sl.3", "sl", 9, "3")]),
        # IB cancelled level 2's stop: a new one for the level, in its group
        (D(10), [e for e in SLICES if e.ref != "sl.2"], BOTH, [_change(None, "sl", 3, "2")]),
        # ... but not when the position wants no stop-loss
        (D(10), [e for e in SLICES if e.role == "tp"], frozenset({"tp"}), []),
        # flat: everything goes; the other side: everything goes
        (D(0), SLICES[4:], BOTH, [_change("tp.3", "tp", 0), _change("sl.3", "sl", 0)]),
        (D(-4), SLICES[4:], BOTH, [_change("tp.3", "tp", 0), _change("sl.3", "sl", 0)]),
    ],
)  # fmt: skip
def test_the_slices_follow_the_position(position, exits, wanted, expected):
    changes = exit_changes(position, exits, wanted)
    assert changes == expected
    # every reduction comes before any growth (applied one at a time, none adds past the position)
    book = {e.ref: e for e in exits}
    grown = False
    for change in changes:
        before = book.get(change.ref or "")
        grows = before is None or change.quantity > before.quantity
        assert not (grown and not grows), change
        grown = grown or grows
        ref = change.ref or f"new.{change.slice}"
        book[ref] = WorkingExit(ref, change.role, change.action, change.quantity, change.slice)
    assert exits_fit(position, list(book.values())) is None
    if position > 0 and "sl" in wanted:
        assert sum(e.quantity for e in book.values() if e.role == "sl") == abs(position)


def _legs(*names_sizes: tuple[str, int]) -> list[Leg]:
    return [Leg(name, "SELL" if name != "entry" else "BUY", "MKT", D(size)) for name, size in names_sizes]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (D(10), [("entry", 10), ("tp.1", 3), ("sl.1", 3), ("tp.2", 3), ("sl.2", 3), ("sl.3", 4)]),
        # the entry shrank (the position moved since the plan): the last level gives first
        (D(5), [("entry", 5), ("tp.1", 3), ("sl.1", 3), ("tp.2", 2), ("sl.2", 2)]),
        (D(2), [("entry", 2), ("tp.1", 2), ("sl.1", 2)]),
        # it grew: the last stop covers the difference
        (D(12), [("entry", 12), ("tp.1", 3), ("sl.1", 3), ("tp.2", 3), ("sl.2", 3), ("sl.3", 6)]),
    ],
)
def test_a_bracket_in_levels_sized_to_its_entry(quantity, expected):
    legs = _legs(("entry", 10), ("tp.1", 3), ("sl.1", 3), ("tp.2", 3), ("sl.2", 3), ("sl.3", 4))
    sized = sized_legs(legs, quantity)
    assert [(leg.leg, int(leg.quantity)) for leg in sized] == expected
    assert [leg.transmit for leg in sized] == [False] * (len(sized) - 1) + [True]
    plain = sized_legs(_legs(("entry", 10), ("tp", 10), ("sl", 10)), D(4))
    assert [int(leg.quantity) for leg in plain] == [4, 4, 4]


@pytest.mark.parametrize(
    ("leg", "name"),
    [("tp", "take-profit"), ("sl2", "sl2"), ("tp.2", "take-profit 2"), ("sl.1r2", "stop-loss 1")],
)
def test_the_legs_as_a_trader_reads_them(leg, name):
    assert leg_name(leg) == name


def test_exit_legs_sort_plain_first_then_by_level():
    legs = ["sl.2", "tp.10", "tp", "tp.2", "sl", "tp2", "sl.1r2"]
    assert sorted(legs, key=_leg_order) == ["sl", "sl.1r2", "sl.2", "tp", "tp2", "tp.2", "tp.10"]


def test_the_protection_record_keeps_the_levels():
    spec = ProtectionSpec("DU1", 265598, "A2", 1, {"sl": D("186.2")}, "AAPL",
                          break_even=BreakEven(after_take_profit=D(1)),
                          levels={"1": (D("191.9"), D(3)), "2": (D("193.8"), D(3))}, levels_alert="A1")  # fmt: skip
    assert ProtectionSpec.from_json(spec.to_json()) == spec
    assert ProtectionSpec.from_json({**spec.to_json(), "levels": None}).levels == {}  # an older record


@pytest.mark.parametrize(
    ("filled", "stop", "moved"),
    [(False, D("186.2"), None), (True, D("186.2"), D(190)), (True, D(191), None)],
)
def test_break_even_after_a_level(filled, stop, moved):
    move = break_even_move(
        BreakEven(after_take_profit=D(1)), D(7), D(190), D(192), stop, PriceGrid(D("0.01")), filled
    )
    assert move.stop == moved
    assert move.spent == filled


@pytest.mark.parametrize(
    ("take_profit", "extra", "error"),
    [
        ([{"percent": 1}], {}, "2 to 10 levels"),
        (
            [{"percent": 1, "quantity": 3, "quantityPercent": 10}, {"percent": 2}],
            {},
            "at most one of quantity",
        ),
        ([{"percent": 1, "quantity": 3}, {"percent": 2, "quantityPercent": 50}], {}, "the same way"),
        ({"percent": 1, "quantity": 3}, {}, "takeProfit takes limitPrice, percent, amount, ticks"),
        (
            [{"percent": 1, "quantity": 3}, {"percent": 2}],
            {"action": "update", "quantity": None},
            "not levels",
        ),
        (
            {"percent": 1},
            {"stopLoss": {"percent": 2, "breakEven": {"afterTakeProfit": 1}}},
            "names take-profit level 1",
        ),
        ([{"percent": 1, "quantity": 3}, {"percent": 2, "qty": 3}], {}, "Unknown field"),
        (
            [{"percent": 1, "quantity": 1}, {"percent": 2}],
            {"optionType": "call", "expiration": "+30 days", "strikesAway": 1},
            "not made for options",
        ),
    ],
)
def test_intake_refuses_levels_it_cannot_place(take_profit, extra, error):
    alert = {"ticker": "AAPL", "action": "buy", "quantity": 10, "takeProfit": take_profit, **extra}
    payload, errors = normalise({k: v for k, v in alert.items() if v is not None})
    assert payload is None and error in str(errors), errors


# ------------------------------------------------------------------ the real worker against ibsim


class EveryChange:
    """Checks :func:`stop_problem` after every batch of ibsim's engine events (on its loop)."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.broken: list[str] = []
        self.changes = 0
        self.lock = threading.Lock()
        router = sim.sim.router
        original = router.apply

        def apply(events, *args, **kwargs):
            result = original(events, *args, **kwargs)
            problem = stop_problem(sim.sim.engine.state())
            with self.lock:
                self.changes += 1
                if problem:
                    self.broken.append(problem)
            return result

        sim.call(setattr, router, "apply", apply)


def _working(sim, role: str) -> list[dict[str, Any]]:
    return [o for o in sim.state()["orders"] if o["status"] in ("Submitted", "PreSubmitted")
            and (exit_leg_parts(o["orderRef"].rsplit(":", 1)[-1]) or ("",))[0] == role]  # fmt: skip


def _stops(sim) -> list[tuple[str, float, float]]:
    return sorted(
        (o["orderRef"].rsplit(":", 1)[-1], o["auxPrice"], o["remaining"]) for o in _working(sim, "sl")
    )


def _position(sim) -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == "AAPL")


def stored(alert: dict[str, Any]) -> dict[str, Any]:
    """The payload as intake stores it (a takeProfit list becomes ``takeProfitLevels``)."""
    payload, errors = normalise(alert)
    assert payload is not None, errors
    return payload.to_json()


def _trail(ctx, alert_id: str) -> str:
    with ctx.sessions() as session:
        return "\n".join(session.scalars(select(AlertEvent.message).where(AlertEvent.alert_id == alert_id)))


@pytest.mark.e2e
def test_three_levels_fill_one_by_one_and_the_stop_follows(sim, watching_worker):
    ctx = watching_worker.ctx
    watch = EveryChange(sim)
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, stored({"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                                      "takeProfit": [{"percent": 1, "quantity": 3}, {"percent": 2, "quantity": 3},
                                                     {"percent": 3}],
                                      "stopLoss": {"percent": 2, "breakEven": {"afterTakeProfit": 1}}}))  # fmt: skip
    wait_until(
        lambda: alert_status(ctx, alert_id) == "filled", timeout=20, what=lambda: _trail(ctx, alert_id)
    )
    wait_until(
        lambda: _stops(sim) == [("sl.1", 186.2, 3), ("sl.2", 186.2, 3), ("sl.3", 186.2, 4)], timeout=10
    )
    targets = sorted(
        (o["orderRef"].rsplit(":", 1)[-1], o["lmtPrice"], o["remaining"]) for o in _working(sim, "tp")
    )
    assert targets == [("tp.1", 191.9, 3), ("tp.2", 193.8, 3), ("tp.3", 195.7, 4)]
    groups = {o["orderRef"].rsplit(":", 1)[-1]: o["ocaGroup"] for o in sim.state()["orders"]}
    assert groups["tp.2"] == groups["sl.2"] == f"tv2ib:{alert_id}:2" != groups["sl.3"]

    sim.set_price("AAPL", 192.0)  # level 1 fills: its stop goes with it, the others move to the entry
    wait_until(lambda: _position(sim) == 7, timeout=10)
    wait_until(lambda: _stops(sim) == [("sl.2", 190.0, 3), ("sl.3", 190.0, 4)], timeout=15)

    update = add_alert(ctx, stored({"ticker": "AAPL", "action": "update", "stopLoss": {"stopPrice": 191}}))
    wait_until(lambda: alert_status(ctx, update) == "cancelled", timeout=20)
    assert _stops(sim) == [("sl.2", 191.0, 3), ("sl.3", 191.0, 4)]

    sim.set_price("AAPL", 194.0)  # level 2
    wait_until(lambda: _position(sim) == 4 and _stops(sim) == [("sl.3", 191.0, 4)], timeout=10)
    sim.set_price("AAPL", 196.0)  # level 3: flat, nothing left working
    wait_until(lambda: _position(sim) == 0 and not _stops(sim) and not _working(sim, "tp"), timeout=10)

    with ctx.sessions() as session:
        trail = list(session.scalars(select(AlertEvent.message).where(AlertEvent.alert_id == alert_id)))
    assert sum(m.startswith("break-even: stop moved to break-even 190") for m in trail) == 1, trail
    assert watch.changes > 10
    assert watch.broken == []


def _ib_cancels(sim, leg: str) -> None:
    """IB cancels one of our orders by itself (an exchange purge): the owner hears it."""
    order = next(o for o in sim.state()["orders"] if o["orderRef"].endswith(f":{leg}"))

    def cancel() -> None:
        server = sim.sim
        engine = server.engine
        server.apply(engine._cancel(engine.orders[(order["clientId"], order["orderId"])], "Cancelled by IB"))

    sim.call(cancel)


@pytest.mark.e2e
def test_the_guard_keeps_the_levels_after_a_manual_close_and_a_lost_stop(sim, running_worker):
    ctx = running_worker.ctx
    sim.set_price("AAPL", 190.0)
    alert_id = add_alert(ctx, stored({"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                                      "takeProfit": [{"percent": 1, "quantityPercent": 30},
                                                     {"percent": 2, "quantityPercent": 30}],
                                      "stopLoss": {"percent": 2}}))  # fmt: skip
    wait_until(
        lambda: alert_status(ctx, alert_id) == "filled", timeout=20, what=lambda: _trail(ctx, alert_id)
    )
    # two levels of 3 and a stop-only rest of 4
    wait_until(
        lambda: _stops(sim) == [("sl.1", 186.2, 3), ("sl.2", 186.2, 3), ("sl.3", 186.2, 4)], timeout=10
    )
    sim.trade(-5, symbol="AAPL")  # a manual sale of 5: the rest goes, then level 2 shrinks to 2
    wait_until(
        lambda: _stops(sim) == [("sl.1", 186.2, 3), ("sl.2", 186.2, 2)],
        timeout=10,
        what=lambda: str(_stops(sim)),
    )
    targets = sorted((o["orderRef"].rsplit(":", 1)[-1], o["remaining"]) for o in _working(sim, "tp"))
    assert targets == [("tp.1", 3), ("tp.2", 2)]
    assert stop_problem(sim.state()) is None
    watch = EveryChange(
        sim
    )  # from here on no change at IB breaks the invariant (a manual trade did, until the guard came)
    _ib_cancels(sim, "sl.2")  # IB drops level 2's stop: put back for the level, in its group
    wait_until(
        lambda: _stops(sim) == [("sl.1", 186.2, 3), ("sl.2r2", 186.2, 2)],
        timeout=10,
        what=lambda: str(_stops(sim)),
    )
    groups = {o["orderRef"].rsplit(":", 1)[-1]: o["ocaGroup"] for o in sim.state()["orders"]}
    assert groups["sl.2r2"] == groups["tp.2"] == f"tv2ib:{alert_id}:2"
    watch = EveryChange(sim)
    sim.set_price("AAPL", 194.0)  # both levels fill: flat, the re-attached stop went with its level
    wait_until(lambda: _position(sim) == 0 and not _stops(sim) and not _working(sim, "tp"), timeout=10)
    assert watch.broken == [] and watch.changes >= 1


def test_relative_levels_need_a_reference_price():
    levels = (TakeProfitLevel(limit_price=D(200), quantity=D(3)), TakeProfitLevel(percent=D(2)))
    assert has_relative_exits(AlertPayload(ticker="AAPL", action="buy", take_profit_levels=levels))
    absolute = (TakeProfitLevel(limit_price=D(200), quantity=D(3)), TakeProfitLevel(limit_price=D(201)))
    assert not has_relative_exits(AlertPayload(ticker="AAPL", action="buy", take_profit_levels=absolute))
