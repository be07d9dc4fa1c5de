"""TradingView ticker → IB contract description (the one seam for symbol mapping).

This module is pure: it turns ``ES1!``, ``MESZ2026``, ``EURUSD``, ``BTCUSD`` or ``AAPL`` into a
:class:`ContractSpec` that the IB session then qualifies through IB itself (so an unknown symbol is
refused with IB's own reason). The symbol-map file (``SYMBOL_MAP_FILE``, loaded by
:mod:`worker.contracts.symbol_map`) plugs in by passing ``overrides`` (ticker → ContractSpec, keys with or
without the ``EXCHANGE:`` prefix) and ``futures_roots`` (root → :class:`FuturesRoot`) to
:func:`resolve_ticker`.

Rules, in order:

0. An option ticker names that exact contract: OCC style (``AAPL250117C00150000``, the root
   space-padded or not) or TradersPost's (``SPY 250624C596``) → an ``OPT`` spec on SMART (expiry,
   strike, right). ``OPRA:`` tickers that are not of that form, and a symbol-map entry with
   ``sec_type: OPT``/``FOP``/``WAR``, are refused: :class:`OptionsNotSupported`. Options chosen
   from an alert on the underlying (``optionType``...) are picked by the worker
   (worker/execution/option_target.py), not here.
1. ``overrides["EXCHANGE:TICKER"]``, then ``overrides["TICKER"]`` when given.
2. Continuous futures ``ROOT<n>!`` (``ES1!``, ``MNQ2!``): the n-th listed contract of ``ROOT`` by
   expiry that has not reached its roll date (:mod:`worker.contracts.roll`), found through
   reqContractDetails on the FUT symbol; ``roll_days`` from ``futures_roots[ROOT]`` when it has one.
3. Explicit futures ``ROOT<month code><year>`` (``MESZ2026``, ``ESZ26``, ``ESZ6``) when ``ROOT`` is
   in :data:`FUTURES_EXCHANGES` or ``futures_roots`` (or the alert's exchange prefix is a futures
   exchange).
4. Crypto ``BTCUSD`` / ``ETHUSD`` ... → ``Crypto(base, 'PAXOS', 'USD')``.
5. Forex ``EURUSD`` / ``EUR.USD`` / ``EUR/USD`` when both halves are ISO currencies → CASH on IDEALPRO.
6. Anything else is a US stock on SMART in USD (``BRK.B`` → ``BRK B``), with the primary exchange
   taken from a stock-exchange prefix (``NASDAQ:AAPL``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from worker.errors import Refused

# Futures root → exchange. Small on purpose: the symbol map (SYMBOL_MAP_FILE) extends it.
FUTURES_EXCHANGES: dict[str, str] = {
    "ES": "CME",
    "MES": "CME",
    "NQ": "CME",
    "MNQ": "CME",
    "RTY": "CME",
    "M2K": "CME",
    "YM": "CBOT",
    "MYM": "CBOT",
    "CL": "NYMEX",
    "MCL": "NYMEX",
    "NG": "NYMEX",
    "GC": "COMEX",
    "MGC": "COMEX",
    "SI": "COMEX",
}
# TradingView exchange prefixes that name a futures venue (CME_MINI:ES1!).
_FUTURES_PREFIXES = {
    "CME": "CME",
    "CME_MINI": "CME",
    "CBOT": "CBOT",
    "CBOT_MINI": "CBOT",
    "NYMEX": "NYMEX",
    "COMEX": "COMEX",
}
_STOCK_PREFIXES = {"NASDAQ", "NYSE", "ARCA", "AMEX", "BATS", "NYSEARCA", "IEX"}
_FOREX_PREFIXES = {"FX", "FX_IDC", "OANDA", "FOREXCOM", "SAXO", "FXCM", "IDEALPRO"}
_CRYPTO_PREFIXES = {"COINBASE", "BINANCE", "BITSTAMP", "KRAKEN", "PAXOS", "GEMINI"}
CRYPTO_BASES = {"BTC", "ETH", "LTC", "BCH"}
CURRENCIES = {
    "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "HKD",
    "SGD", "MXN", "CNH", "ZAR", "PLN", "HUF", "CZK", "ILS", "TRY",
}  # fmt: skip
MONTH_CODES = "FGHJKMNQUVXZ"

# \Z, not $: "$" also matches before a trailing newline (the caller strips today; keep it exact anyway).
_CONTINUOUS = re.compile(r"^([A-Z0-9]{1,5}?)(\d)!\Z")
_EXPLICIT_FUT = re.compile(r"^([A-Z0-9]{1,5}?)([FGHJKMNQUVXZ])(\d{4}|\d{2}|\d)\Z")
_FOREX = re.compile(r"^([A-Z]{3})[./]?([A-Z]{3})\Z")
# OCC option symbol (root, YYMMDD, C/P, strike × 1000 in 8 digits; the root may be space-padded)
# and TradingView's form (strike as a decimal): AAPL250117C00150000, AAPL250117C150.0
_OPTION = re.compile(r"^([A-Z]{1,6}) *(\d{6})([CP])(\d{8}|\d+(?:\.\d+)?)\Z")
_OPTION_PREFIXES = {"OPRA", "CBOE_OPT"}
OPTION_SEC_TYPES = {"OPT", "FOP", "WAR"}


class UnknownSymbol(Refused):
    """The ticker cannot be mapped to an IB contract description."""


class OptionsNotSupported(UnknownSymbol):
    """An option ticker tv2ib cannot read (an ``OPRA:`` symbol not in OCC form), or an option
    named by the symbol map (not made yet: send the OCC ticker, or ``optionType`` on the underlying)."""


@dataclass(frozen=True)
class FuturesRoot:
    """Per-root futures rules from the symbol map (``futures:`` section)."""

    exchange: str = ""
    currency: str = ""
    roll_days: int | None = None  # days before the last trade date ROOT1! moves on; None: default


@dataclass(frozen=True)
class ContractSpec:
    """What to ask IB for. ``front_index`` > 0 means "the n-th future by expiry" (``ES1!``),
    skipping contracts at or past their roll date (``roll_days`` before the last trade date)."""

    sec_type: str  # STK, CASH, FUT, CRYPTO
    symbol: str
    exchange: str
    currency: str = "USD"
    primary_exchange: str = ""
    contract_month: str = ""  # YYYYMM (or YYYYMMDD) for an explicit future
    front_index: int = 0
    # from the symbol map (all optional): what IB needs to tell similar contracts apart
    con_id: int = 0
    trading_class: str = ""
    local_symbol: str = ""
    multiplier: str = ""
    # continuous futures: roll this many calendar days before the last trade date (None: roll
    # only once expired; the worker's resolver always fills it from the map or FUTURES_ROLL_DAYS)
    roll_days: int | None = None
    # an alert's contract counts × this = contracts traded (alert on NQ1!, trade MNQ × 10); not
    # part of what IB is asked for
    quantity_multiplier: Decimal = Decimal(1)
    # the map pins the month of a continuous ticker (ES1! → 202703): a position held in an
    # earlier month is then treated like one held across a roll (worker/contracts/held_month.py)
    pinned_continuous: bool = False
    # an option named by its ticker (``contract_month`` holds the expiry, YYYYMMDD)
    strike: str = ""
    right: str = ""  # C or P

    @property
    def cache_key(self) -> str:
        """Key of the qualified-contract cache."""
        return "|".join(
            [self.sec_type, self.symbol, self.exchange, self.currency, self.primary_exchange,
             self.contract_month, str(self.front_index), str(self.con_id), self.trading_class,
             self.local_symbol, self.multiplier, str(self.roll_days), self.strike, self.right]
        )  # fmt: skip

    @property
    def follows_front(self) -> bool:
        """The alert trades "the front month" (``ES1!``, or a map entry pinning its month): a
        position in an earlier month is the one the ticker held before a roll."""
        return self.sec_type == "FUT" and (self.front_index == 1 or self.pinned_continuous)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["quantity_multiplier"] = str(self.quantity_multiplier)
        return doc


def _split_prefix(ticker: str, exchange: str | None) -> tuple[str, str | None]:
    ticker = ticker.strip().upper()
    if ":" in ticker:
        prefix, _, ticker = ticker.partition(":")
        exchange = exchange or prefix
    return ticker, (exchange.strip().upper() if exchange else None)


def _year_from(text: str, month: int, today_year: int) -> int:
    """Expand 1/2-digit years to the first matching year not before ``today_year``'s decade."""
    if len(text) == 4:
        return int(text)
    if len(text) == 2:
        return 2000 + int(text)
    digit = int(text)
    year = today_year - today_year % 10 + digit
    return year + 10 if year < today_year else year


def option_spec(sym: str) -> ContractSpec | None:
    """The exact option an OCC (``AAPL250117C00150000``) or TradersPost (``SPY 250624C596``) ticker
    names, as an ``OPT`` spec on SMART in USD; None when the ticker is not of either form."""
    match = _OPTION.match(sym)
    if match is None:
        return None
    root, yymmdd, right, strike_text = match.groups()
    strike = (
        Decimal(strike_text) / 1000
        if len(strike_text) == 8 and "." not in strike_text
        else Decimal(strike_text)
    )
    if strike <= 0:
        raise UnknownSymbol(f"{sym!r} names an option with a strike of 0")
    return ContractSpec("OPT", root, "SMART", "USD", contract_month=f"20{yymmdd}",
                        strike=f"{strike.normalize():f}", right=right)  # fmt: skip


def option_refusal(sym: str, prefix: str | None = None) -> OptionsNotSupported | None:
    """The refusal for an options-exchange ticker tv2ib cannot read (not OCC), else None."""
    if prefix in _OPTION_PREFIXES and _OPTION.match(sym) is None:
        return OptionsNotSupported(
            f"{prefix}:{sym} is an options ticker tv2ib cannot read: send the OCC symbol "
            "(AAPL250117C00150000), TradersPost's form (AAPL 250117C150), or optionType on the underlying"
        )
    return None


def is_continuous(ticker: str) -> int:
    """``n`` for a continuous futures ticker ``ROOT<n>!`` (prefix allowed), else 0."""
    return continuous_parts(ticker)[1]


def continuous_parts(ticker: str) -> tuple[str, int]:
    """``(ROOT, n)`` of a continuous futures ticker ``ROOT<n>!`` (prefix allowed), else ``("", 0)``."""
    match = _CONTINUOUS.match(_split_prefix(ticker, None)[0])
    return (match.group(1), int(match.group(2))) if match else ("", 0)


def resolve_ticker(
    ticker: str,
    exchange: str | None = None,
    *,
    overrides: Mapping[str, ContractSpec] | None = None,
    futures_roots: Mapping[str, FuturesRoot] | None = None,
    today_year: int | None = None,
) -> ContractSpec:
    """Map a TradingView ticker (optionally ``EXCHANGE:``-prefixed) to a :class:`ContractSpec`."""
    sym, prefix = _split_prefix(ticker, exchange)
    if not sym:
        raise UnknownSymbol("empty ticker")
    if overrides:
        spec = overrides.get(f"{prefix}:{sym}") if prefix else None
        spec = spec or overrides.get(sym)
        if spec is not None:
            if spec.sec_type in OPTION_SEC_TYPES:
                raise OptionsNotSupported(
                    f"the symbol map names {sym!r} a {spec.sec_type}: options in the symbol map are not "
                    "made yet; send the OCC symbol (AAPL250117C00150000) or optionType on the underlying"
                )
            return spec
    refusal = option_refusal(sym, prefix)
    if refusal is not None:
        raise refusal
    option = option_spec(sym)
    if option is not None:
        return option
    future = _future(sym, prefix, futures_roots or {}, today_year or datetime.now(UTC).year)
    return future if future is not None else _cash_or_stock(sym, prefix)


def _future(
    sym: str, prefix: str | None, roots: Mapping[str, FuturesRoot], today_year: int
) -> ContractSpec | None:
    """A continuous (``ES1!``) or explicit-month (``ESZ2026``) futures ticker, else None."""
    fut_exchange = _FUTURES_PREFIXES.get(prefix or "")
    match = _CONTINUOUS.match(sym)
    if match:
        root, index = match.group(1), int(match.group(2))
        rule = roots.get(root, FuturesRoot())
        venue = rule.exchange or FUTURES_EXCHANGES.get(root) or fut_exchange
        if venue is None or index < 1:
            raise UnknownSymbol(f"unknown futures root {root!r} in {sym!r}")
        return ContractSpec(
            "FUT", root, venue, rule.currency or "USD", front_index=index, roll_days=rule.roll_days
        )
    match = _EXPLICIT_FUT.match(sym)
    if match and (match.group(1) in FUTURES_EXCHANGES or match.group(1) in roots or fut_exchange):
        root, code, year_text = match.groups()
        rule = roots.get(root, FuturesRoot())
        month = MONTH_CODES.index(code) + 1
        year = _year_from(year_text, month, today_year)
        venue = rule.exchange or FUTURES_EXCHANGES.get(root) or fut_exchange or ""
        return ContractSpec(
            "FUT", root, venue, rule.currency or "USD", contract_month=f"{year:04d}{month:02d}"
        )
    return None


def _cash_or_stock(sym: str, prefix: str | None) -> ContractSpec:
    """A crypto pair, a currency pair, else a stock (refused when it looks like none)."""
    if prefix in _CRYPTO_PREFIXES or any(sym == f"{b}USD" for b in CRYPTO_BASES):
        for base in CRYPTO_BASES:
            if sym in (f"{base}USD", f"{base}.USD", f"{base}/USD"):
                return ContractSpec("CRYPTO", base, "PAXOS", "USD")
        raise UnknownSymbol(f"unsupported crypto pair {sym!r} (IB trades BTC, ETH, LTC, BCH against USD)")

    match = _FOREX.match(sym)
    if match and match.group(1) in CURRENCIES and match.group(2) in CURRENCIES:
        return ContractSpec("CASH", match.group(1), "IDEALPRO", match.group(2))
    if prefix in _FOREX_PREFIXES:
        raise UnknownSymbol(f"{sym!r} is not a currency pair")

    if not re.fullmatch(r"[A-Z0-9][A-Z0-9.\- ]{0,11}", sym):
        raise UnknownSymbol(f"{sym!r} does not look like a stock symbol")
    primary = prefix if prefix in _STOCK_PREFIXES else ""
    if primary == "NYSEARCA":
        primary = "ARCA"
    return ContractSpec("STK", sym.replace(".", " "), "SMART", "USD", primary_exchange=primary)
