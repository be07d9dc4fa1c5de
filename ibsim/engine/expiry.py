"""The options' expiry at the session's end, as IB and the OCC settle it: the working orders on an
expiring option are cancelled, then every position in it ends. In the money by
:data:`EXERCISE_THRESHOLD` or more against the underlying's ibsim price, a long position is
exercised and a short one assigned: the underlying's position changes by multiplier × contracts
at the strike (a call buys for the long, sells for the short; a put the other way round).
Otherwise the option expires worthless.

Simulator policies (documented in ibsim/README.md):

* an option expires at 16:00 New York on its expiry day, by the engine's clock (SPY and QQQ too);
* the option's position is closed at 0 (its premium becomes realised P&L) and the underlying's
  trade is booked at the strike, both without commission; cash moves by strike × shares;
* every in-the-money short is assigned in full (no random assignment, no early exercise, no
  do-not-exercise instructions);
* clients hear of it through position, portfolio, account and P&L updates only: no execDetails
  and no commissionReport (IB reports exercises and assignments in its statements, not as API
  executions), and no order: working orders on the option end Cancelled with error 202
  ``Order Canceled - reason:Expired``, as a DAY order at the session's end.
"""

from __future__ import annotations

import datetime as dt

from ibsim.catalog.instruments import Instrument
from ibsim.engine.events import Event, PositionEvent
from ibsim.engine.fills import Fills
from ibsim.engine.state import EngineState
from ibsim.model import Expiration

#: OCC's automatic exercise: in the money by a cent or more
EXERCISE_THRESHOLD = 0.01
#: the reason of the 202 a working order on an expired option gets
EXPIRED_REASON = "Expired"


class OptionExpiry:
    """Finds the options due to expire and settles them (orders cancelled, positions ended)."""

    def __init__(self, state: EngineState, fills: Fills) -> None:
        self.state = state
        self.fills = fills

    def due(self, through: dt.date | None = None) -> list[Instrument]:
        """The options with positions or working orders that expire: by ``through`` (every expiry
        on or before that day), else those whose session end has passed by the engine's clock."""
        state = self.state
        if state.catalog.options is None:
            return []
        held = {cid for (_, cid), pos in state.positions.items() if pos.quantity}
        day = f"{through:%Y%m%d}" if through is not None else ""
        out = []
        for con_id in sorted(held.union(state.book.working_con_ids())):
            inst = state.catalog.get(con_id)
            if inst is None or inst.sec_type != "OPT":
                continue
            if (inst.last_trade_date <= day) if through is not None else state.market.expired(inst):
                out.append(inst)
        return out

    def expire(self, through: dt.date | None = None) -> list[Event]:
        """Settle every option :meth:`due` returns: its working orders cancelled, then each
        account's position exercised, assigned or expired (noted in ``state.expirations``)."""
        events: list[Event] = []
        for inst in self.due(through):
            for order in self.state.book.working_on(inst.con_id):
                if order.is_active:  # a parent's cancel may have taken its child already
                    events += self.fills.cancel(order, EXPIRED_REASON)
            for account in self.state.ledger.holders(inst.con_id):
                events += self._settle(account, inst)
        return events

    def _settle(self, account: str, inst: Instrument) -> list[Event]:
        """One account's position in an expiring option ends."""
        state = self.state
        ledger, market = state.ledger, state.market
        quantity = ledger.quantity(account, inst.con_id)
        under = market.instrument(inst.under_con_id)
        under_price = market.price(under.con_id)
        call = inst.right == "C"
        intrinsic = (under_price - inst.strike) if call else (inst.strike - under_price)
        in_the_money = round(intrinsic, 6) >= EXERCISE_THRESHOLD
        fx = market.fx_to_usd(inst.currency)
        ledger.book(account, inst, quantity < 0, abs(quantity), 0.0, 0.0, fx)
        events: list[Event] = [PositionEvent(account, inst.con_id)]
        shares = 0.0
        if in_the_money:
            # a long call and a short put take the shares, a long put and a short call deliver them
            shares = round(quantity * inst.mult * (1.0 if call else -1.0), 10)
            ledger.book(account, under, shares > 0, abs(shares), inst.strike, 0.0, fx)
            events.append(PositionEvent(account, under.con_id))
        outcome = "expired" if not in_the_money else "exercised" if quantity > 0 else "assigned"
        state.expirations.append(
            Expiration(
                account=account,
                con_id=inst.con_id,
                symbol=inst.symbol,
                local_symbol=inst.local_symbol,
                right=inst.right,
                strike=inst.strike,
                expiry=inst.last_trade_date,
                position=quantity,
                outcome=outcome,
                under_con_id=under.con_id,
                under_price=under_price,
                shares=shares,
                time=state.clock(),
            )
        )
        return events
