"""IB's own margin figure before an opening order: a what-if order, refused above AvailableFunds.

Before the opening part of a decision goes out (an open from flat, an ``add``, a reversal's new
side; never a close or an exit), the same contract, side, quantity and order type is sent to IB as
a what-if order (``whatIf=True``: IB computes, places nothing). IB answers with the account's
margin before / change / after. The rule:

    IB's ``initMarginChange`` must not exceed the account's ``AvailableFunds``

(AvailableFunds from ib_async's live account subscription, :meth:`Trading.account_figures`; when IB
has not reported it, the what-if's own ``equityWithLoanBefore - initMarginBefore``, and the plan
says which). Refused: ``margin: needs 4,750,000 USD initial, available 998,000 USD (...)`` and
nothing reaches IB. The figures go into ``plan["margin"]`` either way.

Decisions where the issue is silent:

* **A reversal** (long 10 → short 10): IB's what-if is relative to the account as it is now, so a
  what-if of the short 10 alone would be netted against the long 10 (change 0). The what-if
  carries the whole move instead (close + open quantity on the opening side), which is the change
  from the position now to the target. A refused reversal keeps its close and opens nothing
  ("close, then no open"): exits are never blocked by margin (:meth:`MarginCheck.close_only`).
* **A what-if that times out or that IB refuses** (an error instead of figures): the entry is
  refused with the reason (for real money, not knowing the margin is not a yes).
  ``MARGIN_CHECK=off`` skips the check (the plan records ``{"check": "off"}``). A lost connection
  is not a refusal: the job waits for IB and decides again.

The what-if is one IB round trip per entry; it counts against the order pacing like a placement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ib_async import Contract

from worker.decision.numbers import money, qty
from worker.decision.planner import Leg
from worker.decision.positions import Decision
from worker.errors import Refused
from worker.ib.account import AccountFigures

RULE = "IB what-if initMarginChange <= AvailableFunds"
_UNSET = Decimal("1e300")  # IB's UNSET_DOUBLE (1.797e308) and anything near it means "not given"


class MarginRefused(Refused):
    """The opening part needs more initial margin than the account has available."""

    def __init__(self, message: str, plan: dict[str, Any]) -> None:
        super().__init__(message)
        self.plan = plan  # what the alert's plan shows for the refusal (the margin figures)


def describe_order(order: Leg, symbol: str) -> str:
    """``BUY 100,000 AAPL MKT`` / ``SELL 2 MESZ6 LMT 5000.25``."""
    price = order.limit_price if order.limit_price is not None else order.stop_price
    text = f"{order.action} {qty(order.quantity)} {symbol} {order.order_type}"
    return text if price is None else f"{text} {price}"


@dataclass(frozen=True)
class WhatIf:
    """IB's answer to a what-if order (None: IB left the figure unset)."""

    init_margin_change: Decimal | None
    maint_margin_change: Decimal | None = None
    init_margin_before: Decimal | None = None
    init_margin_after: Decimal | None = None
    equity_with_loan_before: Decimal | None = None
    equity_with_loan_after: Decimal | None = None
    commission: Decimal | None = None
    commission_currency: str = ""

    @classmethod
    def from_state(cls, state: Any) -> WhatIf:
        """From ib_async's ``OrderState`` (margin figures are strings there, commissions floats)."""
        return cls(
            init_margin_change=ib_number(state.initMarginChange),
            maint_margin_change=ib_number(state.maintMarginChange),
            init_margin_before=ib_number(state.initMarginBefore),
            init_margin_after=ib_number(state.initMarginAfter),
            equity_with_loan_before=ib_number(state.equityWithLoanBefore),
            equity_with_loan_after=ib_number(state.equityWithLoanAfter),
            commission=ib_number(state.commission),
            commission_currency=state.commissionCurrency or "",
        )


@dataclass(frozen=True)
class MarginCheck:
    """The outcome for one decision: ``plan["margin"]`` and, when refused, the reason."""

    doc: dict[str, Any]
    refused: str = ""

    def close_only(self, decision: Decision) -> Decision:
        """A reversal whose opening part is refused: close, then no open, the reason stated."""
        return replace(decision, target=Decimal(0), reason=f"{decision.reason}; not reversed: {self.refused}")


def ib_number(value: Any) -> Decimal | None:
    """IB's figure as a Decimal; None for empty, NaN or IB's UNSET_DOUBLE."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) >= _UNSET:
        return None
    return number


def what_if_order(decision: Decision, open_legs: list[Leg]) -> Leg | None:
    """Pure: the order to ask IB about, None when the decision opens nothing (a close, an exit).

    The entry leg itself (side, type, prices, trail, time in force), with the quantity of the
    opening part, or for a reversal the whole move (close + open), since IB's what-if nets against
    today's position."""
    entry = next((leg for leg in open_legs if leg.leg == "entry"), open_legs[0] if open_legs else None)
    if entry is None or decision.open_qty <= 0:
        return None
    reversal = decision.position != 0 and decision.position * decision.target < 0
    quantity = decision.open_qty + (decision.close_qty if reversal else Decimal(0))
    return replace(entry, quantity=quantity, transmit=True, parent_leg=None)


def judge(answer: WhatIf, figures: AccountFigures, described: str) -> MarginCheck:
    """Pure: IB's figures against the account's AvailableFunds → the plan's document and verdict."""
    currency = figures.currency or answer.commission_currency or "USD"
    available, available_from = figures.available_funds, "AvailableFunds"
    if (
        available is None
        and answer.equity_with_loan_before is not None
        and answer.init_margin_before is not None
    ):
        available = answer.equity_with_loan_before - answer.init_margin_before
        available_from = "IB what-if equityWithLoanBefore - initMarginBefore (AvailableFunds not reported)"
    doc: dict[str, Any] = {
        "rule": RULE,
        "order": described,
        "currency": currency,
        "init_margin_change": _text(answer.init_margin_change),
        "maint_margin_change": _text(answer.maint_margin_change),
        "init_margin_before": _text(answer.init_margin_before),
        "init_margin_after": _text(answer.init_margin_after),
        "equity_with_loan_after": _text(answer.equity_with_loan_after),
        "commission": _text(answer.commission),
        "available_funds": _text(available),
        "available_from": available_from,
    }
    change = answer.init_margin_change
    if change is None:
        reason = f"margin: IB's what-if for {described} gave no initMarginChange; nothing sent"
    elif available is None:
        reason = "margin: the account's AvailableFunds is unknown (IB has not reported it); nothing sent"
    elif change > available:
        reason = (f"margin: needs {money(change)} {currency} initial, available {money(available)} {currency} "
                  f"(IB what-if initMarginChange for {described} against {available_from.split(' (')[0]})")  # fmt: skip
    else:
        return MarginCheck({**doc, "verdict": "ok"})
    return MarginCheck({**doc, "verdict": "refused", "reason": reason}, refused=reason)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class MarginGate:
    """Asks IB's what-if for the opening part of a decision (from the job thread, on the IB loop)."""

    def __init__(self, conn: Any, trading: Any, *, enabled: bool = True, timeout: float = 5.0) -> None:
        self.conn = conn
        self.trading = trading
        self.enabled = enabled  # MARGIN_CHECK
        self.timeout = timeout  # MARGIN_CHECK_TIMEOUT_SECONDS

    def check(
        self, contract: Contract, symbol: str, decision: Decision, open_legs: list[Leg]
    ) -> MarginCheck | None:
        """None for a decision that opens nothing. Refused, an opening part raises
        :class:`MarginRefused`; a reversal's comes back with ``refused`` set (it still closes)."""
        order = what_if_order(decision, open_legs)
        if order is None:
            return None
        described = describe_order(order, symbol)
        if not self.enabled:
            return MarginCheck({"check": "off", "rule": "MARGIN_CHECK=off", "order": described})
        try:
            state, errors, figures = self.conn.call(self._ask(contract, order), timeout=self.timeout + 5)
        except TimeoutError:
            state, errors, figures = None, [], None
        if state is None:
            why = "; ".join(f"IB error {code} {text}" for code, text in errors) or (
                f"no answer within {self.timeout:g}s"
            )
            reason = f"margin: IB's what-if for {described} failed ({why}); nothing sent (MARGIN_CHECK=off skips the check)"
            result = MarginCheck(
                {"rule": RULE, "order": described, "verdict": "refused", "reason": reason}, reason
            )
        else:
            result = judge(WhatIf.from_state(state), figures, described)
        if result.refused and decision.close_qty <= 0:
            raise MarginRefused(result.refused, {"kind": "refused", "margin": result.doc,
                                                 "legs": [leg.to_json() for leg in open_legs]})  # fmt: skip
        return result

    async def _ask(self, contract: Contract, order: Leg) -> tuple[Any, list[tuple[int, str]], AccountFigures]:
        """On the IB loop: the what-if (IB's OrderState, or None with IB's errors) and the account's
        figures at the same moment."""
        trading = self.trading
        self.conn.require_connected()
        await self.conn.pacer.acquire(1)  # a what-if is a placeOrder message: same pacing
        figures = trading.account_figures()
        ib_order = trading.order_for(order, ref="")  # the order as it would be sent, trail included
        errors: list[tuple[int, str]] = []

        def collect(req_id: int, code: int, text: str, about: Any = None) -> None:
            if about is not None and about.conId == contract.conId and not (2100 <= code < 2200):
                errors.append((code, " ".join(text.split())))

        trading.ib.errorEvent += collect
        try:
            state = await asyncio.wait_for(trading.ib.whatIfOrderAsync(contract, ib_order), self.timeout)
        except TimeoutError:
            state = None
        finally:
            trading.ib.errorEvent -= collect
        if state is None or isinstance(state, list):  # an error ends the request with no OrderState
            return None, errors, figures
        return state, errors, figures
