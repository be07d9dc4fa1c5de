"""How ibsim prices an option: Black-Scholes on the underlying's current price with a set volatility,
its greeks (IB's model option computation), and the quote around the model price.

Simulator policies (documented in ibsim/README.md):

* the model: European Black-Scholes, no dividends, rate :attr:`OptionSettings.rate`, volatility
  :attr:`OptionSettings.volatility` (one per underlying may replace it); time to expiry from the
  engine's clock to the expiry day's close (16:00 New York), in calendar years (365 days);
* the quote: the model price on the tick grid is the option's price (its last); bid and ask sit
  ``max(spread, mid × spreadPct / 100) / 2`` away from the model price, rounded outwards to the
  tick grid, at least one tick apart, the bid never below zero;
* the greeks IB sends: delta, gamma, vega (per volatility point), theta (per calendar day); the
  bid's and ask's implied volatilities are solved from their prices (bisection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ibsim.catalog.instruments import Instrument
from ibsim.catalog.options import expiry_close
from ibsim.model import Greeks

_YEAR_SECONDS = 365.0 * 86400.0
#: shortest time to expiry the model uses (an option in its last minute is still priced)
_MIN_YEARS = 60.0 / _YEAR_SECONDS


@dataclass
class OptionSettings:
    """The model's inputs the operator sets (``POST /options``)."""

    volatility: float = 0.20
    rate: float = 0.04
    spread: float = 0.04  # the quote's smallest width, in dollars
    spread_pct: float = 0.5  # the quote's width as a percentage of the model price, when wider
    #: volatility per underlying symbol, replacing ``volatility``
    volatilities: dict[str, float] = field(default_factory=dict)

    def volatility_of(self, symbol: str) -> float:
        """The volatility the model uses for options on ``symbol``."""
        return self.volatilities.get(symbol, self.volatility)

    def to_json(self) -> dict[str, object]:
        """The control API's view."""
        return {
            "volatility": self.volatility,
            "rate": self.rate,
            "spread": self.spread,
            "spreadPct": self.spread_pct,
            "volatilities": dict(self.volatilities),
        }


@dataclass(frozen=True)
class OptionQuote:
    """An option's quote: bid, ask, the price (model price on the grid), and the greeks."""

    bid: float
    ask: float
    price: float
    model: Greeks
    bid_greeks: Greeks
    ask_greeks: Greeks


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def years_to_expiry(inst: Instrument, now: float) -> float:
    """Years from ``now`` (unix seconds) to the expiry day's 16:00 in New York (at least a minute)."""
    return max((expiry_close(inst.last_trade_date) - now) / _YEAR_SECONDS, _MIN_YEARS)


def black_scholes(right: str, und: float, strike: float, years: float, vol: float, rate: float) -> Greeks:
    """Price and greeks of a European option (no dividends)."""
    root_t = math.sqrt(years)
    d1 = (math.log(und / strike) + (rate + 0.5 * vol * vol) * years) / (vol * root_t)
    d2 = d1 - vol * root_t
    discount = math.exp(-rate * years)
    if right == "C":
        price = und * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
        delta = _norm_cdf(d1)
        carry = -rate * strike * discount * _norm_cdf(d2)
    else:
        price = strike * discount * _norm_cdf(-d2) - und * _norm_cdf(-d1)
        delta = _norm_cdf(d1) - 1.0
        carry = rate * strike * discount * _norm_cdf(-d2)
    theta_year = -und * _norm_pdf(d1) * vol / (2.0 * root_t) + carry
    return Greeks(
        implied_vol=vol,
        delta=delta,
        opt_price=max(price, 0.0),
        gamma=_norm_pdf(d1) / (und * vol * root_t),
        vega=und * _norm_pdf(d1) * root_t / 100.0,
        theta=theta_year / 365.0,
        und_price=und,
    )


def implied_vol(
    right: str, price: float, und: float, strike: float, years: float, rate: float
) -> float | None:
    """The volatility at which the model gives ``price`` (bisection), or None when none does."""
    low, high = 0.001, 5.0
    floor = black_scholes(right, und, strike, years, low, rate).opt_price
    if not floor <= price <= black_scholes(right, und, strike, years, high, rate).opt_price:
        return None
    for _ in range(60):
        mid = (low + high) / 2.0
        if black_scholes(right, und, strike, years, mid, rate).opt_price < price:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def _at(right: str, price: float, und: float, inst: Instrument, years: float, rate: float) -> Greeks:
    """The greeks at a quoted price (its implied volatility; the model's greeks when none)."""
    vol = implied_vol(right, price, und, inst.strike, years, rate) if price > 0 else None
    if vol is None:
        return Greeks(None, 0.0, price, 0.0, 0.0, 0.0, und)
    greeks = black_scholes(right, und, inst.strike, years, vol, rate)
    return Greeks(vol, greeks.delta, price, greeks.gamma, greeks.vega, greeks.theta, und)


def option_quote(
    inst: Instrument,
    und: float,
    now: float,
    settings: OptionSettings,
    increment: Callable[[float], float],
    model_price: float | None = None,
) -> OptionQuote:
    """The quote of ``inst`` with the underlying at ``und`` at ``now``; ``increment(price)`` is the
    tick at a price (the contract's market rule); ``model_price`` replaces the model's (a price the
    operator set)."""
    years = years_to_expiry(inst, now)
    model = black_scholes(
        inst.right, und, inst.strike, years, settings.volatility_of(inst.symbol), settings.rate
    )
    mid = model.opt_price if model_price is None else model_price
    tick = increment(mid)
    price = max(round(round(mid / tick) * tick, 2), tick)
    half = max(settings.spread, mid * settings.spread_pct / 100.0) / 2.0
    bid = max(math.floor(round((mid - half) / increment(mid - half), 6)) * increment(mid - half), 0.0)
    ask = math.ceil(round((mid + half) / increment(mid + half), 6)) * increment(mid + half)
    bid, ask = round(bid, 2), round(max(ask, bid + increment(bid)), 2)
    return OptionQuote(
        bid=bid,
        ask=ask,
        price=price,
        model=model,
        bid_greeks=_at(inst.right, bid, und, inst, years, settings.rate),
        ask_greeks=_at(inst.right, ask, und, inst, years, settings.rate),
    )
