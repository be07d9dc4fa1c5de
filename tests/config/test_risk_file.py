"""The risk file loader (core/risk_file.py): how the sections combine (core/risk_rules.py), fan-out
accounts, numbers as written (core/risk_values.py), and a bad file named by its line and reason,
whatever is wrong with it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.risk_file import DefaultSizing, RiskFileError, load_risk_file, resolve_path

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
        (
            "strategies:\n  s:\n    allow_ignore_trading_windows: sometimes\n",
            3,
            "strategies.s.allow_ignore_trading_windows must be true or false, got 'sometimes'",
        ),
        ("defaults:\n  allow_ignore_trading_window: true\n", 2, "unknown key 'allow_ignore_trading_window'"),
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
        ("strategies:\n  day:\n    flatten_before_close: 0\n", 3,
         "strategies.day.flatten_before_close must be above 0, got 0 (minutes from 1 to 720, or false: never)"),
        ("defaults:\n  flatten_before_close: 7.5\n", 2, "flatten_before_close must be a whole number of minutes"),
        ("defaults:\n  flatten_before_close: 721\n", 2, "flatten_before_close must be at most 720"),
        ("defaults:\n  flatten_before_close: true\n", 2, "must be a number of minutes, got true"),
        ("defaults:\n  flatten_before_close: 15m\n", 2, "flatten_before_close must be a number, got '15m'"),
        ("defaults:\n  flatten_before_close:\n", 2, "flatten_before_close must be a number, got nothing"),
    ],
)  # fmt: skip
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


def test_the_shipped_example_loads_and_names_every_key():
    from core.risk_file import RULE_KEYS

    example = Path(__file__).resolve().parents[2] / "config" / "risk.example.yaml"
    risk = load_risk_file(example)
    text = example.read_text()
    assert [key for key in RULE_KEYS if f"{key}:" not in text] == []
    assert risk.rules_for("paper", None).dry_run is True
    assert risk.rules_for("trend", "DU111111").source_of("daily_loss_limit") == 'account "DU111111"'


# --- sections combine without undoing a safety rule (issue 16, item 3) --------------------------


def rules(tmp_path: Path, text: str, strategy: str | None, account: str | None):
    return load_risk_file(write(tmp_path, text)).rules_for(strategy, account)


@pytest.mark.parametrize(
    ("text", "strategy", "account", "key", "value", "source"),
    [
        # dry_run true anywhere wins: the example's `dry_run: false` copied into an account section
        ("strategies:\n  paper:\n    dry_run: true\naccounts:\n  DU1:\n    dry_run: false\n",
         "paper", "DU1", "dry_run", True, 'strategy "paper"'),
        ("defaults:\n  dry_run: true\nstrategies:\n  live:\n    dry_run: false\n",
         "live", None, "dry_run", True, "defaults"),
        ("accounts:\n  DU1:\n    dry_run: true\nstrategies:\n  live:\n    dry_run: false\n",
         "live", "DU1", "dry_run", True, 'account "DU1"'),
        ("defaults:\n  dry_run: false\n", None, None, "dry_run", False, "defaults"),
        ("defaults:\n  flatten_on_daily_loss: true\naccounts:\n  DU1:\n    flatten_on_daily_loss: false\n",
         None, "DU1", "flatten_on_daily_loss", True, "defaults"),
        # deny lists add up
        ("defaults:\n  deny: [GME, INTC]\naccounts:\n  DU1:\n    deny: [TSLA]\n",
         None, "DU1", "deny", ("GME", "INTC", "TSLA"), 'defaults + account "DU1"'),
        ("defaults:\n  deny: [GME]\nstrategies:\n  s:\n    deny: [intc]\naccounts:\n  DU1:\n    deny: [GME]\n",
         "s", "DU1", "deny", ("GME", "INTC"), 'defaults + strategy "s" + account "DU1"'),
        # a limit of a strategy or an account replaces the default, up or down...
        ("defaults:\n  max_order_notional: 50000\nstrategies:\n  big:\n    max_order_notional: 80000\n",
         "big", None, "max_order_notional", Decimal(80000), 'strategy "big"'),
        ("defaults:\n  max_order_quantity: 100\naccounts:\n  DU1:\n    max_order_quantity: 500\n",
         None, "DU1", "max_order_quantity", Decimal(500), 'account "DU1"'),
        # ... and where both set one, the tighter holds: the defaults copied into an account section
        # do not lift a small strategy's limit
        ("defaults:\n  max_order_quantity: 1000\nstrategies:\n  tiny:\n    max_order_quantity: 1\n"
         "accounts:\n  DU1:\n    max_order_quantity: 1000\n",
         "tiny", "DU1", "max_order_quantity", Decimal(1), 'strategy "tiny"'),
        ("strategies:\n  s:\n    max_open_orders: 9\naccounts:\n  DU1:\n    max_open_orders: 3\n",
         "s", "DU1", "max_open_orders", 3, 'account "DU1"'),
        ("strategies:\n  s:\n    daily_loss_limit: 900\naccounts:\n  DU1:\n    daily_loss_limit: 900\n",
         "s", "DU1", "daily_loss_limit", Decimal(900), 'account "DU1"'),  # a tie: the account's word
        ("defaults:\n  trading_hours: regular\nstrategies:\n  s:\n    trading_hours: extended\n",
         "s", None, "trading_hours", "extended", 'strategy "s"'),
        ("strategies:\n  s:\n    trading_hours: always\naccounts:\n  DU1:\n    trading_hours: regular\n",
         "s", "DU1", "trading_hours", "regular", 'account "DU1"'),
        # allow_ignore_trading_windows: an opt-in per strategy or in defaults; false, the tighter,
        # holds where a strategy and an account disagree
        ("strategies:\n  night:\n    allow_ignore_trading_windows: true\n",
         "night", None, "allow_ignore_trading_windows", True, 'strategy "night"'),
        ("defaults:\n  allow_ignore_trading_windows: true\n",
         "any", None, "allow_ignore_trading_windows", True, "defaults"),
        ("defaults:\n  allow_ignore_trading_windows: true\nstrategies:\n  s:\n    allow_ignore_trading_windows: false\n",
         "s", None, "allow_ignore_trading_windows", False, 'strategy "s"'),
        ("strategies:\n  s:\n    allow_ignore_trading_windows: true\n"
         "accounts:\n  DU1:\n    allow_ignore_trading_windows: false\n",
         "s", "DU1", "allow_ignore_trading_windows", False, 'account "DU1"'),
        ("defaults:\n  trading_hours: regular\n", None, None, "allow_ignore_trading_windows", False, "defaults"),
        # flatten_before_close: a strategy's replaces the default (false: never); beside an account's,
        # the earlier flatten holds
        ("defaults:\n  flatten_before_close: 15\nstrategies:\n  swing:\n    flatten_before_close: false\n",
         "swing", None, "flatten_before_close", 0, 'strategy "swing"'),
        ("defaults:\n  flatten_before_close: 15\nstrategies:\n  scalp:\n    flatten_before_close: 5\n",
         "scalp", None, "flatten_before_close", 5, 'strategy "scalp"'),
        ("defaults:\n  flatten_before_close: 15\n", "any", None, "flatten_before_close", 15, "defaults"),
        ("strategies:\n  swing:\n    flatten_before_close: false\naccounts:\n  DU1:\n    flatten_before_close: 10\n",
         "swing", "DU1", "flatten_before_close", 10, 'account "DU1"'),
        ("strategies:\n  s:\n    flatten_before_close: 30\naccounts:\n  DU1:\n    flatten_before_close: 10\n",
         "s", "DU1", "flatten_before_close", 30, 'strategy "s"'),
        ("defaults:\n  max_open_orders: 3\n", "s", None, "flatten_before_close", None, "defaults"),
        # default_sizing is no limit: the most specific section's
        ("defaults:\n  default_sizing: {quantity_type: risk_percent, quantity: 1}\n"
         "accounts:\n  DU1:\n    default_sizing: {quantity_type: fixed_quantity, quantity: 3}\n",
         None, "DU1", "default_sizing", DefaultSizing("fixed_quantity", Decimal(3)), 'account "DU1"'),
        # strategy names match without regard to case
        ("strategies:\n  tiny:\n    max_order_quantity: 1\n",
         "TINY", None, "max_order_quantity", Decimal(1), 'strategy "tiny"'),
        ("strategies:\n  Trend:\n    max_order_quantity: 7\n",
         "trend", None, "max_order_quantity", Decimal(7), 'strategy "Trend"'),
    ],
)  # fmt: skip
def test_a_section_never_undoes_a_safety_rule_of_another(
    tmp_path, text, strategy, account, key, value, source
):
    merged = rules(tmp_path, text, strategy, account)
    assert getattr(merged, key) == value
    assert merged.source_of(key) == source


def test_every_allow_list_applies_and_a_section_without_one_adds_no_condition(tmp_path):
    text = "defaults:\n  allow: [AAPL, MSFT, NASDAQ:NVDA]\naccounts:\n  DU1:\n    allow: [MSFT, NVDA]\n  DU2: {}\n"
    both = rules(tmp_path, text, None, "DU1")
    assert both.allow_lists() == (
        ("defaults", ("AAPL", "MSFT", "NASDAQ:NVDA")),
        ('account "DU1"', ("MSFT", "NVDA")),
    )
    assert both.to_json()["allow_layers"][1] == {"source": 'account "DU1"', "symbols": ["MSFT", "NVDA"]}
    assert rules(tmp_path, text, None, "DU2").allow_lists() == (
        ("defaults", ("AAPL", "MSFT", "NASDAQ:NVDA")),
    )
    assert rules(tmp_path, "defaults:\n  deny: [X]\n", None, None).allow_lists() == ()


def test_an_unknown_strategy_gets_a_warning_and_the_fanout_matches_without_case(tmp_path):
    risk = load_risk_file(
        write(tmp_path, "strategies:\n  tiny:\n    accounts: [DU1]\n  trend: {max_order_quantity: 5}\n")
    )
    unknown = risk.rules_for("tinyy", "DU1")
    assert unknown.unknown_strategy == "tinyy"
    assert unknown.notes == (
        f'strategy "tinyy" is not in the risk file {tmp_path / "risk.yaml"} (it has tiny, trend): '
        "no strategy section applies, only defaults and the account's",
    )
    assert risk.rules_for("TINY", None).unknown_strategy is None and risk.rules_for(None, None).notes == ()
    assert risk.accounts_for("Tiny") == ("DU1",) and risk.accounts_for("tinyy") == ()
    # a file without strategies has nothing an alert's strategy could have meant
    assert load_risk_file(write(tmp_path, "defaults: {dry_run: true}\n")).rules_for("x", None).notes == ()


def test_two_strategies_differing_only_by_case_are_a_load_error(tmp_path):
    path = write(tmp_path, "strategies:\n  tiny:\n    dry_run: true\n  Tiny:\n    dry_run: false\n")
    with pytest.raises(RiskFileError) as info:
        load_risk_file(path)
    assert str(info.value) == (
        f"{path}:4: strategies: 'Tiny' and 'tiny' differ only by case (an alert's strategy matches either)"
    )


def test_the_example_is_safe_to_copy_between_sections():
    """The whole defaults block of the shipped example, pasted under an account: no rule of a
    strategy is loosened for that account."""
    example = (Path(__file__).resolve().parents[2] / "config" / "risk.example.yaml").read_text()
    risk = load_risk_file(Path(__file__).resolve().parents[2] / "config" / "risk.example.yaml")
    block = example.split("defaults:\n", 1)[1].split("\nstrategies:", 1)[0]
    pasted = example.replace(
        "accounts:\n  DU111111:",
        "accounts:\n  DU999:\n"
        + block.replace("\n  ", "\n    ").replace("\n    \n", "\n\n")
        + "\n  DU111111:",
        1,
    )
    copied = load_risk_file_text(pasted)
    for strategy in ("paper", "trend"):
        before, after = risk.rules_for(strategy, None), copied.rules_for(strategy, "DU999")
        assert after.dry_run >= before.dry_run and set(after.deny) >= set(before.deny)
        for key in ("max_order_quantity", "max_order_notional", "max_position_notional", "daily_loss_limit"):
            assert getattr(after, key) <= getattr(before, key), (strategy, key)
    assert copied.rules_for("paper", "DU999").dry_run is True


def load_risk_file_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return load_risk_file(write(Path(folder), text))


# --- numbers as written: thousands separators only, and bounded (items 3 and 5, and 11) ---------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("50000", Decimal(50000)),
        ("50,000", Decimal(50000)),
        ("'50,000'", Decimal(50000)),
        ("1,000,000.5", Decimal("1000000.5")),
        ("1_000", Decimal(1000)),
        ("0.5", Decimal("0.5")),
        (".25", Decimal("0.25")),
        ("5e4", Decimal(50000)),
        ("2.50", Decimal("2.50")),
        ("017", Decimal(17)),  # decimal, not YAML 1.1's octal 15
        ("1,000,000,000,000", Decimal("1e12")),
    ],
)
def test_numbers_are_read_as_written(tmp_path, written, value):
    assert (
        load_risk_file(write(tmp_path, f"defaults:\n  max_order_notional: {written}\n")).defaults[
            "max_order_notional"
        ]
        == value
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("max_order_notional: 1,5", "max_order_notional must be a number with commas only as thousands separators (1,000 or 1,000,000.5), got '1,5'"),
        ("max_order_notional: '5,0,0'", "with commas only as thousands separators"),
        ("max_order_notional: 1,0000", "with commas only as thousands separators"),
        ("max_order_notional: 10,00.5", "with commas only as thousands separators"),
        ("max_order_notional: ',500'", "must be a number, got ',500' (commas only as thousands separators"),
        ("max_order_notional: 1_5", "with underscores only as thousands separators"),
        ("max_order_notional: 1:30", "must be a number, got '1:30'"),  # YAML 1.1 would say 90
        ("max_order_notional: 0x10", "must be a number, got '0x10'"),
        ("max_order_notional: .inf", "must be a number, got '.inf'"),
        ("max_order_notional: .nan", "must be a number, got '.nan'"),
        ("max_order_notional: true", "must be a number, got 'true'"),
        ("max_order_notional:", "must be a number, got nothing"),
        ("max_order_notional: [1]", "must be a number, got a list or a mapping"),
        ("daily_loss_limit: 1e5000", "daily_loss_limit must be at most 1,000,000,000,000, got 1e5000"),
        ("daily_loss_limit: 1e1000000", "daily_loss_limit must be at most 1,000,000,000,000, got 1e1000000"),
        ("daily_loss_limit: 1e99999999999999999999", "must be a number of at most 1,000,000,000,000"),
        ("daily_loss_limit: 1e-1000000", "daily_loss_limit must have at most 8 decimals, got 1e-1000000"),
        ("max_order_quantity: 0.000000001", "must have at most 8 decimals"),
        ("max_order_quantity: " + "9" * 5000, "must be at most 1,000,000,000,000"),
        ("max_gross_exposure: 1000000000001", "must be at most 1,000,000,000,000, got 1000000000001"),
        ("max_position_quantity: -1", "max_position_quantity must be at least 0, got -1"),
        ("daily_loss_limit: 0", "daily_loss_limit must be above 0, got 0"),
        ("max_open_orders: 1e6", "max_open_orders must be at most 10,000, got 1e6"),
        ("max_orders_per_minute: 2.5", "max_orders_per_minute must be a whole number, got 2.5"),
        ("max_price_deviation_percent: 0", "must be above 0"),
        ("default_sizing: {quantity_type: percent_of_equity, quantity: 300}",
         "default_sizing quantity of percent_of_equity (a percent of NetLiquidation) must be at most 100, got 300"),
        ("default_sizing: {quantity_type: risk_percent, quantity: 100.5}", "must be at most 100"),
        ("default_sizing: {quantity_type: dollar_amount, quantity: 1e13}", "must be at most 1,000,000,000,000"),
        ("default_sizing: {quantity_type: fixed_quantity, quantity: 0}", "must be above 0"),
        ("default_sizing: {quantity_type: fixed_quantity, quantity: 1, extra: 2}", "exactly quantity_type and quantity"),
    ],
)  # fmt: skip
def test_a_number_out_of_form_or_bounds_is_a_load_error_with_its_line(tmp_path, line, reason):
    path = write(tmp_path, f"# limits\ndefaults:\n  {line}\n")
    with pytest.raises(RiskFileError) as info:
        load_risk_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: defaults."), message
    assert reason in message
    assert len(message) < 400  # a megabyte of digits is not repeated back


def test_a_percent_sizing_within_bounds_and_a_dollar_amount_above_100_load(tmp_path):
    text = ("defaults:\n  default_sizing: {quantity_type: percent_of_equity, quantity: 100}\n"
            "strategies:\n  s:\n    default_sizing: {quantity_type: dollar_amount, quantity: '25,000'}\n")  # fmt: skip
    risk = load_risk_file(write(tmp_path, text))
    assert risk.rules_for("s", None).default_sizing == DefaultSizing("dollar_amount", Decimal(25000))


# --- whatever is wrong with the file, it is the file's own error with the line (item 4, 7) -------


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"defaults:\n  dry_run: true\n# r\xe9glage\n", 3, "not UTF-8 text (byte 0xe9): save the file as UTF-8"),
        (b"defaults:\n  deny: " + b"[" * 5000 + b"\n", 2, "nested deeper than 16 levels: not a risk file"),
        (b"defaults:\n  dry_run: !!python/name:os.system\n", 2,
         "the YAML tag 'tag:yaml.org,2002:python/name:os.system' has no place in a risk file"),
        (b"defaults:\n  max_order_quantity: !!python/object/apply:os.system [echo]\n", 2, "has no place in a risk file"),
        (b"defaults: !!python/name:os.system\n", 1, "has no place in a risk file"),
        (b"defaults:\n  dry_run: \x00\n", 2, "not valid YAML"),
        (b"defaults:\n  dry_run: " + b"1" * 5000 + b"\n", 2, "defaults.dry_run"),
        (b"", 1, "the risk file is empty (or only comments): truncated?"),
        (b"# only comments\n\n", 1, "the risk file is empty (or only comments)"),
        (b"defaults:\n", 1, "defaults must be a mapping"),
        (b"defaults: {}\n", 1, "the risk file sets no rule: truncated?"),
        (b"strategies:\naccounts:\n", 1, "the risk file sets no rule"),
        (b"defaults: {}\nstrategies:\n  trend: {}\n", 1, "the risk file sets no rule"),
        (b"defau", 1, "the risk file must be a mapping"),
        (b"- defaults\n", 1, "the risk file must be a mapping"),
    ],
)  # fmt: skip
def test_an_unreadable_file_is_the_risk_files_own_error_with_its_line(tmp_path, content, line, reason):
    path = tmp_path / "risk.yaml"
    path.write_bytes(content)
    with pytest.raises(RiskFileError) as info:
        load_risk_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message


def _alias_bomb(level: int) -> str:
    """A flow list of 10 ** (level + 1) items in a few hundred characters of YAML aliases."""
    if level == 0:
        return "[" + ", ".join(["X"] * 10) + "]"
    return f"[&l{level - 1} {_alias_bomb(level - 1)}, " + ", ".join([f"*l{level - 1}"] * 9) + "]"


def test_a_value_built_of_aliases_is_refused_without_being_written_out(tmp_path):
    path = write(tmp_path, f"defaults:\n  trading_hours: {_alias_bomb(5)}\n")
    with pytest.raises(RiskFileError) as info:
        load_risk_file(path)
    assert str(info.value) == (
        f"{path}:2: defaults.trading_hours must be one of regular, extended, always, got a list or a mapping"
    )


def test_a_file_too_big_to_be_a_risk_file_is_refused_unread(tmp_path):
    path = tmp_path / "risk.yaml"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(RiskFileError, match="larger than 1 MB: not a risk file"):
        load_risk_file(path)


# --- the protections (issue 21): per strategy, combined like limits, a bad one named by its line --


PROTECTED = """\
defaults:
  stop_out_cooldown_minutes: 30
  stop_loss_guard: {stop_outs: 3, within_minutes: 120, lock_minutes: 60}
  daily_profit_target: 2,000
strategies:
  scalp:
    stop_out_cooldown_minutes: 5
    drawdown_pause: {max_drawdown: 1500, within_minutes: 1440, pause_minutes: 240}
    stop_loss_guard:
      stop_outs: 2
      within_minutes: 30
      lock_minutes: 15
      lock: strategy
accounts:
  DU1:
    stop_loss_guard: {stop_outs: 4, within_minutes: 60, lock_minutes: 90}
    drawdown_pause: {max_drawdown: 2000, within_minutes: 60, pause_minutes: 300}
"""


def test_protections_load_per_strategy_and_the_tighter_holds_field_by_field(tmp_path):
    from core.risk_protections import DrawdownPause, StopLossGuard

    risk = load_risk_file(write(tmp_path, PROTECTED))
    plain = risk.rules_for("other", None)
    assert plain.stop_out_cooldown_minutes == 30 and plain.daily_profit_target == Decimal(2000)
    assert plain.stop_loss_guard == StopLossGuard(3, Decimal(120), Decimal(60), "ticker")
    assert plain.drawdown_pause is None and plain.strategy == "other"
    scalp = risk.rules_for("SCALP", None)  # the strategy's replace the default's, even a looser one
    assert (
        scalp.stop_out_cooldown_minutes == 5
        and scalp.source_of("stop_out_cooldown_minutes") == 'strategy "scalp"'
    )
    assert scalp.stop_loss_guard == StopLossGuard(2, Decimal(30), Decimal(15), "strategy")
    both = risk.rules_for("scalp", "DU1")  # a strategy's and an account's: the tighter, field by field
    assert both.stop_loss_guard == StopLossGuard(2, Decimal(60), Decimal(90), "strategy")
    assert both.source_of("stop_loss_guard") == 'strategy "scalp" + account "DU1"'
    assert both.drawdown_pause == DrawdownPause(Decimal(1500), Decimal(1440), Decimal(300))
    assert risk.rules_for(None, "DU1").source_of("stop_loss_guard") == 'account "DU1"'
    assert scalp.to_json()["stop_loss_guard"] == {"stop_outs": 2, "within_minutes": "30", "lock_minutes": "15",
                                                  "lock": "strategy"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("defaults:\n  stop_out_cooldown_minutes: -1\n", 2, "defaults.stop_out_cooldown_minutes must be at least 0"),
        ("defaults:\n  stop_out_cooldown_minutes: 10081\n", 2, "must be at most 10,080"),
        ("defaults:\n  daily_profit_target: 0\n", 2, "defaults.daily_profit_target must be above 0"),
        ("defaults:\n  stop_loss_guard: 3\n", 2, "defaults.stop_loss_guard must be a mapping with stop_outs"),
        ("defaults:\n  stop_loss_guard: {stop_outs: 3, within_minutes: 60}\n", 2, "lacks lock_minutes"),
        ("defaults:\n  stop_loss_guard: {stop_outs: 2.5, within_minutes: 60, lock_minutes: 5}\n", 2,
         "stop_outs must be a whole number"),
        ("defaults:\n  stop_loss_guard: {stop_outs: 2, within_minutes: 60, lock_minutes: 5, lock: account}\n", 2,
         "lock must be ticker or strategy"),
        ("strategies:\n  s:\n    drawdown_pause: {max_drawdown: 100, within_minutes: 60, pause_minutes: 5, x: 1}\n",
         3, "strategies.s.drawdown_pause must be a mapping with max_drawdown, within_minutes, pause_minutes; got 'x'"),
        ("defaults:\n  drawdown_pause: {max_drawdown: 0, within_minutes: 60, pause_minutes: 5}\n", 2,
         "drawdown_pause max_drawdown must be above 0"),
    ],
)  # fmt: skip
def test_a_bad_protection_is_a_load_error_with_its_line(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(RiskFileError) as caught:
        load_risk_file(path)
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert reason in str(caught.value), str(caught.value)


# --- approval by hand (issue 21): require_approval wins anywhere, the shorter approval_timeout holds


@pytest.mark.parametrize(
    ("text", "strategy", "account", "required", "timeout", "source"),
    [
        ("strategies:\n  careful:\n    require_approval: true\n", "CAREFUL", None, True, None, None),
        ("strategies:\n  careful:\n    require_approval: true\n", "other", None, False, None, None),
        # true in any section wins: the defaults' false copied into an account section undoes nothing
        ("strategies:\n  careful:\n    require_approval: true\naccounts:\n  DU1:\n    require_approval: false\n",
         "careful", "DU1", True, None, None),
        ("defaults:\n  require_approval: true\n  approval_timeout: 10m\nstrategies:\n  quick:\n"
         "    approval_timeout: 90s\n", "quick", None, True, Decimal(90), 'strategy "quick"'),
        ("strategies:\n  s:\n    approval_timeout: 1h\naccounts:\n  DU1:\n    approval_timeout: 1.5m\n",
         "s", "DU1", False, Decimal(90), 'account "DU1"'),
        ("defaults:\n  approval_timeout: 2 min\n", None, None, False, Decimal(120), "defaults"),
        ("defaults:\n  approval_timeout: 24h\n", None, None, False, Decimal(86400), "defaults"),
    ],
)  # fmt: skip
def test_approval_is_asked_where_any_section_asks_and_the_shorter_wait_holds(
    tmp_path, text, strategy, account, required, timeout, source
):
    merged = rules(tmp_path, text, strategy, account)
    assert merged.require_approval is required
    assert merged.approval_timeout == timeout
    if source is not None:
        assert merged.source_of("approval_timeout") == source


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("300", "must be a time span with its unit, such as 90s, 5m or 1h, got '300'"),
        ("5 minutes", "must be a time span with its unit"),
        ("0s", "must be from 1s to 24h, got '0s'"),
        ("25h", "must be from 1s to 24h, got '25h'"),
        ("[5m]", "must be a time span such as 90s, 5m or 1h, got a list or a mapping"),
    ],
)
def test_an_approval_timeout_without_its_unit_or_out_of_bounds_is_a_load_error(tmp_path, value, reason):
    path = write(tmp_path, f"strategies:\n  s:\n    require_approval: true\n    approval_timeout: {value}\n")
    with pytest.raises(RiskFileError) as caught:
        load_risk_file(path)
    assert str(caught.value).startswith(f"{path}:4: strategies.s.approval_timeout "), str(caught.value)
    assert reason in str(caught.value), str(caught.value)
