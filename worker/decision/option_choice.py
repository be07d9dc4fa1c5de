"""The option contract an alert on the underlying trades, chosen from IB's chain (pure, typed).

:func:`choose` takes the request (worker/decision/options.py), the chain as IB lists it (expiries,
the strikes of each, and the quotes and model greeks the worker fetched), the underlying's price,
the exchange's date and the signal, and returns an :class:`OptionChoice` that explains itself (the
underlying's price, the at-the-money strike, the candidates and the rule that picked one) or an
:class:`OptionRefusal` naming the alert field and why.

The rules, in order:

* **expiry**: the first listed expiry on or after ``expiration`` (a date, or today plus the
  relative time), with its days to expiry inside ``dteMin`` / ``dteMax`` when given. Without
  ``expiration`` the window alone picks: the first expiry at least ``dteMin`` days out;
* **right and side**: the direction table (:data:`worker.decision.options.DIRECTIONS`);
* **at the money**: the listed strike nearest the underlying's price (halfway: the lower one);
* **strike**: ``strikePrice`` exactly; else ``intrinsicValue`` with ``strikesAway`` (default 1):
  the N-th listed strike past the at-the-money one, on the side where that right is in (or out
  of) the money (a call is in the money below the price, a put above). Counting from the
  at-the-money strike, never from the price, makes every pick really in (or out of) the money and
  never the at-the-money strike itself; else ``delta``: the strike whose model delta is nearest the
  target in size (a tie: the one nearer the money); else the at-the-money strike. ``strikeCount``
  limits the scan to the at-the-money strike and ``strikeCount // 2`` strikes on each side of it
  (:func:`scan_window`; :data:`DELTA_STRIKE_COUNT` for a delta without it), so any ``strikesAway``
  up to half of it is inside the scan, as TradersPost says.

Pure: the worker calls it through worker/execution/option_orders.py (docs/contracts.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from worker.decision.numbers import price as fmt_price
from worker.decision.options import OptionRequest, Right, Side, Signal, direction

DELTA_STRIKE_COUNT = 10  # strikes scanned for a delta target when strikeCount is not given
_LISTED_SHOWN = 6  # expiries or strikes named in a refusal


@dataclass(frozen=True)
class OptionQuote:
    """What IB said about one contract: its quote and its model delta (None: not known)."""

    bid: Decimal | None = None
    ask: Decimal | None = None
    delta: Decimal | None = None  # IB's model greeks: a call's is positive, a put's negative


@dataclass(frozen=True)
class OptionChain:
    """An underlying's options as IB lists them: the strikes of each expiry, the rights traded, and
    the quotes known, keyed by ``(expiry, strike, right)``."""

    symbol: str
    strikes: Mapping[date, Sequence[Decimal]]
    rights: frozenset[Right] = frozenset({"C", "P"})
    quotes: Mapping[tuple[date, Decimal, Right], OptionQuote] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionRefusal:
    """Why no contract (or no price) was chosen; ``field`` is the alert field it is about."""

    field: str | None
    reason: str


@dataclass(frozen=True)
class OptionChoice:
    """The contract chosen, the order that opens it, and why (a sentence for the plan)."""

    symbol: str
    expiry: date
    strike: Decimal
    right: Right
    side: Side
    days_to_expiry: int
    underlying_price: Decimal
    atm_strike: Decimal
    candidates: tuple[Decimal, ...]
    rule: str  # strikePrice | intrinsicValue | delta | atm
    why: str
    delta: Decimal | None = None

    def describe(self) -> str:
        """``AAPL 2026-08-21 call 190``."""
        return f"{self.symbol} {self.expiry.isoformat()} {'call' if self.right == 'C' else 'put'} {strike_text(self.strike)}"

    def to_json(self) -> dict[str, Any]:
        """The plan's record of the choice (numbers as text, exact)."""
        return {
            "symbol": self.symbol, "expiry": self.expiry.isoformat(), "strike": str(self.strike),
            "right": self.right, "side": self.side, "daysToExpiry": self.days_to_expiry,
            "underlyingPrice": str(self.underlying_price), "atmStrike": str(self.atm_strike),
            "candidates": [str(s) for s in self.candidates], "rule": self.rule, "why": self.why,
            "delta": None if self.delta is None else str(self.delta),
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OptionChoice:
        """Back from :meth:`to_json`."""
        delta = doc.get("delta")
        return cls(
            symbol=str(doc["symbol"]), expiry=date.fromisoformat(doc["expiry"]), strike=Decimal(doc["strike"]),
            right=doc["right"], side=doc["side"], days_to_expiry=int(doc["daysToExpiry"]),
            underlying_price=Decimal(doc["underlyingPrice"]), atm_strike=Decimal(doc["atmStrike"]),
            candidates=tuple(Decimal(s) for s in doc["candidates"]), rule=str(doc["rule"]),
            why=str(doc["why"]), delta=None if delta is None else Decimal(delta),
        )  # fmt: skip


def strike_text(strike: Decimal) -> str:
    """``190`` / ``187.50`` / ``0.125``: whole strikes bare, others with at least two decimals."""
    return str(int(strike)) if strike == strike.to_integral_value() else fmt_price(strike)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _window_text(request: OptionRequest) -> str:
    low, high = request.dte_min, request.dte_max
    if low is not None and high is not None:
        return f"{low} to {high} days to expiry (dteMin, dteMax)"
    if low is not None:
        return f"at least {low} days to expiry (dteMin)"
    return f"at most {high} days to expiry (dteMax)"


def pick_expiry(
    request: OptionRequest, symbol: str, expiries: Sequence[date], today: date
) -> tuple[date, str] | OptionRefusal:
    """The expiry and a sentence saying why, or a refusal naming ``expiration`` (or the window)."""
    target, asked = today, ""
    if request.expiration is not None:
        target = request.expiration.target(today)
        if target < today:
            return OptionRefusal(
                "expiration", f"expiration {target.isoformat()} is before today ({today.isoformat()})"
            )
        asked = f"on or after {target.isoformat()} (expiration {request.expiration.describe()})"
    windowed = request.dte_min is not None or request.dte_max is not None
    low = request.dte_min or 0
    high = request.dte_max if request.dte_max is not None else None
    listed = sorted(e for e in set(expiries) if e >= today)
    for expiry in listed:
        dte = (expiry - today).days
        if expiry >= target and dte >= low and (high is None or dte <= high):
            parts = [asked] if asked else []
            if windowed:
                parts.append(f"with {_window_text(request)}")
            return expiry, f"expiry {expiry.isoformat()}, {dte} days out: the first listed " + " ".join(parts)
    field_name = (
        "expiration"
        if request.expiration is not None
        else ("dteMin" if request.dte_min is not None else "dteMax")
    )
    wanted = " and ".join(p for p in (asked, f"with {_window_text(request)}" if windowed else "") if p)
    if not listed:
        return OptionRefusal(field_name, f"IB lists no {symbol} option expiring today or later")
    shown = ", ".join(f"{e.isoformat()} ({(e - today).days} days)" for e in listed[:_LISTED_SHOWN])
    more = f" and {len(listed) - _LISTED_SHOWN} more" if len(listed) > _LISTED_SHOWN else ""
    return OptionRefusal(field_name, f"no {symbol} expiry {wanted}; IB lists {shown}{more}")


def atm_strike(strikes: Sequence[Decimal], underlying_price: Decimal) -> Decimal:
    """The listed strike nearest the underlying's price; halfway between two, the lower."""
    return min(strikes, key=lambda s: (abs(s - underlying_price), s))


def scan_window(strikes: Sequence[Decimal], atm: Decimal, count: int | None) -> tuple[Decimal, ...]:
    """The strikes scanned, ascending: ``atm`` and ``count // 2`` listed strikes on each side of it
    (all of them when ``count`` is None); the strikes whose quotes and greeks the worker asks for."""
    ordered = sorted(set(strikes))
    if count is None:
        return tuple(ordered)
    at, half = ordered.index(atm), count // 2
    return tuple(ordered[max(0, at - half) : at + half + 1])


def side_of_money(strikes: Sequence[Decimal], atm: Decimal, right: Right, itm: bool) -> tuple[Decimal, ...]:
    """The strikes past ``atm`` on the side where ``right`` is in (``itm``) or out of the money,
    nearest the money first: a call's in-the-money side is below, a put's above."""
    below = sorted((s for s in strikes if s < atm), reverse=True)
    above = sorted(s for s in strikes if s > atm)
    return tuple(below if (right == "C") == itm else above)


@dataclass(frozen=True)
class _Pick:
    strike: Decimal
    rule: str
    candidates: tuple[Decimal, ...]
    sentence: str
    delta: Decimal | None = None


def _right_name(right: Right) -> str:
    return "call" if right == "C" else "put"


def _listed(strikes: Sequence[Decimal]) -> str:
    return ", ".join(strike_text(s) for s in strikes)


def _by_strike_price(request: OptionRequest, strikes: Sequence[Decimal], where: str) -> _Pick | OptionRefusal:
    wanted = request.strike_price
    assert wanted is not None
    if wanted in strikes:
        return _Pick(
            wanted, "strikePrice", (wanted,), f"strike {strike_text(wanted)}: the alert's strikePrice"
        )
    nearest = sorted(sorted(strikes, key=lambda s: (abs(s - wanted), s))[:2])
    return OptionRefusal(
        "strikePrice",
        f"strikePrice {strike_text(wanted)} is not listed for {where} (nearest listed: {_listed(nearest)})",
    )


def _by_intrinsic(
    request: OptionRequest, strikes: Sequence[Decimal], price: Decimal, right: Right, where: str
) -> _Pick | OptionRefusal:
    itm = request.intrinsic_value == "itm"
    away = request.strikes_away or 1
    atm = atm_strike(strikes, price)
    scanned = scan_window(strikes, atm, request.strike_count)
    side = side_of_money(scanned, atm, right, itm)
    money = "in the money" if itm else "out of the money"
    rule = f"intrinsicValue {request.intrinsic_value}, strikesAway {away}"
    if len(side) < away:
        among = (
            f" among the {len(scanned)} scanned (strikeCount {request.strike_count})"
            if request.strike_count
            else ""
        )
        return OptionRefusal("strikesAway", (
            f"strikesAway {away}: the {where} list {len(side)} strike(s) {money} past the "
            f"at-the-money {strike_text(atm)}{among}"
        ))  # fmt: skip
    chosen = side[away - 1]
    sentence = f"strike {strike_text(chosen)}: the {_ordinal(away)} strike {money} for a {_right_name(right)} ({rule}), counted from the at-the-money {strike_text(atm)}: {_listed(side[:away])}"
    return _Pick(chosen, "intrinsicValue", side[:away], sentence)


def _by_delta(
    request: OptionRequest, chain: OptionChain, expiry: date, price: Decimal, right: Right, where: str
) -> _Pick | OptionRefusal:
    target = abs(request.delta or 0)
    count = request.strike_count or DELTA_STRIKE_COUNT
    scanned = scan_window(chain.strikes[expiry], atm_strike(chain.strikes[expiry], price), count)
    known: dict[Decimal, Decimal] = {}
    for strike in scanned:
        quote = chain.quotes.get((expiry, strike, right))
        if quote is not None and quote.delta is not None:
            known[strike] = quote.delta
    if not known:
        return OptionRefusal(
            "delta", f"delta {target}: IB gave no model greeks for any of the {len(scanned)} {where} scanned (strikes {_listed(scanned)})"
        )  # fmt: skip
    chosen = min(known, key=lambda s: (abs(abs(known[s]) - target), abs(s - price), s))
    missing = [s for s in scanned if s not in known]
    gaps = f"; no greeks for {_listed(missing)}" if missing else ""
    sentence = (
        f"strike {strike_text(chosen)}: its delta {known[chosen]:.3f} is the nearest to the delta target {target} "
        f"among the {len(scanned)} strikes scanned around the money ({_listed(scanned)}{gaps})"
    )
    return _Pick(chosen, "delta", scanned, sentence, known[chosen])


def choose(
    request: OptionRequest, chain: OptionChain, underlying_price: Decimal | None, today: date, signal: Signal
) -> OptionChoice | OptionRefusal:
    """The contract the alert trades and the order that opens it, or why none (see the module)."""
    if underlying_price is None or underlying_price <= 0:
        shown = "none" if underlying_price is None else fmt_price(underlying_price)
        return OptionRefusal(
            None, f"no usable price for {chain.symbol} ({shown}): the money cannot be placed"
        )
    row = direction(request.option_type, signal)
    if row.right not in chain.rights:
        return OptionRefusal(
            "optionType", f"IB lists no {_right_name(row.right)}s on {chain.symbol} ({row.rule})"
        )
    picked = pick_expiry(request, chain.symbol, [e for e, s in chain.strikes.items() if s], today)
    if isinstance(picked, OptionRefusal):
        return picked
    expiry, expiry_why = picked
    strikes = sorted(set(chain.strikes[expiry]))
    where = f"{chain.symbol} {expiry.isoformat()} {_right_name(row.right)}s"
    atm = atm_strike(strikes, underlying_price)
    pick: _Pick | OptionRefusal
    if request.strike_price is not None:
        pick = _by_strike_price(request, strikes, where)
    elif request.intrinsic_value is not None:
        pick = _by_intrinsic(request, strikes, underlying_price, row.right, where)
    elif request.delta is not None:
        pick = _by_delta(request, chain, expiry, underlying_price, row.right, where)
    else:
        pick = _Pick(
            atm, "atm", (atm,), f"strike {strike_text(atm)}: at the money (no strike rule in the alert)"
        )
    if isinstance(pick, OptionRefusal):
        return pick
    quote = chain.quotes.get((expiry, pick.strike, row.right))
    why = (
        f"{chain.symbol} at {fmt_price(underlying_price)}, at the money {strike_text(atm)}. {expiry_why[0].upper()}"
        f"{expiry_why[1:]}. {pick.sentence[0].upper()}{pick.sentence[1:]}. {row.rule[0].upper()}{row.rule[1:]}."
    )
    return OptionChoice(
        symbol=chain.symbol, expiry=expiry, strike=pick.strike, right=row.right, side=row.side,
        days_to_expiry=(expiry - today).days, underlying_price=underlying_price, atm_strike=atm,
        candidates=pick.candidates, rule=pick.rule, why=why,
        delta=pick.delta if pick.delta is not None else (quote.delta if quote else None),
    )  # fmt: skip
