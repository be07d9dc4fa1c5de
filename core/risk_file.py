"""The trader's risk file (``RISK_FILE``, YAML): limits, default sizing and fan-out accounts.

Shared by the web (which fans a strategy's alert out to its ``accounts``) and the worker (which
checks every opening order against the limits). Loading is strict: an unknown key, a wrong type,
a duplicate key, a number out of its bounds, a file that is not UTF-8, nested too deep, carries a
YAML tag other than the plain ones, or sets no rule at all (empty, comments only, truncated) is a
:class:`RiskFileError` naming the file, the line and the reason, whatever went wrong underneath.
At start that stops the process (exit 2); on a reload (SIGHUP) the rules in force stay and an
alarm says why.

Layout::

    defaults:                      # applies to every alert
      max_order_notional: 50000
    strategies:
      trend:                       # the alert's "strategy" (matched without regard to case)
        accounts: [DU111, DU222]   # fan-out: one child alert per account
        max_order_quantity: 500
    accounts:
      DU111:                       # the account the order goes to
        daily_loss_limit: 2000

How the sections combine (core/risk_rules.py): a layer never undoes a safety rule of another.
``dry_run`` and ``flatten_on_daily_loss`` true anywhere win; ``deny`` lists add up; every ``allow``
list applies. A limit (a number, ``trading_hours``, ``allow_ignore_trading_windows``) in a strategy or an account section replaces
the default, and where both set one the tighter holds. ``default_sizing``: the most specific
section's. :class:`RiskRules` remembers where each value came from so that a refusal can say
"max_order_notional 50,000 (strategy \"trend\")".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import risk_protections
from core import risk_values as values
from core.account_ids import account_id_problem
from core.risk_rules import RULE_KEYS, RiskRules, merge
from core.risk_values import DefaultSizing

__all__ = [
    "RULE_KEYS",
    "DefaultSizing",
    "RiskFile",
    "RiskFileError",
    "RiskRules",
    "load_risk_file",
    "resolve_path",
]

DEFAULT_RISK_FILE = Path("config/risk.yaml")
MAX_FILE_BYTES = 1 << 20  # a risk file is a few kilobytes; /dev/zero or a log file is not one
MAX_DEPTH = 16  # the file's own nesting is 4 (default_sizing under a strategy)
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class RiskFileError(ValueError):
    """The risk file cannot be used; the message names the file, the line and the reason."""


Parser = Callable[[yaml.Node, values.Construct], Any]
_PARSERS: dict[str, Parser] = {
    "max_order_quantity": values.amount(),
    "max_order_notional": values.amount(),
    "max_position_quantity": values.amount(above_zero=False),
    "max_position_notional": values.amount(above_zero=False),
    "max_gross_exposure": values.amount(above_zero=False),
    "max_open_orders": values.count,
    "max_orders_per_minute": values.count,
    "daily_loss_limit": values.amount(),
    "flatten_on_daily_loss": values.switch,
    "flatten_before_close": values.before_close,
    "allow": values.symbols,
    "deny": values.symbols,
    "trading_hours": values.hours,
    "allow_ignore_trading_windows": values.switch,
    "max_price_deviation_percent": values.percent,
    "dry_run": values.switch,
    "require_approval": values.switch,
    "approval_timeout": values.duration,
    "default_sizing": values.sizing,
    **risk_protections.PARSERS,
}
assert tuple(_PARSERS) == RULE_KEYS, "a key of the risk file without its parser, or the other way round"


_MERGED_KEPT = 1024  # (strategy, account) pairs whose merged rules a RiskFile keeps


@dataclass(frozen=True)
class RiskFile:
    """A loaded risk file (or the empty one: no limits, no fan-out)."""

    path: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    accounts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fanout: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # strategy -> accounts
    # (strategy, account) -> its merged rules: the file never changes (a reload is a new RiskFile),
    # and merging the layers cost a quarter of a millisecond, several times per alert
    _merged: dict[tuple[str | None, str | None], RiskRules] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def strategy_named(self, name: str | None) -> str | None:
        """The file's spelling of strategy ``name`` (``TINY`` finds ``tiny``); None: not in it."""
        if not name:
            return None
        folded = name.strip().casefold()
        return next((s for s in (*self.strategies, *self.fanout) if s.casefold() == folded), None)

    def rules_for(self, strategy: str | None, account: str | None) -> RiskRules:
        """The merged rules for an alert of ``strategy`` going to ``account`` (immutable: shared)."""
        key = (strategy, account)
        rules = self._merged.get(key)
        if rules is None:
            if len(self._merged) >= _MERGED_KEPT:  # names come from alerts: keep the memory bounded
                self._merged.clear()
            rules = self._merged[key] = self._merge_for(strategy, account)
        return rules

    def _merge_for(self, strategy: str | None, account: str | None) -> RiskRules:
        layers: list[tuple[str, Mapping[str, Any]]] = [("defaults", self.defaults)]
        named = self.strategy_named(strategy)
        if named is not None:
            layers.append((f'strategy "{named}"', self.strategies.get(named, {})))
        if account and account in self.accounts:
            layers.append((f'account "{account}"', self.accounts[account]))
        rules = dataclasses.replace(merge(layers), strategy=strategy or None)
        if strategy and named is None and self.strategies:
            return dataclasses.replace(rules, unknown_strategy=strategy, notes=(self._unknown(strategy),))
        return rules

    def _unknown(self, strategy: str) -> str:
        known = sorted(self.strategies, key=str.casefold)
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        return (f'strategy "{strategy[:128]}" is not in the risk file {self.path or ""} (it has {shown}): '
                "no strategy section applies, only defaults and the account's")  # fmt: skip

    def accounts_for(self, strategy: str | None) -> tuple[str, ...]:
        """The accounts a strategy's alerts fan out to (empty: no fan-out)."""
        named = self.strategy_named(strategy)
        return self.fanout.get(named, ()) if named is not None else ()


def resolve_path(setting: str | None, base: Path | None = None) -> Path | None:
    """``RISK_FILE`` as given, else ``config/risk.yaml`` when it exists, else None (no limits)."""
    if setting:
        return Path(setting)
    default = (base or Path.cwd()) / DEFAULT_RISK_FILE
    return default if default.is_file() else None


def load_risk_file(path: str | Path | None) -> RiskFile:
    """Parse and validate ``path`` (None: the empty risk file). Raises :class:`RiskFileError`, and
    nothing else: whatever fails underneath is reported as the file's own error."""
    if path is None:
        return RiskFile()
    name = str(path)
    try:
        return _Loader(name, _read(path, name)).load()
    except RiskFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError...: never a traceback for a file
        raise RiskFileError(f"{name}: cannot be loaded: {type(exc).__name__}: {str(exc)[:300]}") from None


def _read(path: str | Path, name: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RiskFileError(f"{name}: cannot read the risk file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise RiskFileError(f"{name}: larger than {MAX_FILE_BYTES >> 20} MB: not a risk file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RiskFileError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8"
        ) from None


def _yaml_error(name: str, text: str, exc: yaml.YAMLError) -> RiskFileError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = f":{mark.line + 1}"
    elif isinstance(exc, yaml.reader.ReaderError):  # a control character: where it sits
        line = f":{text.count(chr(10), 0, exc.position) + 1}"
    else:
        line = ""
    reason = getattr(exc, "problem", None) or exc
    return RiskFileError(f"{name}{line}: not valid YAML: {reason}")


class _Loader:
    """One pass over one file's text: its YAML events (shape), its nodes (rules)."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text

    def fail(self, node: yaml.Node | yaml.Event, reason: str) -> RiskFileError:
        return RiskFileError(f"{self.name}:{node.start_mark.line + 1}: {reason}")

    def load(self) -> RiskFile:
        try:
            self._check_shape()
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise _yaml_error(self.name, self.text, exc) from None
        if root is None:
            raise RiskFileError(self._empty("is empty (or only comments)"))
        risk = self._walk(root)
        if not (risk.defaults or risk.fanout or any(risk.strategies.values()) or any(risk.accounts.values())):
            raise RiskFileError(self._empty("sets no rule"))
        return risk

    def _empty(self, what: str) -> str:
        # a file truncated by an editor or a copy must not lift every limit: to run without a risk
        # file is a decision, taken by unsetting RISK_FILE
        return (f"{self.name}:1: the risk file {what}: truncated? A risk file in use must set its "
                "rules; to run without limits, unset RISK_FILE (and remove config/risk.yaml)")  # fmt: skip

    def _check_shape(self) -> None:
        """Before building anything: nesting (5,000 ``[`` would exhaust the composer's recursion)
        and tags (only plain YAML: ``!!python/name:`` and the like are refused, not constructed)."""
        depth = 0
        for event in yaml.parse(self.text, Loader=yaml.SafeLoader):
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _PLAIN_TAGS:
                raise self.fail(event, f"the YAML tag {values.shown(tag)} has no place in a risk file")
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.fail(event, f"nested deeper than {MAX_DEPTH} levels: not a risk file")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1

    def mapping(self, node: yaml.Node, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{where} must be a mapping")
        seen: set[str] = set()
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{where}: keys must be plain names")
            if key.value in seen:
                raise self.fail(key, f"{where}: {key.value!r} appears twice")
            seen.add(key.value)
        return list(node.value)

    def construct(self, node: yaml.Node) -> Any:
        """A node's plain value (YAML's safe constructor); its failure is the value's error."""
        try:
            return yaml.SafeLoader(self.text).construct_document(node)  # type: ignore[no-untyped-call]
        except (yaml.YAMLError, ArithmeticError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot be read: {getattr(exc, 'problem', None) or exc}") from None

    def rules(
        self, node: yaml.Node, where: str, allow_accounts: bool
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        parsed: dict[str, Any] = {}
        fan: tuple[str, ...] = ()
        for key, value in self.mapping(node, where):
            if key.value == "accounts" and allow_accounts:
                try:
                    fan = values.accounts(value, self.construct)
                except ValueError as exc:
                    raise self.fail(value, f"{where}.accounts {exc}") from None
                continue
            parser = _PARSERS.get(key.value)
            if parser is None:
                hint = " (accounts: only under a strategy)" if key.value == "accounts" else ""
                raise self.fail(
                    key,
                    f"{where}: unknown key {values.shown(key.value)}{hint}; known: {', '.join(RULE_KEYS)}",
                )
            try:
                parsed[key.value] = parser(value, self.construct)
            except ValueError as exc:
                raise self.fail(value, f"{where}.{key.value} {exc}") from None
        return parsed, fan

    def _walk(self, root: yaml.Node) -> RiskFile:
        defaults: dict[str, Any] = {}
        sections: dict[str, dict[str, dict[str, Any]]] = {"strategies": {}, "accounts": {}}
        fanout: dict[str, tuple[str, ...]] = {}
        folded: dict[str, str] = {}  # strategy names match without regard to case: one per name
        for key, value in self.mapping(root, "the risk file"):
            if key.value == "defaults":
                defaults, _ = self.rules(value, "defaults", allow_accounts=False)
                continue
            if key.value not in sections:
                raise self.fail(
                    key,
                    f"unknown section {values.shown(key.value)}; the risk file has defaults, strategies, accounts",
                )
            if isinstance(value, yaml.ScalarNode) and value.value in (None, "", "null", "~"):
                continue
            for name_node, body in self.mapping(value, key.value):
                name = str(name_node.value).strip()
                if not name:
                    raise self.fail(name_node, f"{key.value}: empty name")
                where = f"{key.value}.{name}"
                if key.value == "accounts":
                    problem = account_id_problem(name)  # a section no account could ever match
                    if problem is not None:
                        raise self.fail(name_node, f"accounts: {name!r}: {problem}")
                    sections["accounts"][name], _ = self.rules(body, where, allow_accounts=False)
                    continue
                twin = folded.setdefault(name.casefold(), name)
                if twin != name:
                    raise self.fail(name_node, f"strategies: {values.shown(name)} and {values.shown(twin)} differ "
                                               "only by case (an alert's strategy matches either)")  # fmt: skip
                sections["strategies"][name], fan = self.rules(body, where, allow_accounts=True)
                if fan:
                    fanout[name] = fan
        return RiskFile(path=self.name, defaults=defaults, strategies=sections["strategies"],
                        accounts=sections["accounts"], fanout=fanout)  # fmt: skip
