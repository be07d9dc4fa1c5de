"""The risk gate through a real worker thread and ibsim: what reaches IB (ibsim's state), the
alert's final state and reason, the plan's numbers, the daily-loss halt and its flatten."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from support import wait_until
from worker_helpers import WorkerThread, alert_ends

from core.models import Notice
from core.services import get_alert
from worker.risk.state import day_bounds, realized_today, trading_day

RISK = """\
defaults:
  max_order_notional: 1,000,000
strategies:
  trend:
    max_order_notional: 50,000
  paper:
    dry_run: true
"""
DAILY = """\
defaults:
  daily_loss_limit: 2000
  flatten_on_daily_loss: true
"""


@contextmanager
def running(worker_env: dict[str, str], tmp_path: Path, text: str, **attrs) -> Iterator[WorkerThread]:
    """A worker thread with ``text`` as its risk file (``attrs`` set on the worker; a dotted name
    on one of its parts), stopped after."""
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    handle = WorkerThread({**worker_env, "RISK_FILE": str(path)})
    for name, value in attrs.items():
        *parts, last = name.split("__")
        target = handle.worker
        for part in parts:
            target = getattr(target, part)
        assert hasattr(target, last), f"the worker has no {name.replace('__', '.')}"
        setattr(target, last, value)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def bought_by_hand(sim, handle: WorkerThread, quantity: int) -> None:
    """AAPL bought in TWS at 190, once the worker has heard of the position."""
    sim.trade(quantity, symbol="AAPL", price=190.0)
    wait_until(lambda: handle.worker.trading.position_of(_con_id(handle, sim)) == quantity)


def refused_reversal_of_a_long_10(sim, handle: WorkerThread, alert: dict) -> str:
    """A reversal whose opening part is refused: the close goes through, nothing else reaches IB.
    The alert's reason."""
    sim.set_price("AAPL", 190.0)
    bought_by_hand(sim, handle, 10)
    rev = alert_ends(handle.ctx, alert, "rejected")
    assert position(sim) == 0
    assert [o["orderRef"].rsplit(":", 1)[1] for o in orders_of(sim, rev)] == ["close"]
    return get_alert(handle.ctx.sessions, rev)["reason"]


def position(sim, symbol: str = "AAPL") -> float:
    return sum(p["position"] for p in sim.state()["positions"] if p["symbol"] == symbol)


def orders_of(sim, alert_id: str) -> list[dict]:
    return [o for o in sim.state()["orders"] if alert_id in o["orderRef"]]


def test_a_notional_refusal_sends_nothing_and_its_exit_is_never_blocked(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path, RISK) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        big = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 300, "price": 190, "strategy": "trend"},
                         "rejected")  # fmt: skip
        alert = get_alert(ctx.sessions, big)
        assert alert["reason"] == (
            'risk: max_order_notional 50,000 USD (strategy "trend") exceeded: 300 AAPL × 190.00 = 57,000 USD'
        )
        assert orders_of(sim, big) == [] and position(sim) == 0
        check = next(c for c in alert["plan"]["risk"]["checks"] if c["rule"] == "max_order_notional")
        assert (check["limit"], check["value"], check["passed"]) == ("50000", "57000", False)
        assert alert["plan"]["refused_legs"][0]["quantity"] == "300"

        # a position as big as the refused entry (bought by hand): its exit goes out all the same
        bought_by_hand(sim, handle, 300)
        out = alert_ends(ctx, {"ticker": "AAPL", "action": "exit", "strategy": "trend"}, "filled")
        assert position(sim) == 0
        assert get_alert(ctx.sessions, out)["plan"]["risk"]["checks"] == []


def test_a_refused_open_of_a_reversal_still_closes(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path, RISK) as handle:
        rev = {"ticker": "AAPL", "action": "sell", "quantity": 310, "price": 190, "strategy": "trend"}
        reason = refused_reversal_of_a_long_10(sim, handle, rev)
        assert reason == ('risk: max_order_notional 50,000 USD (strategy "trend") exceeded: 300 AAPL × 190.00 '
                          "= 57,000 USD; the close went through: the position is flat, not reversed")  # fmt: skip


def test_dry_run_records_the_plan_and_sends_nothing(sim, worker_env, tmp_path):
    with running(worker_env, tmp_path, RISK) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        paper = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 52, "orderType": "market", "price": 190,
                                 "takeProfit": {"limitPrice": 195}, "stopLoss": {"stopPrice": 188}, "strategy": "paper"},
                           "cancelled")  # fmt: skip
        alert = get_alert(ctx.sessions, paper)
        assert alert["reason"] == "dry run: would send BUY 52 AAPL MKT + TP 195.00 + SL 188.00"
        assert [leg["leg"] for leg in alert["plan"]["legs"]] == ["entry", "tp", "sl"]
        assert alert["plan"]["risk"]["rules"]["dry_run"] is True
        assert alert["plan"]["position"]["target"] == "52"
        assert orders_of(sim, paper) == [] and position(sim) == 0

        # a resting entry of a live strategy: the paper strategy's cancel and exit leave it working
        resting = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 5, "orderType": "limit",
                                   "limitPrice": 150}, "submitted")  # fmt: skip
        for action in ("cancel", "exit"):
            ignored = alert_ends(ctx, {"ticker": "AAPL", "action": action, "strategy": "paper"}, "cancelled")
            assert get_alert(ctx.sessions, ignored)["reason"].startswith("dry run: ")
        assert [o["status"] for o in orders_of(sim, resting)] in (["Submitted"], ["PreSubmitted"])


COUNTS = """\
strategies:
  crowded:
    max_open_orders: 4
  busy:
    max_orders_per_minute: 1
  wide:
    max_gross_exposure: 2500
"""


def test_open_orders_orders_per_minute_and_gross_exposure_are_read_from_ib_and_the_database(
    sim, worker_env, tmp_path
):
    with running(worker_env, tmp_path, COUNTS) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        sim.set_price("MSFT", 100.0)
        first = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190,
                                 "takeProfit": {"amount": 5}, "stopLoss": {"amount": 3}, "strategy": "crowded"},
                           "filled")  # fmt: skip
        wait_until(
            lambda: (
                len([o for o in orders_of(sim, first) if o["status"] in ("PreSubmitted", "Submitted")]) == 2
            )
        )
        reasons = {}
        for strategy in ("crowded", "busy", "wide"):
            alert_id = alert_ends(ctx, {"ticker": "MSFT", "action": "buy", "quantity": 10, "price": 100,
                                        "takeProfit": {"amount": 5}, "stopLoss": {"amount": 3}, "strategy": strategy},
                                  "rejected")  # fmt: skip
            reasons[strategy] = get_alert(ctx.sessions, alert_id)["reason"]
            assert orders_of(sim, alert_id) == []
        assert reasons["crowded"] == ('risk: max_open_orders 4 (strategy "crowded") exceeded: 2 working at IB '
                                   "(2 tv2ib, 0 other) + 3 of this alert = 5")  # fmt: skip
        assert reasons["busy"].startswith('risk: max_orders_per_minute 1 (strategy "busy") exceeded: 1 opening '
                                       "order(s) sent for account "), reasons["busy"]  # fmt: skip
        assert reasons["wide"] == ('risk: max_gross_exposure 2,500 USD (strategy "wide") exceeded: other positions '
                                "1,900 + MSFT after this order 1,000 = 2,900 USD")  # fmt: skip


def test_daily_loss_halts_flattens_alarms_and_lifts_at_the_next_trading_day(sim, worker_env, tmp_path):
    now = [datetime.now(UTC)]
    with running(worker_env, tmp_path, DAILY, housekeeping__interval=0.2) as handle:
        handle.worker.risk.clock = lambda: now[0]
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        bought_by_hand(sim, handle, 100)
        sim.set_price("AAPL", 165.0)  # unrealized -2,500: the periodic check halts and flattens
        wait_until(lambda: position(sim) == 0, timeout=20)
        wait_until(lambda: _notices(ctx, "daily_loss") != [], timeout=10)
        text = _notices(ctx, "daily_loss")[0]
        assert "Daily loss limit reached" in text and "flatten_on_daily_loss" in text, text
        # the flatten's fill and its realized PnL are recorded a moment after IB reports them
        account = handle.worker.trading.account

        def realized() -> Decimal:
            with ctx.sessions() as session:
                return realized_today(session, account, now[0])

        wait_until(lambda: realized() < -2000, timeout=10)

        refused = alert_ends(
            ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 165}, "rejected"
        )
        reason = get_alert(ctx.sessions, refused)["reason"]
        day = trading_day(now[0])
        assert reason.startswith("risk: daily_loss_limit 2,000 USD (defaults) reached"), reason
        assert f"entries halted until {day.isoformat()} 17:00 America/New_York" in reason, reason
        # the flatten sold 100 at 165 what cost 190: IB's realized PnL on its fill, recorded, is the loss now
        assert re.search(
            r"today's PnL -2,5\d\d(\.\d\d)? USD \(realized -2,5\d\d(\.\d\d)? \+ unrealized 0\)", reason
        ), reason
        assert orders_of(sim, refused) == []

        now[0] = day_bounds(day)[1] + timedelta(minutes=1)  # 17:01 New York: the next trading day
        alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 165}, "filled")
        assert position(sim) == 1
        assert len(_notices(ctx, "daily_loss")) == 1  # one alarm for the day


def _con_id(handle: WorkerThread, sim) -> int:
    return next(p["conId"] for p in sim.state()["positions"] if p["symbol"] == "AAPL")


def _notices(ctx, kind: str) -> list[str]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Notice.text).where(Notice.kind == kind)))


def test_a_reversal_whose_opening_part_cannot_be_planned_still_closes(sim, worker_env, tmp_path):
    """MAX_ORDER_QUANTITY (a plan refusal, not the risk file) refuses the reversal's short of 300,
    never its close: the long is closed and the alert ends rejected saying so."""
    # a limit far away (a risk file in use sets at least one rule: an empty one is a load error)
    env = {**worker_env, "MAX_ORDER_QUANTITY": "100"}
    with running(env, tmp_path, "defaults:\n  max_order_notional: 1e9\n") as handle:
        rev = {"ticker": "AAPL", "action": "sell", "quantity": 310, "price": 190}
        reason = refused_reversal_of_a_long_10(sim, handle, rev)
        assert re.match(r"quantity 300(\.0)? is above MAX_ORDER_QUANTITY 100", reason), reason
        assert reason.endswith("the close went through: the position is flat, not reversed"), reason


def test_a_strategys_default_sizing_from_the_risk_file_sizes_an_alert_without_quantity(
    sim, worker_env, tmp_path
):
    text = "strategies:\n  trend:\n    default_sizing: {quantity_type: dollar_amount, quantity: 10000}\n"
    with running(worker_env, tmp_path, text) as handle:
        ctx = handle.ctx
        sim.set_price("AAPL", 190.0)
        sized = alert_ends(
            ctx, {"ticker": "AAPL", "action": "buy", "price": 190, "strategy": "trend"}, "filled"
        )
        assert [o["quantity"] for o in orders_of(sim, sized)] == [52]  # 10,000 / 190 = 52.63 -> 52
        plan = get_alert(ctx.sessions, sized)["plan"]
        assert plan["sizing"]["source"] == "strategy default" and plan["sizing"]["quantity"] == "52"
        # another strategy has no default: an alert without quantity is refused, as before
        other = alert_ends(
            ctx, {"ticker": "MSFT", "action": "buy", "price": 400, "strategy": "other"}, "rejected"
        )
        assert orders_of(sim, other) == []


LAYERS = """\
defaults:
  deny: [GME, INTC]
strategies:
  tiny:
    max_order_quantity: 1
  paper:
    dry_run: true
accounts:
  DU1234567:                      # ibsim's account: the defaults block pasted here
    dry_run: false
    deny: [TSLA]
    max_order_quantity: 1000
"""


def test_the_account_section_cannot_undo_a_strategys_rules_and_an_unknown_strategy_is_warned(
    sim, worker_env, tmp_path
):
    """Issue 16, item 3, as the probe sent it: a paper strategy stays on paper, INTC stays denied,
    TINY is tiny; a strategy the file does not know goes on with a warning in the plan and a notice."""
    with running(worker_env, tmp_path, LAYERS) as handle:
        ctx = handle.ctx
        for symbol, price in (("AAPL", 190.0), ("INTC", 20.0)):
            sim.set_price(symbol, price)
        paper = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 2, "price": 190, "strategy": "paper"},
                           "cancelled")  # fmt: skip
        assert get_alert(ctx.sessions, paper)["reason"].startswith("dry run: would send BUY 2 AAPL")
        intc = alert_ends(ctx, {"ticker": "INTC", "action": "buy", "quantity": 2, "price": 20}, "rejected")
        assert get_alert(ctx.sessions, intc)["reason"] == (
            'risk: deny list (defaults + account "DU1234567"): INTC is on it'
        )
        tiny = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 190, "strategy": "TINY"},
                          "rejected")  # fmt: skip
        assert (
            get_alert(ctx.sessions, tiny)["reason"]
            == 'risk: max_order_quantity 1 (strategy "tiny") exceeded: BUY 5 AAPL'
        )
        assert orders_of(sim, paper) == orders_of(sim, intc) == orders_of(sim, tiny) == []

        typo = alert_ends(ctx, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 190, "strategy": "tinny"},
                          "filled")  # fmt: skip
        warning = (f'strategy "tinny" is not in the risk file {tmp_path / "risk.yaml"} (it has paper, tiny): '
                   "no strategy section applies, only defaults and the account's")  # fmt: skip
        assert get_alert(ctx.sessions, typo)["plan"]["risk"]["notes"] == [warning]
        wait_until(lambda: _notices(ctx, "unknown_strategy") != [], timeout=10)
        (notice,) = _notices(ctx, "unknown_strategy")
        assert "Strategy not in the risk file" in notice and "tinny" in notice and typo in notice
