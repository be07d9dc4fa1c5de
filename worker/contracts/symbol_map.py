"""The symbol-map file (``SYMBOL_MAP_FILE``, YAML): TradingView tickers → IB contracts, quantity
multipliers and per-root futures roll rules. Loaded and validated when the worker starts (a bad
file stops it, naming the file, the line and the reason) and re-read on SIGHUP
(:meth:`SymbolResolver.reload`; a bad file then keeps the map in force and says why).

The format (docs/contracts.md has the full description; ``config/symbols.example.yaml`` an
example)::

    futures:                      # per root (optional)
      GC: {roll_days: 35}         # exchange, currency, roll_days
      ZN: {exchange: CBOT}
    symbols:                      # per TradingView ticker, with or without EXCHANGE: prefix
      NQ1!: {symbol: MNQ, quantity_multiplier: 10}
      ES1!: {contract_month: 202703}
      SPX500: {sec_type: STK, symbol: SPY, primary_exchange: ARCA}

An entry's fields lie over what the built-in rules (:func:`worker.contracts.tickers.resolve_ticker`) make
of the key itself (``NQ1!`` → FUT NQ on CME, front month), so an entry names only what differs;
an entry whose ``sec_type`` differs from that (or whose key the rules do not know) starts from
nothing and needs ``symbol`` (default: the key) and, beyond STK / CASH / CRYPTO, ``exchange``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from config.settings import SettingsError
from worker.contracts.tickers import (
    FUTURES_EXCHANGES,
    OPTION_SEC_TYPES,
    ContractSpec,
    FuturesRoot,
    UnknownSymbol,
    continuous_parts,
    is_continuous,
    resolve_ticker,
)

log = logging.getLogger(__name__)

SEC_TYPES = {"STK", "FUT", "CASH", "CRYPTO"} | OPTION_SEC_TYPES
DEFAULT_EXCHANGES = {"STK": "SMART", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}
SYMBOL_FIELDS = {
    "sec_type", "symbol", "exchange", "primary_exchange", "currency", "trading_class",
    "local_symbol", "multiplier", "contract_month", "con_id", "quantity_multiplier", "roll_days",
}  # fmt: skip
ROOT_FIELDS = {"exchange", "currency", "roll_days"}
TOP_KEYS = {"symbols", "futures"}
_MONTH = re.compile(r"\d{6}(\d{2})?")
_CODE = re.compile(r"[A-Z0-9][A-Z0-9 ._/-]{0,31}")


class SymbolMapError(SettingsError):
    """The symbol-map file is unreadable or invalid; the message names the file, line and reason."""


@dataclass(frozen=True)
class SymbolMap:
    """A validated map: ticker overrides (keys upper-case, with or without prefix) and root rules."""

    overrides: Mapping[str, ContractSpec] = field(default_factory=dict)
    roots: Mapping[str, FuturesRoot] = field(default_factory=dict)
    source: str = ""  # the file it came from ("" = no file)


class _Marked(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers the line of each key (1-based) and its own."""

    line = 0
    lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings carry their lines and refuse duplicate keys (YAML would silently
    keep the last one: a second ``NQ1!`` entry would quietly win)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Marked:
    loader.flatten_mapping(node)
    mapping = _Marked()
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int)):
            raise _Invalid(line, f"a key must be text, got {key!r}")
        if key in mapping:
            raise _Invalid(line, f"{key!r} appears twice (first on line {mapping.lines[key]})")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Invalid(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def load_symbol_map(path: str | Path) -> SymbolMap:
    """Read and validate the file; :class:`SymbolMapError` says which line is wrong and why."""
    where = f"SYMBOL_MAP_FILE {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SymbolMapError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    try:
        return parse_symbol_map(text, str(path))
    except _Invalid as exc:
        raise SymbolMapError(f"{where} line {exc.line}: {exc.reason}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise SymbolMapError(f"{where} line {line}: not valid YAML: {exc.problem or exc.context}") from None


def parse_symbol_map(text: str, source: str = "") -> SymbolMap:
    """The map in ``text`` (raises ``_Invalid`` with a line, or yaml's own marked errors)."""
    doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    if doc is None:
        return SymbolMap(source=source)
    if not isinstance(doc, _Marked):
        raise _Invalid(1, "the file must be a mapping with 'symbols' and/or 'futures'")
    for key in doc:
        if key not in TOP_KEYS:
            raise _Invalid(doc.lines[key], f"unknown section {key!r} (expected: symbols, futures)")
    roots = _roots(doc.get("futures"), doc.lines.get("futures", 1))
    overrides: dict[str, ContractSpec] = {}
    symbols = doc.get("symbols")
    if symbols is not None:
        if not isinstance(symbols, _Marked):
            raise _Invalid(doc.lines["symbols"], "'symbols' must be a mapping of ticker: {fields}")
        for ticker, entry in symbols.items():
            line = symbols.lines[ticker]
            key = str(ticker).strip().upper()
            if not isinstance(entry, _Marked):
                raise _Invalid(line, f"symbols.{key} must be a mapping of contract fields")
            if key in overrides:
                raise _Invalid(line, f"symbols.{key} appears twice (keys are not case-sensitive)")
            overrides[key] = _entry(key, entry, roots)
    return SymbolMap(overrides, roots, source)


def _roots(section: Any, line: int) -> dict[str, FuturesRoot]:
    if section is None:
        return {}
    if not isinstance(section, _Marked):
        raise _Invalid(line, "'futures' must be a mapping of root: {exchange, currency, roll_days}")
    roots = {}
    for root, entry in section.items():
        where, at = f"futures.{root}", section.lines[root]
        if not isinstance(entry, _Marked):
            raise _Invalid(at, f"{where} must be a mapping with exchange, currency and/or roll_days")
        _known(entry, ROOT_FIELDS, where)
        roots[str(root).upper()] = FuturesRoot(
            exchange=_code(entry, "exchange", where),
            currency=_code(entry, "currency", where),
            roll_days=_roll_days(entry, where),
        )
    return roots


def _known(entry: _Marked, allowed: set[str], where: str) -> None:
    for key in entry:
        if key not in allowed:
            raise _Invalid(
                entry.lines[key], f"{where}: unknown field {key!r} (allowed: {', '.join(sorted(allowed))})"
            )


def _code(entry: _Marked, name: str, where: str) -> str:
    """An exchange / symbol / currency code: text, upper-cased."""
    if name not in entry:
        return ""
    value = entry[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, int))
        or not _CODE.fullmatch(str(value).upper())
    ):
        raise _Invalid(entry.lines[name], f"{where}.{name} must be a code like CME or MNQ, got {value!r}")
    return str(value).upper()


def _roll_days(entry: _Marked, where: str) -> int | None:
    if "roll_days" not in entry:
        return None
    value = entry["roll_days"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
        raise _Invalid(
            entry.lines["roll_days"],
            f"{where}.roll_days must be a whole number of days from 0 to 365, got {value!r}",
        )
    return value


def _entry(key: str, entry: _Marked, roots: Mapping[str, FuturesRoot]) -> ContractSpec:
    """One ``symbols:`` entry → the ContractSpec the ticker resolves to."""
    where = f"symbols.{key}"
    _known(entry, SYMBOL_FIELDS, where)
    sec_type = _code(entry, "sec_type", where)
    if sec_type and sec_type not in SEC_TYPES:
        allowed = ", ".join(sorted(SEC_TYPES))
        raise _Invalid(
            entry.lines["sec_type"], f"{where}.sec_type must be one of {allowed}, got {entry['sec_type']!r}"
        )
    con_id = _con_id(entry, where)
    base = _base(key, entry, roots, sec_type, con_id, where)
    spec = replace(base, **_changes(key, base, entry, roots, con_id, where))
    if spec.sec_type == "FUT" and spec.front_index:
        root_rule = roots.get(spec.symbol)
        roll = _roll_days(entry, where)
        spec = replace(
            spec, roll_days=roll if roll is not None else (root_rule.roll_days if root_rule else None)
        )
    elif "roll_days" in entry:
        raise _Invalid(entry.lines["roll_days"], f"{where}.roll_days is for continuous futures (ROOT1!) only")
    if spec.sec_type == "FUT" and not spec.exchange and not spec.con_id:
        raise _Invalid(
            entry.line, f"{where} needs exchange (futures root {spec.symbol!r} is not a built-in one)"
        )
    if spec.sec_type in OPTION_SEC_TYPES:
        log.warning("%s: sec_type %s is accepted in the map but alerts on it are refused (no options)",
                    where, spec.sec_type)  # fmt: skip
    return spec


def _base(key: str, entry: _Marked, roots: Mapping[str, FuturesRoot], sec_type: str, con_id: int,
          where: str) -> ContractSpec:  # fmt: skip
    """What the key resolves to by the built-in rules (the entry's fields change it), else a bare
    spec of the entry's kind."""
    try:
        base: ContractSpec | None = resolve_ticker(key, futures_roots=roots)
    except UnknownSymbol:
        base = None
    if base is not None and (not sec_type or sec_type == base.sec_type):
        return base  # (another kind of contract than the key suggests: nothing carries over)
    sec_type = sec_type or ("FUT" if is_continuous(key) else "STK" if not con_id else "")
    if not sec_type:
        raise _Invalid(entry.line, f"{where} needs sec_type (STK, FUT, CASH, CRYPTO)")
    exchange = _code(entry, "exchange", where) or DEFAULT_EXCHANGES.get(sec_type, "")
    if not exchange and not con_id and sec_type not in OPTION_SEC_TYPES:
        raise _Invalid(entry.line, f"{where} needs exchange for sec_type {sec_type}")
    root, index = continuous_parts(key)
    if sec_type == "FUT" and index:  # ZZ1! on a root tv2ib does not know: still "the n-th"
        return ContractSpec(sec_type, root, exchange, front_index=index)
    return ContractSpec(sec_type, key.partition(":")[2] or key, exchange)


def _changes(key: str, base: ContractSpec, entry: _Marked, roots: Mapping[str, FuturesRoot], con_id: int,
             where: str) -> dict[str, Any]:  # fmt: skip
    """The entry's fields, as changes to the base spec (``sec_type`` aside)."""
    spec_type = base.sec_type
    changes: dict[str, Any] = {}
    for name in ("symbol", "exchange", "primary_exchange", "currency", "trading_class", "local_symbol"):
        value = _code(entry, name, where)
        if value:
            changes[name] = value.replace(".", " ") if name == "symbol" and spec_type == "STK" else value
    if "multiplier" in entry:
        changes["multiplier"] = _multiplier(entry, where)
    month = _contract_month(entry, where)
    if month or con_id:
        # a pinned contract: no longer "the n-th by expiry"; an ES1! entry pinned to a month
        # still follows the front for a position held in an earlier month (worker/contracts/held_month.py)
        changes.update(contract_month=month, con_id=con_id, front_index=0,
                       pinned_continuous=base.front_index == 1 or is_continuous(key) == 1)  # fmt: skip
        if spec_type != "FUT" and month:
            raise _Invalid(
                entry.lines["contract_month"], f"{where}.contract_month is for futures (sec_type FUT)"
            )
    if "quantity_multiplier" in entry:
        changes["quantity_multiplier"] = _quantity_multiplier(entry, where)
    if spec_type == "FUT" and "symbol" in changes and "exchange" not in changes:
        # another root than the key's (NQ1! traded as MYM): that root's exchange
        root_rule = roots.get(changes["symbol"])
        venue = (root_rule.exchange if root_rule else "") or FUTURES_EXCHANGES.get(changes["symbol"], "")
        if venue:
            changes["exchange"] = venue
    return changes


def _con_id(entry: _Marked, where: str) -> int:
    if "con_id" not in entry:
        return 0
    value = entry["con_id"]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid(
            entry.lines["con_id"], f"{where}.con_id must be IB's positive contract id, got {value!r}"
        )
    return value


def _contract_month(entry: _Marked, where: str) -> str:
    if "contract_month" not in entry:
        return ""
    value = str(entry["contract_month"]).strip()
    month = int(value[4:6]) if _MONTH.fullmatch(value) else 0
    if not 1 <= month <= 12:
        got = entry["contract_month"]
        raise _Invalid(
            entry.lines["contract_month"], f"{where}.contract_month must be YYYYMM (or YYYYMMDD), got {got!r}"
        )
    return value


def _number(entry: _Marked, name: str, where: str, what: str) -> Decimal:
    value = entry[name]
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, bool) else Decimal("NaN")
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number <= 0:
        raise _Invalid(entry.lines[name], f"{where}.{name} must be {what}, got {value!r}")
    return number


def _multiplier(entry: _Marked, where: str) -> str:
    return format(
        _number(entry, "multiplier", where, "IB's contract multiplier (a positive number)").normalize(), "f"
    )


def _quantity_multiplier(entry: _Marked, where: str) -> Decimal:
    value = _number(
        entry, "quantity_multiplier", where, "a positive number (alert contracts × it = contracts traded)"
    )
    if value > 10_000:
        raise _Invalid(
            entry.lines["quantity_multiplier"],
            f"{where}.quantity_multiplier must be at most 10000, got {value}",
        )
    return value


class SymbolResolver:
    """The worker's resolver: the symbol map in force, plus FUTURES_ROLL_DAYS for continuous
    futures the map does not give a roll rule. Thread-safe: SIGHUP swaps the map while jobs run
    (a job resolves its ticker once, with the map in force when it starts)."""

    def __init__(self, path: str | None, default_roll_days: int) -> None:
        self.path = path
        self.default_roll_days = default_roll_days
        self._lock = threading.Lock()
        self.map = load_symbol_map(path) if path else SymbolMap()
        if path:
            log.info("symbol map %s: %d ticker(s), %d futures root rule(s)", path, len(self.map.overrides),
                     len(self.map.roots))  # fmt: skip

    def resolve(self, ticker: str, exchange: str | None = None) -> ContractSpec:
        """The ticker's contract with the map's overrides and roll rules applied."""
        current = self.map
        spec = resolve_ticker(ticker, exchange, overrides=current.overrides, futures_roots=current.roots)
        if spec.sec_type == "FUT" and spec.front_index and spec.roll_days is None:
            spec = replace(spec, roll_days=self.default_roll_days)
        return spec

    def reload(self) -> str:
        """Re-read the file (SIGHUP). A bad file leaves the map in force; the error says why."""
        if not self.path:
            return "no SYMBOL_MAP_FILE set: nothing to reload"
        with self._lock:
            fresh = load_symbol_map(self.path)  # raises SymbolMapError: the caller logs it
            self.map = fresh
        counts = f"{len(fresh.overrides)} ticker(s), {len(fresh.roots)} root rule(s)"
        message = f"symbol map {self.path} reloaded: {counts}"
        log.info("%s", message)
        return message
