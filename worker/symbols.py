"""TradingView ticker → IB contract description (the one seam for symbol mapping).

This module is pure: it turns ``ES1!``, ``MESZ2026``, ``EURUSD``, ``BTCUSD`` or ``AAPL`` into a
:class:`ContractSpec` that the IB session then qualifies through IB itself (so an unknown symbol is
refused with IB's own reason). A later issue adds user mapping files; they plug in by passing a
``overrides`` mapping to :func:`resolve_ticker` (ticker → ContractSpec) before these rules apply.

Rules, in order:

1. ``overrides[ticker]`` when given.
2. Continuous futures ``ROOT<n>!`` (``ES1!``, ``MNQ2!``): the n-th listed contract of ``ROOT`` by
   expiry, found through reqContractDetails on the FUT symbol.
3. Explicit futures ``ROOT<month code><year>`` (``MESZ2026``, ``ESZ26``, ``ESZ6``) when ``ROOT`` is
   in :data:`FUTURES_EXCHANGES` (or the alert's exchange prefix is a futures exchange).
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
from typing import Any

from worker.errors import Refused

# Futures root → exchange. Small on purpose: symbol mapping files (a later issue) extend it.
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


class UnknownSymbol(Refused):
    """The ticker cannot be mapped to an IB contract description."""


@dataclass(frozen=True)
class ContractSpec:
    """What to ask IB for. ``front_index`` > 0 means "the n-th future by expiry" (``ES1!``)."""

    sec_type: str  # STK, CASH, FUT, CRYPTO
    symbol: str
    exchange: str
    currency: str = "USD"
    primary_exchange: str = ""
    contract_month: str = ""  # YYYYMM for an explicit future
    front_index: int = 0

    @property
    def cache_key(self) -> str:
        """Key of the qualified-contract cache."""
        return "|".join(
            [self.sec_type, self.symbol, self.exchange, self.currency, self.primary_exchange,
             self.contract_month, str(self.front_index)]
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


def resolve_ticker(
    ticker: str,
    exchange: str | None = None,
    *,
    overrides: Mapping[str, ContractSpec] | None = None,
    today_year: int | None = None,
) -> ContractSpec:
    """Map a TradingView ticker (optionally ``EXCHANGE:``-prefixed) to a :class:`ContractSpec`."""
    sym, prefix = _split_prefix(ticker, exchange)
    today_year = today_year or datetime.now(UTC).year
    if not sym:
        raise UnknownSymbol("empty ticker")
    if overrides and sym in overrides:
        return overrides[sym]
    fut_exchange = _FUTURES_PREFIXES.get(prefix or "")

    match = _CONTINUOUS.match(sym)
    if match:
        root, index = match.group(1), int(match.group(2))
        venue = FUTURES_EXCHANGES.get(root) or fut_exchange
        if venue is None or index < 1:
            raise UnknownSymbol(f"unknown futures root {root!r} in {sym!r}")
        return ContractSpec("FUT", root, venue, front_index=index)

    match = _EXPLICIT_FUT.match(sym)
    if match and (match.group(1) in FUTURES_EXCHANGES or fut_exchange):
        root, code, year_text = match.groups()
        month = MONTH_CODES.index(code) + 1
        year = _year_from(year_text, month, today_year)
        venue = FUTURES_EXCHANGES.get(root) or fut_exchange or ""
        return ContractSpec("FUT", root, venue, contract_month=f"{year:04d}{month:02d}")

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
