"""The risk file loader (core/risk_file.py): precedence, fan-out accounts, and a bad file named
by its line and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.risk_file import RiskFileError, load_risk_file, resolve_path

GOOD = """\
defaults:
  max_order_notional: 50,000
  trading_hours: regular
  default_sizing: {quantity_type: risk_percent, quantity: 1}
strategies:
  trend:
    accounts: [DU111, DU222]
    max_order_quantity: 500
    max_order_notional: 80000
accounts:
  DU111:
    daily_loss_limit: 2000
    max_order_notional: 10000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    return path


def test_account_overrides_strategy_overrides_defaults_and_each_value_knows_its_source(tmp_path):
    risk = load_risk_file(write(tmp_path, GOOD))
    rules = risk.rules_for("trend", "DU111")
    assert rules.max_order_notional == Decimal(10000)
    assert rules.source_of("max_order_notional") == 'account "DU111"'
    assert rules.max_order_quantity == Decimal(500)
    assert rules.source_of("max_order_quantity") == 'strategy "trend"'
    assert rules.trading_hours == "regular" and rules.source_of("trading_hours") == "defaults"
    assert rules.daily_loss_limit == Decimal(2000)
    other = risk.rules_for("trend", "DU222")
    assert other.max_order_notional == Decimal(80000) and other.daily_loss_limit is None
    plain = risk.rules_for(None, None)
    assert plain.max_order_notional == Decimal(50000) and plain.max_order_quantity is None
    assert plain.default_sizing is not None and plain.default_sizing.quantity_type == "risk_percent"
    assert risk.accounts_for("trend") == ("DU111", "DU222")
    assert risk.accounts_for("other") == () and risk.accounts_for(None) == ()


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("defaults:\n  max_order_quantity: -5\n", 2, "defaults.max_order_quantity must be above 0"),
        ("defaults:\n  max_oder_quantity: 5\n", 2, "unknown key 'max_oder_quantity'"),
        ("strategies:\n  a:\n    accounts: []\n", 3, "strategies.a.accounts must be a non-empty list"),
        ("accounts:\n  DU1:\n    accounts: [DU2]\n", 3, "accounts: only under a strategy"),
        # "default" is the queue of alerts naming no account: as a fan-out account it doubled DU1's orders
        (
            "strategies:\n  a:\n    accounts: [DU1, default]\n",
            3,
            "strategies.a.accounts names 'default': 'default' is not an account id",
        ),
        (
            "accounts:\n  DEFAULT:\n    max_open_orders: 1\n",
            2,
            "accounts: 'DEFAULT': 'default' is not an account id",
        ),
        ("accounts:\n  DU 1:\n    max_open_orders: 1\n", 2, "accounts: 'DU 1': contains characters"),
        ("defaults:\n  dry_run: yes please\n", 2, "defaults.dry_run must be true or false"),
        ("defaults:\n  trading_hours: night\n", 2, "must be one of regular, extended, always"),
        ("defaults:\n  dry_run: true\n  dry_run: false\n", 3, "'dry_run' appears twice"),
        ("limits:\n  x: 1\n", 1, "unknown section 'limits'"),
        ("defaults: [1, 2]\n", 1, "defaults must be a mapping"),
        ("defaults:\n  max_open_orders: 2.5\n", 2, "max_open_orders must be a whole number"),
        ("defaults:\n  max_price_deviation_percent: 150\n", 2, "must be at most 100"),
        (
            "defaults:\n  default_sizing: {quantity_type: lots, quantity: 1}\n",
            2,
            "quantity_type must be one of",
        ),
        ("defaults:\n  a: [\n", 3, "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_with_its_line_and_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(RiskFileError) as info:
        load_risk_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert reason in message


def test_missing_file_and_default_path(tmp_path):
    with pytest.raises(RiskFileError, match="cannot read the risk file"):
        load_risk_file(tmp_path / "nope.yaml")
    assert resolve_path(None, tmp_path) is None
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "risk.yaml").write_text("defaults: {}\n")
    assert resolve_path(None, tmp_path) == tmp_path / "config" / "risk.yaml"
    assert resolve_path("/elsewhere/r.yaml", tmp_path) == Path("/elsewhere/r.yaml")
    assert load_risk_file(None).rules_for("x", "y").max_order_quantity is None
    assert load_risk_file(write(tmp_path, "")).accounts_for("x") == ()


def test_the_shipped_example_loads_and_names_every_key():
    from core.risk_file import RULE_KEYS

    example = Path(__file__).resolve().parents[2] / "config" / "risk.example.yaml"
    risk = load_risk_file(example)
    text = example.read_text()
    assert [key for key in RULE_KEYS if f"{key}:" not in text] == []
    assert risk.rules_for("paper", None).dry_run is True
    assert risk.rules_for("trend", "DU111111").source_of("daily_loss_limit") == 'account "DU111111"'
