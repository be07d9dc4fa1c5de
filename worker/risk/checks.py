"""The risk rules as pure checks: the numbers of one opening order in, a list of checks out.

Nothing here talks to IB, the database or the clock: :mod:`worker.risk.gate` gathers the numbers
(IB's portfolio, working orders, the live quote, today's PnL, the exchange's session) into a
:class:`RiskContext`, and :func:`evaluate` runs every rule the trader set against it. Each rule
gives one :class:`Check` with its limit, the value it compared and the sentence a refusal shows::

    risk: max_order_notional 50,000 USD (strategy "trend") exceeded: 300 AAPL × 190.00 = 57,000 USD

Only the OPENING part of a decision comes here (an entry, an add, a reversal's second half);
closes, exits and flattens are never checked (worker/risk/verdict.py checks only an opening part).

A rule that cannot be evaluated because a number is missing (no price for a notional limit, no
quote for the deviation rule, no calendar for the exchange) refuses: the trader set the limit, and
an order that cannot be shown to respect it does not go out (docs/design.md invariant 3, fail closed).
The one exception is ``max_price_deviation_percent`` for an alert without a ``price``: there is
nothing to compare, so the check is recorded as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.risk_file import RiskRules
from worker.decision.numbers import money, price, qty
from worker.risk.closing import Closing

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class OpeningOrder:
    """The opening part of a decision, as the rules see it."""

    ticker: str  # the TradingView ticker of the alert (AAPL, ES1!, NASDAQ:AAPL)
    symbol: str  # IB's symbol (AAPL, ES)
    local_symbol: str  # IB's local symbol (AAPL, ESZ6)
    side: str  # BUY / SELL
    quantity: Decimal  # the opening part's quantity (shares, contracts, units)
    price: Decimal | None  # the entry's limit / stop price, else the reference price
    price_source: str  # "limit price", "stop price", "IB last price" ...
    multiplier: Decimal  # contract multiplier (1 for stocks and forex)
    currency: str  # the contract's currency
    legs: int  # orders this part puts at IB (entry + take-profit + stop-loss)
    position_before: Decimal  # IB's signed position in the contract before the decision
    position_after: Decimal  # the signed position the decision aims at

    @property
    def notional(self) -> Decimal | None:
        if self.price is None:
            return None
        return self.quantity * self.price * self.multiplier

    @property
    def label(self) -> str:
        return self.local_symbol or self.symbol or self.ticker


@dataclass(frozen=True)
class DailyPnl:
    """Today's PnL of the account and whether entries are halted for the rest of the day."""

    realized: Decimal  # from the fills recorded since the trading day began
    unrealized: Decimal | None  # IB's UnrealizedPnL (None: IB has not reported it)
    halted: bool  # the loss limit was reached earlier today (persisted)
    day_ends: str  # "2026-11-30 17:00 America/New_York", for the refusal

    @property
    def total(self) -> Decimal:
        return self.realized + (self.unrealized or Decimal(0))


@dataclass(frozen=True)
class Session:
    """Where the exchange's calendar puts "now" for the contract."""

    state: str  # "regular", "extended", "closed"; "always" (forex, crypto); "unknown" (no calendar)
    calendar: str  # "XNYS", "CMES", or "" (none)
    detail: str  # "Saturday", "holiday 2026-12-25", "pre-market 08:15 America/New_York" ...


@dataclass(frozen=True)
class RiskContext:
    """Every number the rules compare, gathered by the gate for one opening order."""

    order: OpeningOrder
    account: str
    base_currency: str = "USD"
    other_exposure: Decimal | None = None  # sum of |market value| of the account's OTHER positions
    working_orders: int | None = None  # the account's working orders at IB (all)
    working_tv2ib: int = 0  # ... of which tv2ib's
    orders_last_minute: int = 0  # opening orders sent for the account in the last 60 s
    daily: DailyPnl | None = None
    session: Session | None = None
    alert_price: Decimal | None = None  # the alert's "price" field
    quote: Decimal | None = None  # IB's live quote for the contract
    quote_source: str = ""
    ignore_trading_windows: bool = False  # the alert's ignoreTradingWindows (honoured if the rules allow it)
    closing: Closing | None = None  # the contract's session close (read when flatten_before_close is set)


@dataclass(frozen=True)
class Check:
    """One rule against one number; ``passed`` None: skipped (said why in ``message``)."""

    rule: str
    limit: Any
    value: Any
    passed: bool | None
    source: str
    message: str = ""  # the refusal (or the skip) in words

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "rule": self.rule,
            "limit": _plain(self.limit),
            "value": _plain(self.value),
            "passed": self.passed,
            "source": self.source,
        }
        if self.message:
            doc["message"] = self.message
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Check:
        """A check as :meth:`to_json` stored it (limits and values as the plan shows them)."""
        return cls(doc["rule"], doc.get("limit"), doc.get("value"), doc.get("passed"), doc.get("source") or "",
                   doc.get("message") or "")  # fmt: skip


# ---------------------------------------------------------------------- formatting


def percent(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'))}%"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# ---------------------------------------------------------------------- the rules


def evaluate(rules: RiskRules, ctx: RiskContext) -> list[Check]:
    """Every rule the trader set, in a fixed order (the first failed one is the refusal)."""
    checks: list[Check] = _symbols(rules, ctx)
    for key, write, rule in _RULES:
        limit = getattr(rules, key)
        if limit is None:  # the trader did not set it
            continue
        check = rule(_Limit(rules, key, limit, ctx.base_currency, write), ctx)
        if check is not None:
            checks.append(check)
    return checks


def first_failure(checks: list[Check]) -> Check | None:
    return next((c for c in checks if c.passed is False), None)


def _head(rules: RiskRules, key: str, limit: str) -> str:
    return f"risk: {key} {limit} ({rules.source_of(key)})"


@dataclass(frozen=True)
class _Limit:
    """One limit the trader set, as its rule reads it: the key, the limit, and the limit in words
    (``write``) for the head of a refusal, which is formatted only when a check fails."""

    rules: RiskRules
    key: str
    limit: Any
    currency: str  # the account's base currency: money limits are in it
    write: Callable[[Any, str], str]  # (limit, currency) -> "50,000 USD", "250", "1.00%"

    @property
    def source(self) -> str:
        return self.rules.source_of(self.key)

    @property
    def head(self) -> str:
        """``risk: max_order_notional 50,000 USD (strategy "trend")``."""
        return _head(self.rules, self.key, self.write(self.limit, self.currency))

    def verdict(self, value: Any, ok: bool, why: Callable[[], str]) -> Check:
        """The check; ``why`` (the refusal's sentence) is written only when it failed."""
        return Check(self.key, self.limit, value, ok, self.source, "" if ok else why())

    def at_most(self, value: Any, why: Callable[[], str]) -> Check:
        """A ceiling: ``value`` may not exceed the limit; the refusal is ``<head> exceeded: <why>``."""
        return self.verdict(value, value <= self.limit, lambda: f"{self.head} exceeded: {why()}")

    def unknown(self, reason: str) -> Check:
        """The number to compare is missing: the check refuses (fail closed)."""
        return Check(
            self.key, self.limit, None, False, self.source, f"{self.head}: cannot be checked: {reason}"
        )


def _as_text(limit: Any, currency: str) -> str:
    return str(limit)


def _as_quantity(limit: Decimal, currency: str) -> str:
    return qty(limit)


def _as_minutes(limit: int, currency: str) -> str:
    return f"{limit} min"


def _as_money(limit: Decimal, currency: str) -> str:
    return f"{money(limit)} {currency}"


def _as_percent(limit: Decimal, currency: str) -> str:
    return percent(limit)


def _symbols(rules: RiskRules, ctx: RiskContext) -> list[Check]:
    """``deny`` wins over ``allow``; either matches the TradingView ticker (with or without its
    ``EXCHANGE:`` prefix), IB's symbol or IB's local symbol. The deny lists of every section add
    up; each section's allow list must name the symbol (one check each)."""
    names = names_of(ctx.order)
    denied = sorted(names & set(rules.deny))
    if denied:
        return [Check("deny", list(rules.deny), denied[0], False, rules.source_of("deny"),
                      f"{_head(rules, 'deny', 'list')}: {denied[0]} is on it")]  # fmt: skip
    checks: list[Check] = []
    for source, listed in rules.allow_lists():
        allowed = names & set(listed)
        if not allowed:
            shown = ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "")
            return [*checks, Check("allow", list(listed), sorted(names)[0], False, source,
                                   f"risk: allow list ({source}): {ctx.order.ticker} ({ctx.order.label} at IB) "
                                   f"is not on it ({shown or 'an empty list'})")]  # fmt: skip
        checks.append(Check("allow", list(listed), sorted(allowed)[0], True, source))
    if not checks and rules.deny:
        checks.append(Check("deny", list(rules.deny), ctx.order.ticker, True, rules.source_of("deny")))
    return checks


def names_of(order: OpeningOrder) -> set[str]:
    """The order's ticker as the symbol rules match it: TradingView's (with or without its prefix), IB's symbols."""
    ticker = order.ticker.strip().upper()
    names = {ticker, ticker.rpartition(":")[2], order.symbol.upper(), order.local_symbol.upper()}
    return {n for n in names if n}


def _trading_hours(lim: _Limit, ctx: RiskContext) -> Check | None:
    wanted = lim.limit
    if wanted == "always":
        return None
    if ctx.ignore_trading_windows:
        return _windows_ignored(lim, ctx)
    session = ctx.session
    if session is not None and session.state == "always":  # forex, crypto: no closing bell
        return Check(lim.key, wanted, "always", True, lim.source, session.detail)
    if session is None or session.state not in ("regular", "extended", "closed"):
        detail = session.detail if session is not None else "no calendar"
        return Check(lim.key, wanted, "unknown", False, lim.source,
                     f"{lim.head}: cannot tell whether {ctx.order.label} trades now: {detail}")  # fmt: skip
    ok = session.state == "regular" or (wanted == "extended" and session.state == "extended")
    where = f"{session.calendar}: {session.detail}" if session.detail else session.calendar
    return lim.verdict(session.state, ok, lambda: (
        f"{lim.head}: {ctx.order.label} is "
        f"{'in extended hours' if session.state == 'extended' else 'closed'} now ({where})"))  # fmt: skip


def _before_close(lim: _Limit, ctx: RiskContext) -> Check | None:
    """``flatten_before_close``: no new entry in the last minutes of the session, when the strategy's
    positions are being flattened; unknown close: refused (it could not be flattened in time)."""
    closing = ctx.closing
    if not lim.limit:  # false: this strategy is never flattened
        return None
    if closing is None or closing.state == "unknown":
        detail = closing.detail if closing is not None else "no calendar"
        return Check(lim.key, lim.limit, "unknown", False, lim.source,
                     f"{lim.head}: cannot tell when {ctx.order.label}'s session closes: {detail}")  # fmt: skip
    start = closing.flatten_from(lim.limit)
    if not closing.due(lim.limit) or start is None:
        return Check(lim.key, lim.limit, closing.state, True, lim.source, closing.detail)
    return lim.verdict(closing.state, False, lambda: (
        f"{lim.head}: {ctx.order.label}'s session closes at {closing.detail}; the strategy's positions are "
        f"flattened from {start:%H:%M} and no new entry opens until the close"))  # fmt: skip


def _windows_ignored(lim: _Limit, ctx: RiskContext) -> Check:
    """The alert's ``ignoreTradingWindows: true``: ``trading_hours`` is skipped where the rules
    allow it (``allow_ignore_trading_windows``), else the opening is refused, whatever the hour, so
    that a strategy sending the field learns it on its first alert, not on its first one at night."""
    rules, key = lim.rules, "allow_ignore_trading_windows"
    where = rules.source_of(key) if key in rules.sources else None
    state = ctx.session.state if ctx.session is not None else "unknown"
    if rules.allow_ignore_trading_windows:
        return Check(lim.key, lim.limit, state, True, lim.source,
                     f"not applied: the alert's ignoreTradingWindows, allowed by {key} ({where})")  # fmt: skip
    setting = f"{key} is false ({where})" if where else f"the risk file does not set {key}: true"
    return Check(lim.key, lim.limit, state, False, lim.source,
                 f"{lim.head}: the alert's ignoreTradingWindows: true is not allowed: {setting} "
                 "(set it in the strategy's section or in defaults to let its alerts skip trading_hours)")  # fmt: skip


def _order_quantity(lim: _Limit, ctx: RiskContext) -> Check:
    order = ctx.order
    return lim.at_most(order.quantity, lambda: f"{order.side} {qty(order.quantity)} {order.label}")


def _no_price(lim: _Limit, ctx: RiskContext) -> Check:
    return Check(lim.key, None, None, False, lim.source,
                 f"{lim.head}: cannot be checked: no price for {ctx.order.label} "
                 f"({ctx.order.price_source or 'no limit price and no market data'})")  # fmt: skip


def _times(order: OpeningOrder, quantity: Decimal) -> str:
    """``300 AAPL × 190.00`` (× the multiplier for futures)."""
    text = f"{qty(quantity)} {order.label} × {price(order.price or Decimal(0))}"
    if order.multiplier != 1:
        text += f" × {qty(order.multiplier)}"
    return text


def _order_notional(lim: _Limit, ctx: RiskContext) -> Check:
    order, notional = ctx.order, ctx.order.notional
    if notional is None:
        return _no_price(lim, ctx)
    return lim.at_most(notional, lambda: (
        f"{_times(order, order.quantity)} = {money(notional)} {order.currency or ctx.base_currency}"))  # fmt: skip


def _position_quantity(lim: _Limit, ctx: RiskContext) -> Check:
    order = ctx.order
    after = abs(order.position_after)
    return lim.at_most(after, lambda: (
        f"{order.label} would be {'long' if order.position_after > 0 else 'short'} {qty(after)} "
        f"after this order (now {qty(order.position_before)})"))  # fmt: skip


def _position_notional(lim: _Limit, ctx: RiskContext) -> Check:
    order = ctx.order
    if order.price is None:
        return _no_price(lim, ctx)
    after = abs(order.position_after)
    value = after * order.price * order.multiplier
    return lim.at_most(value, lambda: (
        f"the position after this order, {_times(order, after)} = {money(value)} "
        f"{order.currency or ctx.base_currency}"))  # fmt: skip


def _gross_exposure(lim: _Limit, ctx: RiskContext) -> Check:
    """The other positions' |market value| (IB's portfolio) + this contract's position after the
    order at the order's price (a reversal's close removes the old position's value first)."""
    order, others = ctx.order, ctx.other_exposure
    if order.price is None:
        return _no_price(lim, ctx)
    if others is None:
        return lim.unknown("IB has not reported the account's portfolio")
    this = abs(order.position_after) * order.price * order.multiplier
    value = others + this
    return lim.at_most(value, lambda: (
        f"other positions {money(others)} + {order.label} after this order {money(this)} = "
        f"{money(value)} {ctx.base_currency}"))  # fmt: skip


def _open_orders(lim: _Limit, ctx: RiskContext) -> Check:
    """Every working order of the account IB reports to this connection (tv2ib's entries and
    exits, and any other order it sees), plus the legs this alert would add."""
    working = ctx.working_orders or 0
    value = working + ctx.order.legs
    others = working - ctx.working_tv2ib
    return lim.at_most(value, lambda: (
        f"{working} working at IB ({ctx.working_tv2ib} tv2ib, {others} other) + {ctx.order.legs} "
        f"of this alert = {value}"))  # fmt: skip


def _orders_per_minute(lim: _Limit, ctx: RiskContext) -> Check:
    value = ctx.orders_last_minute + 1
    return lim.at_most(value, lambda: (
        f"{ctx.orders_last_minute} opening order(s) sent for account {ctx.account or '(default)'} "
        f"in the last 60 s; this would be {value}"))  # fmt: skip


def _daily_loss(lim: _Limit, ctx: RiskContext) -> Check:
    daily, cur = ctx.daily, ctx.base_currency
    if daily is None:
        return lim.unknown("today's PnL is unknown")
    reached = -daily.total >= lim.limit
    return lim.verdict(daily.total, not (daily.halted or reached), lambda: (
        f"{lim.head} {'reached' if reached else 'reached earlier today'}: entries halted until {daily.day_ends}; "
        f"today's PnL {signed(daily.total)} {cur} (realized {signed(daily.realized)} + unrealized "
        f"{'?' if daily.unrealized is None else signed(daily.unrealized)})"))  # fmt: skip


def signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + money(value)


def _price_deviation(lim: _Limit, ctx: RiskContext) -> Check:
    if ctx.alert_price is None:
        return Check(lim.key, lim.limit, None, None, lim.source,
                     "skipped: the alert has no price to compare with IB's quote")  # fmt: skip
    if ctx.quote is None or ctx.quote <= 0:
        return lim.unknown(f"no quote from IB for {ctx.order.label}")
    alert_price, quote = ctx.alert_price, ctx.quote
    deviation = abs(alert_price - quote) / quote * HUNDRED
    return lim.verdict(deviation.quantize(Decimal("0.0001")), deviation <= lim.limit, lambda: (
        f"{lim.head} exceeded: the alert's price {price(alert_price)} is {percent(deviation)} from IB's "
        f"{ctx.quote_source or 'quote'} {price(quote)} for {ctx.order.label} (a stale alert, or another symbol?)"))  # fmt: skip


Rule = Callable[[_Limit, RiskContext], Check | None]

_RULES: tuple[tuple[str, Callable[[Any, str], str], Rule], ...] = (  # after _symbols (allow / deny)
    ("trading_hours", _as_text, _trading_hours),
    ("flatten_before_close", _as_minutes, _before_close),
    ("daily_loss_limit", _as_money, _daily_loss),
    ("max_price_deviation_percent", _as_percent, _price_deviation),
    ("max_order_quantity", _as_quantity, _order_quantity),
    ("max_order_notional", _as_money, _order_notional),
    ("max_position_quantity", _as_quantity, _position_quantity),
    ("max_position_notional", _as_money, _position_notional),
    ("max_gross_exposure", _as_money, _gross_exposure),
    ("max_open_orders", _as_text, _open_orders),
    ("max_orders_per_minute", _as_text, _orders_per_minute),
)
