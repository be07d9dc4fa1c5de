"""Which option contract an alert on the underlying acts on, and the order it becomes (pure, typed).

An alert with ``optionType`` names the underlying (``AAPL``). Before the usual decision runs
(worker/decision/core.py), the worker turns it into an alert on ONE option contract:

* **the contract** (:func:`target_of`): an option position already held on the underlying is
  the one a signal meets, the way a stock alert meets the stock's position: an ``exit`` (or
  ``sentiment: flat``, or ``positionSize: 0``) closes it; a signal whose right is the one held
  closes, adds or is refused by the stock rules on that contract (``already long``...). With
  nothing held, the contract is chosen from IB's chain (worker/decision/option_choice.py).
* **the action on it**: the direction table (worker/decision/options.py): ``buy`` with ``put`` is
  a SELL of puts, ``sell`` with ``both`` a BUY of puts, and so on.
* **the price** (:func:`option_payload`): an entry is a marketable limit at the option's quote
  (worker/decision/option_prices.py), refused when the spread is too wide, and its take-profit
  and stop-loss are measured on the premium. The alert's ``price``, ``limitPrice`` and
  ``stopPrice`` are the underlying chart's and are not used for the option.

A signal that opens the other right while one option is held (``sell`` with ``both`` while long
calls) is a reversal (:class:`Reverse`): the option held is closed first, by an exit alert of its
own (worker/execution/option_reversal.py), then the new right is chosen and opened.

An ``exit`` while several options are held on the underlying closes each (:class:`CloseAll`). A
``positionSize`` is the strategy's position on the underlying: its sign picks the signal (positive:
``buy``), its size the contracts, and the option's signed target follows the direction table
(``positionSize: 3`` with ``put`` is short 3 puts).

Not made yet, refused with its reason: a signal while options of both rights are held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from core.payload import AlertPayload, StopLoss, TakeProfit
from worker.decision.numbers import price as fmt_price
from worker.decision.option_choice import OptionChoice, OptionRefusal, strike_text
from worker.decision.option_prices import EntryLimit, PremiumExits
from worker.decision.options import Direction, OptionRequest, Right, direction

#: the time (the exchange's, New York for US options) after which no position is opened in an
#: option that expires that day; OPTION_LAST_ENTRY_TIME overrides it
DEFAULT_LAST_ENTRY = time(15, 0)


@dataclass(frozen=True)
class HeldOption:
    """An option position on the underlying (IB's report plus our executions since)."""

    con_id: int
    right: Right
    expiry: date
    strike: Decimal
    position: Decimal  # signed contracts
    local_symbol: str = ""

    def describe(self) -> str:
        kind = "call" if self.right == "C" else "put"
        held = "long" if self.position > 0 else "short"
        size = f"{abs(self.position).normalize():f}"
        return f"{held} {size} {self.local_symbol or f'{kind} {strike_text(self.strike)} {self.expiry}'}"


@dataclass(frozen=True)
class UseHeld:
    """Act on the option held: ``action`` on its contract (the stock rules decide the rest)."""

    held: HeldOption
    action: str
    why: str
    position_size: Decimal | None = None  # positionSize: the option's signed target, in contracts


@dataclass(frozen=True)
class ChooseNew:
    """Nothing is held: choose a contract of ``direction.right`` and open it by ``direction.side``."""

    direction: Direction
    why: str
    position_size: Decimal | None = None
    signal: str = "buy"  # the underlying's signal the direction came from (buy: bullish)

    @property
    def action(self) -> str:
        return self.direction.side.lower()


@dataclass(frozen=True)
class Reverse:
    """The signal opens the other right while one option is held (``sell`` with ``both`` while
    long calls): close the option held first, then choose and open ``direction``'s."""

    held: HeldOption
    direction: Direction
    why: str
    position_size: Decimal | None = None


@dataclass(frozen=True)
class CloseAll:
    """An exit while several options are held on the underlying: each is closed by an exit alert
    of its own (worker/execution/option_reversal.py)."""

    held: tuple[HeldOption, ...]
    why: str


@dataclass(frozen=True)
class NothingHeld:
    """An exit with no option held on the underlying: nothing to send."""

    reason: str


Target = UseHeld | ChooseNew | Reverse | CloseAll | NothingHeld | OptionRefusal


def _exits(payload: AlertPayload) -> bool:
    return (
        payload.action == "exit"
        or payload.sentiment == "flat"
        or (payload.position_size is not None and payload.position_size == 0)
    )


def _right_name(right: Right, many: bool = True) -> str:
    return ("call" if right == "C" else "put") + ("s" if many else "")


def _listed(held: Sequence[HeldOption]) -> str:
    return ", ".join(h.describe() for h in held)


def target_of(
    payload: AlertPayload, request: OptionRequest, symbol: str, held: Sequence[HeldOption]
) -> Target:
    """The contract the alert acts on and how (see the module docstring)."""
    held = [h for h in held if h.position]
    if _exits(payload):
        if not held:
            return NothingHeld(f"exit: no open option position on {symbol}")
        if len(held) > 1:
            return CloseAll(
                tuple(held), f"exit closes the {len(held)} option positions held: {_listed(held)}"
            )
        return UseHeld(held[0], "exit", f"exit closes the option held: {held[0].describe()}")
    size = payload.position_size
    if size is not None:  # its sign is the strategy's side on the underlying, its size contracts
        return _toward(request, symbol, held, "buy" if size > 0 else "sell", abs(size))
    if payload.action == "add":
        if len(held) != 1:
            what = "no option" if not held else f"{len(held)} options ({_listed(held)})"
            return OptionRefusal(None, f"add: {what} held on {symbol}; add grows one option position")
        return UseHeld(held[0], "add", f"add grows the option held: {held[0].describe()}")
    if payload.action not in ("buy", "sell"):
        return OptionRefusal(None, f"action {payload.action} does not trade options")
    return _toward(request, symbol, held, payload.action, None)


def _toward(
    request: OptionRequest, symbol: str, held: list[HeldOption], signal: str, size: Decimal | None
) -> Target:
    """A signal (or a ``positionSize`` of ``size`` contracts on its side) met with the options held."""
    way = direction(request.option_type, signal)  # type: ignore[arg-type]
    target = None if size is None else (size if way.side == "BUY" else -size)
    same = [h for h in held if h.right == way.right]
    other = [h for h in held if h.right != way.right]
    if len(other) == 1 and not same:
        return Reverse(other[0], way, (
            f"{way.rule}; {other[0].describe()} is closed first (a reversal from "
            f"{_right_name(other[0].right)} to {_right_name(way.right)})"
        ), target)  # fmt: skip
    if len(same) > 1 or other:
        return OptionRefusal(None, (
            f"{symbol}: {len(held)} option positions are open ({_listed(held)}); a signal meets one "
            "option position: exit the others by their OCC tickers"
        ))  # fmt: skip
    if same:
        why = f"{way.rule}; it meets the option held: {same[0].describe()}"
        return UseHeld(same[0], way.side.lower(), why, target)
    return ChooseNew(way, way.rule, target, signal)


def expiry_refusal(
    expiry: date, now: datetime, last_entry: time = DEFAULT_LAST_ENTRY
) -> OptionRefusal | None:
    """No new position in an option that expires today after ``last_entry`` (``now`` is the
    exchange's local time); None when it may be opened."""
    if expiry < now.date():
        return OptionRefusal("expiration", f"the option expired on {expiry}")
    if expiry == now.date() and now.time() >= last_entry:
        return OptionRefusal("expiration", (
            f"the option expires today and it is {now:%H:%M} at the exchange, past "
            f"{last_entry:%H:%M} (OPTION_LAST_ENTRY_TIME): no new position in it"
        ))  # fmt: skip
    return None


def option_payload(
    payload: AlertPayload,
    action: str,
    entry: EntryLimit | None,
    exits: PremiumExits | None,
    position_size: Decimal | None = None,
) -> AlertPayload:
    """The alert as an order on the option: ``action``, a marketable limit at ``entry`` (None: an
    exit, sent as the stock rules send it), the exits on the premium (None: none, e.g. a close)."""
    changes: dict[str, Any] = {
        "action": action, "price": None, "stop_price": None, "trail_amount": None, "trail_percent": None,
        "sentiment": None if payload.sentiment != "flat" else "flat",
        "position_size": payload.position_size if action == "exit" else position_size,
    }  # fmt: skip
    if entry is not None:
        changes.update(order_type="limit", limit_price=entry.price)
    else:
        changes.update(order_type="market", limit_price=None)
    take_profit = exits.take_profit if exits is not None else None
    stop_loss = exits.stop_loss if exits is not None else None
    changes["take_profit"] = TakeProfit(limit_price=take_profit) if take_profit is not None else None
    changes["stop_loss"] = StopLoss(stop_price=stop_loss) if stop_loss is not None else None
    return replace(payload, **changes)


def plan_doc(
    target: UseHeld | ChooseNew,
    choice: OptionChoice | None,
    entry: EntryLimit | None,
    exits: PremiumExits | None,
) -> dict[str, Any]:
    """``plan["option"]``: the contract, the rule that led to it, and how the price was set."""
    doc: dict[str, Any] = {"rule": target.why, "action": target.action}
    if isinstance(target, UseHeld):
        doc["held"] = {"conId": target.held.con_id, "position": f"{target.held.position.normalize():f}",
                       "contract": target.held.describe()}  # fmt: skip
    if choice is not None:
        doc["contract"] = choice.describe()
        doc["choice"] = choice.to_json()
        doc["why"] = choice.why
    if entry is not None:
        doc["entry"] = {"limit": fmt_price(entry.price), "mid": fmt_price(entry.mid), "why": entry.why}
    if exits is not None and exits.notes:
        doc["exit_notes"] = list(exits.notes)
    return doc
