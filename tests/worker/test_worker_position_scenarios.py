"""Issue 10 as a trader checks it: alerts against the position IB holds, step by step.

Black box: each alert is validated by the webhook schema (the payload intake stores) and handed
to a real worker thread through the real queue; everything checked is what IB itself reports
(ibsim's ``/state``): the position, and tv2ib's working orders (side, type, size left, price).
After every step, and on EVERY snapshot polled while waiting for it, invariant 7 must hold
(:func:`worker.decision.positions.exits_fit` on the exits ibsim reports: no stop or target on the opening
side, none larger than the position), and no orderRef ever reaches IB twice (exactly-once).

Prices are fixed (AAPL at 190, the alert's ``price`` 190, exits as amounts) so every expected
order is exact. Expected orders are ``(side, orderType, quantity left, price)``; the price is
the limit price of a LMT and the stop price of a STP. Bracket children that wait
``PreSubmitted`` under an unfilled entry are listed (they are at IB) but are not exits yet.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from worker_helpers import WorkerThread, add_alert, alert_status

from app.webhook.schema import normalise
from core.services import get_alert, list_positions
from ibsim.testing import SimThread
from worker.decision.positions import WorkingExit, exits_fit

SYMBOL = "AAPL"
PRICE = 190.0
WAIT = 30.0  # seconds for a step to settle (a loaded 2-core machine)
WORKING = frozenset({"ApiPending", "PendingSubmit", "PreSubmitted", "Submitted"})
EXIT_ROLE = re.compile(r"(?:.*[-_.])?(tp|sl)\d*")

# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Send:
    """An alert through the pipe; ``name`` lets a later step refer to its orders."""

    payload: dict[str, Any]
    status: str  # the alert's final state
    reason: str | None = None  # a regex the alert's stored reason must match
    name: str | None = None


@dataclass(frozen=True)
class Fill:
    """A forced (partial) fill of the entry of the alert named ``alert``."""

    alert: str
    quantity: float
    price: float


@dataclass(frozen=True)
class Manual:
    """A trade made by hand in TWS (signed): IB's position changes, no execution for tv2ib."""

    quantity: float


@dataclass(frozen=True)
class AtIB:
    """Something that happens at IB alone (ibsim): a price move, a refusal, a halt, a slow book."""

    event: str
    act: Callable[[SimThread], object]


def price_to(value: float) -> AtIB:
    return AtIB(f"price {value}", lambda sim: sim.set_price(SYMBOL, value))


def reject_next(reason: str) -> AtIB:
    """IB refuses the next order placed (a margin refusal)."""
    return AtIB(
        f"IB refuses the next order: {reason}", lambda sim: sim.fault("reject_next", reason=reason, code=201)
    )


def fill_limit(quantity: float) -> AtIB:
    """IB fills at most this many shares per matching pass (partial fills)."""
    return AtIB(
        f"IB fills at most {quantity} at a time", lambda sim: sim.set_fill_limit(quantity, symbol=SYMBOL)
    )


CASH_ACCOUNT = AtIB(
    "a cash account: IB refuses a SELL larger than the position", lambda sim: sim.set_cash_account(True)
)
# modifications and cancels still go through a halt
HALT = AtIB("halted: IB refuses every new order on the symbol", lambda sim: sim.halt(SYMBOL))
PAUSE_FILLS = AtIB("IB stops matching: a market order rests unfilled", lambda sim: sim.fault("pause_fills"))


@dataclass(frozen=True)
class Expect:
    position: float
    orders: list[tuple] | None = field(default=None)  # None: only the position and invariant 7


Step = tuple[Any, Expect]


def alert(action: str, quantity: float | None = None, *, tp: float | None = None, sl: float | None = None,
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A raw alert as TradingView sends it; take-profit / stop-loss as amounts from ``price``."""
    raw: dict[str, Any] = {"ticker": SYMBOL, "action": action, "price": PRICE, **extra}
    if quantity is not None:
        raw["quantity"] = quantity
    if tp is not None:
        raw["takeProfit"] = {"amount": tp}
    if sl is not None:
        raw["stopLoss"] = {"amount": sl}
    return raw


def long10() -> Step:
    """Flat -> long 10 by a market bracket: take-profit 195, stop-loss 185."""
    return Send(alert("buy", 10, tp=5, sl=5), "filled"), Expect(
        10, [("SELL", "LMT", 10, 195), ("SELL", "STP", 10, 185)]
    )


def short_exits(size: float) -> list[tuple]:
    """The exits of a short opened at 190 with take-profit / stop-loss amounts of 5."""
    return [("BUY", "LMT", size, 185), ("BUY", "STP", size, 195)]


def resting_long_bracket(name: str) -> Step:
    """A buy limit at 186 (price 190: it rests) with take-profit 194 and stop-loss 182 waiting."""
    payload = alert("buy", 10, tp=8, sl=4, orderType="limit", limitPrice=186)
    return Send(payload, "submitted", name=name), Expect(
        0, [("BUY", "LMT", 10, 186), ("SELL", "LMT", 10, 194), ("SELL", "STP", 10, 182)]
    )


LONG_EXITS = [("SELL", "LMT", 10, 195), ("SELL", "STP", 10, 185)]
ALREADY_LONG = r"already long 10"
NOTHING_TO_EXIT = r"nothing to exit|no open position"

# fmt: off
SCENARIOS: dict[str, list[Step]] = {
    # TradingView's reversal long 10 -> short 10 arrives as sell 20 ({{strategy.order.contracts}})
    "reversal by sell 2x": [
        long10(),
        (Send(alert("sell", 20, tp=5, sl=5), "filled"), Expect(-10, short_exits(10))),
    ],
    "reversal by sentiment bearish": [
        long10(),
        (Send(alert("sell", 20, tp=5, sl=5, sentiment="bearish"), "filled"), Expect(-10, short_exits(10))),
    ],
    "sentiment bullish: a sell only reduces a long": [
        long10(),
        (Send(alert("sell", 5, sentiment="bullish"), "filled"),
         Expect(5, [("SELL", "LMT", 5, 195), ("SELL", "STP", 5, 185)])),
        # 30 would cross to short: the sentiment says the side after the trade is long (or flat)
        (Send(alert("sell", 30, sentiment="long"), "filled"), Expect(0, [])),
    ],
    "reversal by positionSize (after a reduce by positionSize)": [
        long10(),
        # a reduce without take-profit / stop-loss keeps the old prices, sized to what is left
        (Send(alert("sell", 4, positionSize=6), "filled"),
         Expect(6, [("SELL", "LMT", 6, 195), ("SELL", "STP", 6, 185)])),
        (Send(alert("sell", 11, tp=5, sl=5, positionSize=-5), "filled"), Expect(-5, short_exits(5))),
    ],
    "flat by sentiment flat": [
        long10(),
        (Send(alert("sell", 10, sentiment="flat"), "filled"), Expect(0, [])),
        (Send(alert("sell", 10, sentiment="flat"), "cancelled", NOTHING_TO_EXIT), Expect(0, [])),
    ],
    "flat by exit": [
        long10(),
        (Send(alert("exit"), "filled"), Expect(0, [])),
    ],
    "target already held": [
        long10(),
        (Send(alert("buy", 10, positionSize=10), "cancelled", r"already at target \+10"), Expect(10, LONG_EXITS)),
    ],
    "add: one protective set for the whole position": [
        long10(),
        # no take-profit / stop-loss on the add: the old prices stay, sized to the whole position
        (Send(alert("add", 5), "filled"), Expect(15, [("SELL", "LMT", 15, 195), ("SELL", "STP", 15, 185)])),
        # with them: the one set is re-priced (from this alert's price 190)
        (Send(alert("add", 5, tp=10, sl=3), "filled"),
         Expect(20, [("SELL", "LMT", 20, 200), ("SELL", "STP", 20, 187)])),
    ],
    "partial exit by quantity then percent_of_position": [
        long10(),
        (Send(alert("exit", 4), "filled"), Expect(6, [("SELL", "LMT", 6, 195), ("SELL", "STP", 6, 185)])),
        (Send(alert("exit", 50, quantityType="percent_of_position"), "filled"),
         Expect(3, [("SELL", "LMT", 3, 195), ("SELL", "STP", 3, 185)])),
        (Send(alert("exit"), "filled"), Expect(0, [])),
    ],
    "exit with nothing held": [
        (Send(alert("exit"), "cancelled", NOTHING_TO_EXIT), Expect(0, [])),
        (Send(alert("exit", 50, quantityType="percent_of_position"), "cancelled", NOTHING_TO_EXIT), Expect(0, [])),
    ],
    "short: buy reduces, buy without quantity closes": [
        (Send(alert("sell", 10, tp=5, sl=5), "filled"), Expect(-10, short_exits(10))),
        (Send(alert("buy", 4), "filled"), Expect(-6, short_exits(6))),
        (Send(alert("buy"), "filled"), Expect(0, [])),
    ],
    "reversal while the entry rests unfilled": [
        resting_long_bracket("entry"),
        # the resting buy must not stay behind the short: it would fill later and undo the target
        (Send(alert("sell", 10, tp=5, sl=5, positionSize=-10), "filled"), Expect(-10, short_exits(10))),
        (price_to(186), Expect(-10, short_exits(10))),
    ],
    "partial fill then reversal": [
        resting_long_bracket("entry"),
        (Fill("entry", 4, 186), Expect(4)),
        (Send(alert("sell", 14, tp=5, sl=5, positionSize=-10), "filled"), Expect(-10, short_exits(10))),
        (price_to(186), Expect(-10, short_exits(10))),
    ],
    "partial fill then cancel of the remainder: exits for what was filled": [
        resting_long_bracket("entry"),
        (Fill("entry", 4, 186), Expect(4)),
        (Send(alert("cancel"), "cancelled"), Expect(4, [("SELL", "LMT", 4, 194), ("SELL", "STP", 4, 182)])),
    ],
    "manual position: seen, refused a pyramid, closed by sentiment flat": [
        (Manual(7), Expect(7, [])),
        (Send(alert("buy", 5), "rejected", r"already long 7"), Expect(7, [])),
        (Send(alert("sell", 5, sentiment="flat"), "filled"), Expect(0, [])),
    ],
    "manual position reversed by sell": [
        (Manual(7), Expect(7, [])),
        (Send(alert("sell", 10, tp=5, sl=5), "filled"), Expect(-3, short_exits(3))),
    ],
    "manual trades on a protected position: the exits follow IB's position": [
        long10(),
        (Manual(-4), Expect(6, [("SELL", "LMT", 6, 195), ("SELL", "STP", 6, 185)])),
        (Manual(3), Expect(9, [("SELL", "LMT", 9, 195), ("SELL", "STP", 9, 185)])),
        (Manual(-9), Expect(0, [])),
    ],
    "stop-out after a reversal: flat, not beyond": [
        long10(),
        (Send(alert("sell", 20, tp=5, sl=5), "filled"), Expect(-10, short_exits(10))),
        (price_to(196), Expect(0, [])),  # the short's stop (195) fills; its take-profit is cancelled (OCA)
        (price_to(184), Expect(0, [])),  # the old long's stop (185) is gone: nothing sells
        (price_to(200), Expect(0, [])),
    ],
    "refused reversal in a cash account: flat, not long and unprotected": [
        long10(),
        (CASH_ACCOUNT, Expect(10, LONG_EXITS)),
        (Send(alert("sell", 20, tp=5, sl=5), "rejected", r"Short sales are not permitted"), Expect(0, [])),
    ],
    "refused close (margin): the exits are put back for the unchanged position": [
        long10(),
        (reject_next("Insufficient margin"), Expect(10, LONG_EXITS)),
        (Send(alert("sell", 20, tp=5, sl=5), "rejected", r"Insufficient margin"), Expect(10, LONG_EXITS)),
        (price_to(184), Expect(0, [])),  # and they protect it
    ],
    "refused partial exit (halted): the exits are resized back": [
        long10(),
        (HALT, Expect(10, LONG_EXITS)),
        (Send(alert("exit", 4), "rejected", r"halted"), Expect(10, LONG_EXITS)),
    ],
    "reversal without take-profit / stop-loss: the new side has no exits": [
        long10(),
        (Send(alert("sell", 20), "filled"), Expect(-10, [])),
    ],
    "reduce with take-profit / stop-loss re-prices the one set": [
        long10(),
        (Send(alert("sell", 4, tp=10, sl=3, positionSize=6), "filled"),
         Expect(6, [("SELL", "LMT", 6, 200), ("SELL", "STP", 6, 187)])),
    ],
    "cancel keeps the position and its exits": [
        long10(),
        (Send(alert("cancel"), "cancelled"), Expect(10, LONG_EXITS)),
    ],
    "refusals that need a position or a quantity": [
        (Send(alert("add", 5), "rejected", r"add needs a position"), Expect(0, [])),
        (Send(alert("buy"), "rejected", r"needs a quantity"), Expect(0, [])),
        (Send(alert("buy", 1), "filled"), Expect(1, [])),
        (Send(alert("exit", 50, quantityType="percent_of_position"), "rejected", r"rounds down to 0"),
         Expect(1, [])),
    ],
    "buy while long is refused with the reason": [
        long10(),
        (Send(alert("buy", 5, tp=5, sl=5), "rejected", ALREADY_LONG), Expect(10, LONG_EXITS)),
        (Send(alert("buy", 5, sentiment="bullish"), "rejected", ALREADY_LONG), Expect(10, LONG_EXITS)),
    ],
}
# fmt: on


# ------------------------------------------------------------------ what IB reports


def position(state: dict[str, Any]) -> Decimal:
    return sum((Decimal(str(p["position"])) for p in state["positions"] if p["symbol"] == SYMBOL), Decimal(0))


def ours(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in state["orders"] if o["orderRef"].startswith("tv2ib:") and o["symbol"] == SYMBOL]


def working(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in ours(state) if o["status"] in WORKING]


def dormant(order: dict[str, Any], state: dict[str, Any]) -> bool:
    """A bracket child waiting under an entry that has not completely filled (not an exit yet)."""
    if order["status"] != "PreSubmitted" or not order["parentId"]:
        return False
    parents = [
        o for o in state["orders"] if o["clientId"] == order["clientId"] and o["orderId"] == order["parentId"]
    ]
    return not parents or parents[0]["status"] != "Filled"


def exits(state: dict[str, Any]) -> list[WorkingExit]:
    """tv2ib's protective orders as IB reports them (role from the orderRef's leg: tp, sl, tp2 ...)."""
    found = []
    for o in working(state):
        role = EXIT_ROLE.fullmatch(o["orderRef"].rsplit(":", 1)[-1])
        if role and not dormant(o, state):
            found.append(WorkingExit(o["orderRef"], role.group(1), o["action"], Decimal(str(o["remaining"]))))
    return found


def order_row(o: dict[str, Any]) -> tuple:
    price = {"LMT": o["lmtPrice"], "STP": o["auxPrice"]}.get(o["orderType"])
    return (o["action"], o["orderType"], o["remaining"], price)


def rows(state: dict[str, Any]) -> list[tuple]:
    return sorted(order_row(o) for o in working(state))


def show(state: dict[str, Any]) -> str:
    lines = [f"position {position(state)}"]
    for o in ours(state):
        lines.append(f"  {o['orderRef']} {o['action']} {o['orderType']} {o['quantity']} left {o['remaining']} "
                     f"lmt {o['lmtPrice']} aux {o['auxPrice']} {o['status']} parent {o['parentId']}")  # fmt: skip
    return "\n".join(lines)


def fitting_state(sim: SimThread, strict: bool = True) -> dict[str, Any]:
    """One snapshot of IB, checked: invariant 7 and exactly-once hold at every observed moment.

    Not ``strict`` while tv2ib catches up with a trade made by hand: that trade changes the
    position under the exits, and only the guard's next check can resize them."""
    state = sim.state()
    problem = exits_fit(position(state), exits(state))
    assert problem is None or not strict, f"invariant 7 broken at IB: {problem}\n{show(state)}"
    twice = [ref for ref, n in Counter(o["orderRef"] for o in ours(state)).items() if n > 1]
    assert not twice, f"orderRef(s) sent to IB more than once: {twice}\n{show(state)}"
    return state


def matches(state: dict[str, Any], want: Expect) -> bool:
    if position(state) != Decimal(str(want.position)):
        return False
    return want.orders is None or rows(state) == sorted(want.orders)


def settle(sim: SimThread, want: Expect, what: str, strict: bool = True) -> None:
    """Poll IB until it shows ``want`` (checking every snapshot), then make sure it stays so."""
    deadline = time.monotonic() + WAIT
    state = fitting_state(sim, strict)
    while not matches(state, want):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: expected position {want.position} with working orders {want.orders}; "
                f"IB shows {rows(state)}\n{show(state)}"
            )
        time.sleep(0.05)
        state = fitting_state(sim, strict)
    for _ in range(6):  # nothing late: no second order, no exit grown past the position
        time.sleep(0.05)
        state = fitting_state(sim)
        assert matches(state, want), f"{what}: changed after settling\n{show(state)}"


# ------------------------------------------------------------------ running a scenario


def validated(raw: dict[str, Any]) -> dict[str, Any]:
    payload, errors = normalise(raw)
    assert payload is not None and not errors, f"the test's alert is invalid: {errors}"
    return payload.to_json()  # stored as intake stores it


def wait_status(worker: WorkerThread, alert_id: str, want: str, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while (status := alert_status(worker.ctx, alert_id)) != want:
        if time.monotonic() > deadline or (
            status in ("filled", "cancelled", "rejected", "failed") and status != want
        ):
            doc = get_alert(worker.ctx.sessions, alert_id)
            raise AssertionError(f"{what}: alert is {status}, expected {want}; reason {doc['reason']!r}")
        time.sleep(0.05)
    return get_alert(worker.ctx.sessions, alert_id)


def run_step(sim: SimThread, worker: WorkerThread, step: Any, names: dict[str, str], what: str) -> None:
    if isinstance(step, Send):
        alert_id = add_alert(worker.ctx, validated(step.payload))
        if step.name:
            names[step.name] = alert_id
        doc = wait_status(worker, alert_id, step.status, what)
        if step.reason:
            assert re.search(step.reason, doc["reason"] or ""), f"{what}: reason {doc['reason']!r}"
    elif isinstance(step, AtIB):
        step.act(sim)
    elif isinstance(step, Fill):
        entry = [o for o in ours(sim.state()) if o["orderRef"] == f"tv2ib:{names[step.alert]}:entry"]
        assert len(entry) == 1, f"{what}: the entry of {step.alert} is not at IB"
        sim.fill(entry[0]["clientId"], entry[0]["orderId"], step.quantity, step.price)
    elif isinstance(step, Manual):
        sim.trade(step.quantity, symbol=SYMBOL)
        # the trader sends the next alert once tv2ib shows the position (the worker heard of it)
        want = position(sim.state())
        deadline = time.monotonic() + WAIT
        while sum((Decimal(str(p["quantity"])) for p in list_positions(worker.ctx.sessions)
                   if p["symbol"] == SYMBOL), Decimal(0)) != want:  # fmt: skip
            assert time.monotonic() < deadline, f"{what}: the worker never saw the manual position"
            time.sleep(0.05)
    else:  # pragma: no cover - a typo in the table
        raise TypeError(step)


def play(sim: SimThread, worker: WorkerThread, steps: list[Step]) -> None:
    sim.set_price(SYMBOL, PRICE)
    names: dict[str, str] = {}
    for number, (step, want) in enumerate(steps, 1):
        what = f"step {number} ({step.event if isinstance(step, AtIB) else type(step).__name__})"
        run_step(sim, worker, step, names, what)
        settle(sim, want, what, strict=not isinstance(step, Manual))


@pytest.mark.parametrize("steps", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_position_scenario(sim, running_worker, steps):
    play(sim, running_worker, steps)


def test_reversal_on_postgresql(sim, worker_env, own_pg_url):
    handle = WorkerThread({**worker_env, "DATABASE_URL": own_pg_url}).start()
    try:
        play(sim, handle, SCENARIOS["reversal by sell 2x"] + [(price_to(196), Expect(0, []))])
    finally:
        handle.stop()


# a reversal's close that does not fill completely within REVERSAL_FILL_TIMEOUT_SECONDS opens nothing
SLOW_CLOSE: dict[str, list[Step]] = {
    "close not filled in time: nothing opened, the exits back": [
        long10(),
        (PAUSE_FILLS, Expect(10, LONG_EXITS)),
        (Send(alert("sell", 20, tp=5, sl=5), "rejected", r"did not fill completely"), Expect(10, LONG_EXITS)),
    ],
    "close partly filled in time: nothing opened, exits for what is left": [
        long10(),
        (fill_limit(4), Expect(10, LONG_EXITS)),
        (Send(alert("sell", 20, tp=5, sl=5), "rejected", r"did not fill completely"),
         Expect(6, [("SELL", "LMT", 6, 195), ("SELL", "STP", 6, 185)])),
    ],
}  # fmt: skip


@pytest.mark.parametrize("steps", list(SLOW_CLOSE.values()), ids=list(SLOW_CLOSE))
def test_reversal_whose_close_does_not_fill(sim, worker_env, steps):
    handle = WorkerThread({**worker_env, "REVERSAL_FILL_TIMEOUT_SECONDS": "2"}).start()
    try:
        play(sim, handle, steps)
    finally:
        handle.stop()
