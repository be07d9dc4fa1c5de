"""The trader's risk file (``RISK_FILE``, YAML): limits, default sizing and fan-out accounts.

Shared by the web (which fans a strategy's alert out to its ``accounts``) and the worker (which
checks every opening order against the limits). Loading is strict: an unknown key, a wrong type,
a duplicate key or a negative limit stops the process at start with the file, the line and the
reason; a running worker re-reads the file on SIGHUP and keeps the old rules if the new file is bad.

Layout::

    defaults:                      # applies to every alert
      max_order_notional: 50000
    strategies:
      trend:                       # the alert's "strategy"
        accounts: [DU111, DU222]   # fan-out: one child alert per account
        max_order_quantity: 500
    accounts:
      DU111:                       # the account the order goes to
        daily_loss_limit: 2000

Precedence, per key: ``defaults``, then the alert's strategy, then the account (the account's word
is last: its limits are about its own money). :class:`RiskRules` remembers where each value came
from so that a refusal can say "max_order_notional 50,000 (strategy \"trend\")".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from core.account_ids import CHARACTERS, RESERVED, account_id_problem

DEFAULT_RISK_FILE = Path("config/risk.yaml")
TRADING_HOURS = ("regular", "extended", "always")
SIZING_TYPES = (
    "fixed_quantity",
    "dollar_amount",
    "risk_dollar_amount",
    "risk_percent",
    "percent_of_equity",
)


class RiskFileError(ValueError):
    """The risk file cannot be used; the message names the file, the line and the reason."""


@dataclass(frozen=True)
class DefaultSizing:
    """``default_sizing: {quantity_type: risk_percent, quantity: 1}``: how to size an alert that
    names no quantity (and no ``positionSize``)."""

    quantity_type: str
    quantity: Decimal

    def to_json(self) -> dict[str, str]:
        return {"quantity_type": self.quantity_type, "quantity": str(self.quantity)}


@dataclass(frozen=True)
class RiskRules:
    """The limits that apply to one (strategy, account); None: no such limit.

    Money limits are in the account's base currency (as IB reports NetLiquidation); quantity
    limits in the traded contract's units (shares, contracts, currency units)."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_quantity: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: Decimal | None = None
    flatten_on_daily_loss: bool = False
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    trading_hours: str = "always"
    max_price_deviation_percent: Decimal | None = None
    dry_run: bool = False
    default_sizing: DefaultSizing | None = None
    #: key -> where its value came from: "defaults", 'strategy "trend"', 'account "DU111"'
    sources: Mapping[str, str] = field(default_factory=dict)

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "defaults")

    def to_json(self) -> dict[str, Any]:
        """The rules in force, for the plan (only the keys that are set)."""
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "sources" or value is None or value == () or value is False:
                continue
            if f.name == "trading_hours" and value == "always":
                continue
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, DefaultSizing):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            doc[f.name] = value
        if doc:
            doc["sources"] = {k: v for k, v in self.sources.items() if k in doc}
        return doc


def _decimal(minimum_exclusive: bool = True) -> Callable[[Any], Decimal]:
    def parse(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("must be a number")
        try:
            number = Decimal(str(value).replace(",", "").replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"must be a number, got {value!r}") from None
        if not number.is_finite():
            raise ValueError("must be a finite number")
        if number < 0 or (minimum_exclusive and number == 0):
            raise ValueError(f"must be {'above' if minimum_exclusive else 'at least'} 0, got {value}")
        return number

    return parse


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"must be at least 0, got {value}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _symbols(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a list of symbols (TradingView tickers such as AAPL or ES1!)")
    return tuple(v.strip().upper() for v in value)


def _hours(value: Any) -> str:
    if value not in TRADING_HOURS:
        raise ValueError(f"must be one of {', '.join(TRADING_HOURS)}, got {value!r}")
    return str(value)


def _percent(value: Any) -> Decimal:
    number = _decimal()(value)
    if number > 100:
        raise ValueError(f"must be at most 100, got {value}")
    return number


def _sizing(value: Any) -> DefaultSizing:
    if not isinstance(value, dict) or set(value) != {"quantity_type", "quantity"}:
        raise ValueError("must be a mapping with exactly quantity_type and quantity")
    qtype = value["quantity_type"]
    if qtype not in SIZING_TYPES:
        raise ValueError(f"quantity_type must be one of {', '.join(SIZING_TYPES)}, got {qtype!r}")
    return DefaultSizing(qtype, _decimal()(value["quantity"]))


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_order_quantity": _decimal(),
    "max_order_notional": _decimal(),
    "max_position_quantity": _decimal(minimum_exclusive=False),
    "max_position_notional": _decimal(minimum_exclusive=False),
    "max_gross_exposure": _decimal(minimum_exclusive=False),
    "max_open_orders": _count,
    "max_orders_per_minute": _count,
    "daily_loss_limit": _decimal(),
    "flatten_on_daily_loss": _bool,
    "allow": _symbols,
    "deny": _symbols,
    "trading_hours": _hours,
    "max_price_deviation_percent": _percent,
    "dry_run": _bool,
    "default_sizing": _sizing,
}
RULE_KEYS = tuple(_PARSERS)


def _accounts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a non-empty list of IB account ids")
    accounts = tuple(v.strip() for v in value)
    # fan-out (issue 11): each id names a child alert's rq queue, so it follows the alerts' rule
    for account in accounts:
        problem = account_id_problem(account)
        if problem == RESERVED:
            raise ValueError(f"names {account!r}: {problem}")
        if problem is not None:
            raise ValueError(f"names {account!r}, not an IB account id ({CHARACTERS})")
    if len(set(accounts)) != len(accounts):
        raise ValueError("names an account twice")
    return accounts


@dataclass(frozen=True)
class RiskFile:
    """A loaded risk file (or the empty one: no limits, no fan-out)."""

    path: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    accounts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fanout: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # strategy -> accounts

    def rules_for(self, strategy: str | None, account: str | None) -> RiskRules:
        """The merged rules for an alert of ``strategy`` going to ``account``."""
        merged: dict[str, Any] = {}
        sources: dict[str, str] = {}
        layers = [("defaults", self.defaults)]
        if strategy and strategy in self.strategies:
            layers.append((f'strategy "{strategy}"', self.strategies[strategy]))
        if account and account in self.accounts:
            layers.append((f'account "{account}"', self.accounts[account]))
        for where, layer in layers:
            for key, value in layer.items():
                merged[key] = value
                sources[key] = where
        return RiskRules(**merged, sources=sources)

    def accounts_for(self, strategy: str | None) -> tuple[str, ...]:
        """The accounts a strategy's alerts fan out to (empty: no fan-out)."""
        return self.fanout.get(strategy or "", ())


def resolve_path(setting: str | None, base: Path | None = None) -> Path | None:
    """``RISK_FILE`` as given, else ``config/risk.yaml`` when it exists, else None (no limits)."""
    if setting:
        return Path(setting)
    default = (base or Path.cwd()) / DEFAULT_RISK_FILE
    return default if default.is_file() else None


def load_risk_file(path: str | Path | None) -> RiskFile:
    """Parse and validate ``path`` (None: the empty risk file). Raises :class:`RiskFileError`."""
    if path is None:
        return RiskFile()
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RiskFileError(f"{name}: cannot read the risk file: {exc.strerror or exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RiskFileError(f"{name}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        return RiskFile(path=name)

    def fail(node: yaml.Node, reason: str) -> RiskFileError:
        return RiskFileError(f"{name}:{node.start_mark.line + 1}: {reason}")

    def mapping(node: yaml.Node, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise fail(node, f"{where} must be a mapping")
        seen: set[str] = set()
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise fail(key, f"{where}: keys must be plain names")
            if key.value in seen:
                raise fail(key, f"{where}: {key.value!r} appears twice")
            seen.add(key.value)
        return list(node.value)

    def plain(node: yaml.Node) -> Any:
        return yaml.SafeLoader(text).construct_document(node)  # type: ignore[no-untyped-call]

    def rules(node: yaml.Node, where: str, allow_accounts: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
        parsed: dict[str, Any] = {}
        fan: tuple[str, ...] = ()
        for key, value in mapping(node, where):
            if key.value == "accounts" and allow_accounts:
                try:
                    fan = _accounts(plain(value))
                except ValueError as exc:
                    raise fail(value, f"{where}.accounts {exc}") from None
                continue
            parser = _PARSERS.get(key.value)
            if parser is None:
                hint = " (accounts: only under a strategy)" if key.value == "accounts" else ""
                raise fail(key, f"{where}: unknown key {key.value!r}{hint}; known: {', '.join(RULE_KEYS)}")
            try:
                parsed[key.value] = parser(plain(value))
            except ValueError as exc:
                raise fail(value, f"{where}.{key.value} {exc}") from None
        return parsed, fan

    defaults: dict[str, Any] = {}
    strategies: dict[str, dict[str, Any]] = {}
    accounts: dict[str, dict[str, Any]] = {}
    fanout: dict[str, tuple[str, ...]] = {}
    for key, value in mapping(root, "the risk file"):
        if key.value == "defaults":
            defaults, _ = rules(value, "defaults", allow_accounts=False)
        elif key.value in ("strategies", "accounts"):
            if value.value in (None, "", "null") and isinstance(value, yaml.ScalarNode):
                continue
            for name_node, body in mapping(value, key.value):
                name_text = str(name_node.value).strip()
                if not name_text:
                    raise fail(name_node, f"{key.value}: empty name")
                where = f"{key.value}.{name_text}"
                if key.value == "strategies":
                    strategies[name_text], fan = rules(body, where, allow_accounts=True)
                    if fan:
                        fanout[name_text] = fan
                else:
                    problem = account_id_problem(name_text)  # a section no account could ever match
                    if problem is not None:
                        raise fail(name_node, f"accounts: {name_text!r}: {problem}")
                    accounts[name_text], _ = rules(body, where, allow_accounts=False)
        else:
            raise fail(
                key, f"unknown section {key.value!r}; the risk file has defaults, strategies, accounts"
            )
    return RiskFile(path=name, defaults=defaults, strategies=strategies, accounts=accounts, fanout=fanout)
