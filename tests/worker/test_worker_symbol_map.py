"""The symbol-map file (SYMBOL_MAP_FILE): loading, validation with line numbers, resolving with it,
SIGHUP reload. Pure (files in tmp_path); the trades it leads to are in test_worker_contract_roll.py."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from worker.contracts.symbol_map import SymbolMapError, SymbolResolver, load_symbol_map
from worker.contracts.tickers import ContractSpec, OptionsNotSupported, UnknownSymbol, resolve_ticker

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "symbols.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "symbols.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_the_shipped_example_loads_and_resolves():
    resolver = SymbolResolver(str(EXAMPLE), default_roll_days=8)
    nq = resolver.resolve("CME_MINI:NQ1!")
    assert (nq.sec_type, nq.symbol, nq.exchange, nq.front_index) == ("FUT", "MNQ", "CME", 1)
    assert nq.quantity_multiplier == Decimal(10) and nq.roll_days == 8
    assert resolver.resolve("GC1!").roll_days == 35  # per root
    assert resolver.resolve("ZNH2027") == ContractSpec("FUT", "ZN", "CBOT", contract_month="202703")
    pinned = resolver.resolve("CME_MINI:ES1!")
    assert (pinned.contract_month, pinned.front_index, pinned.pinned_continuous) == ("202703", 0, True)
    assert resolver.resolve("ES1!").front_index == 1  # the pin is for the prefixed ticker only
    assert resolver.resolve("SPX500") == ContractSpec("STK", "SPY", "SMART", primary_exchange="ARCA")
    assert resolver.resolve("LSE:VOD").currency == "GBP"
    assert resolver.resolve("AAPL") == ContractSpec("STK", "AAPL", "SMART")  # not in the map: rules


def test_entry_fields_reach_the_spec(tmp_path):
    path = write(
        tmp_path,
        """
        symbols:
          mes1!: {trading_class: MES, multiplier: 5, roll_days: 3, quantity_multiplier: 0.5}
          XYZ: {sec_type: FUT, symbol: XY, exchange: EUREX, currency: EUR, local_symbol: FXYZ DEC26,
                contract_month: "202612"}
          ANY: {sec_type: STK, con_id: 265598}
        """,
    )
    smap = load_symbol_map(path)
    mes = smap.overrides["MES1!"]  # keys are not case-sensitive
    assert (mes.trading_class, mes.multiplier, mes.roll_days, mes.quantity_multiplier) == (
        "MES",
        "5",
        3,
        Decimal("0.5"),
    )
    xyz = smap.overrides["XYZ"]
    assert (xyz.symbol, xyz.exchange, xyz.currency, xyz.local_symbol, xyz.contract_month) == (
        "XY", "EUREX", "EUR", "FXYZ DEC26", "202612")  # fmt: skip
    assert smap.overrides["ANY"].con_id == 265598


def test_a_continuous_ticker_on_an_unknown_root_is_still_the_front(tmp_path):
    smap = load_symbol_map(write(tmp_path, "symbols:\n  FDAX1!: {exchange: EUREX, currency: EUR}\n"))
    spec = smap.overrides["FDAX1!"]
    assert (spec.sec_type, spec.symbol, spec.exchange, spec.currency, spec.front_index) == (
        "FUT", "FDAX", "EUREX", "EUR", 1)  # fmt: skip


def test_an_empty_file_is_an_empty_map(tmp_path):
    assert load_symbol_map(write(tmp_path, "# nothing yet\n")).overrides == {}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("symbols:\n  NQ1!: {symbol: MNQ\n", 3, "not valid YAML"),
        ("- NQ1!\n", 1, "must be a mapping"),
        ("symbols: {}\nsymbol: {}\n", 2, "unknown section 'symbol'"),
        ("symbols:\n  NQ1!: MNQ\n", 2, "symbols.NQ1! must be a mapping"),
        (
            "symbols:\n  NQ1!:\n    symbol: MNQ\n    quantity_multiplier: -10\n",
            4,
            "quantity_multiplier must be a positive",
        ),
        ("symbols:\n  NQ1!:\n    quantity_multiplier: ten\n", 3, "got 'ten'"),
        ("symbols:\n  NQ1!:\n    symbl: MNQ\n", 3, "unknown field 'symbl'"),
        ("symbols:\n  ES1!:\n    contract_month: 202613\n", 3, "contract_month must be YYYYMM"),
        ("symbols:\n  ES1!: {roll_days: 400}\n", 2, "roll_days must be a whole number of days from 0 to 365"),
        ("symbols:\n  AAPL: {roll_days: 3}\n", 2, "roll_days is for continuous futures"),
        ("symbols:\n  AAPL: {sec_type: BOND}\n", 2, "sec_type must be one of"),
        ("symbols:\n  AAPL: {con_id: -1}\n", 2, "con_id must be IB's positive contract id"),
        ("symbols:\n  ZZ1!: {symbol: ZZ}\n", 2, "needs exchange"),
        (
            "symbols:\n  NQ1!: {symbol: MNQ}\n  ES1!: {}\n  NQ1!: {symbol: NQ}\n",
            4,
            "appears twice (first on line 2)",
        ),
        ("symbols:\n  nq1!: {}\n  NQ1!: {}\n", 3, "appears twice (keys are not case-sensitive)"),
        ("futures:\n  GC: {roll_days: soon}\n", 2, "futures.GC.roll_days"),
        ("futures:\n  GC: {roll: 3}\n", 2, "unknown field 'roll'"),
        ("futures:\n  GC: 35\n", 2, "futures.GC must be a mapping"),
    ],
)
def test_a_bad_file_names_the_file_the_line_and_the_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(SymbolMapError) as info:
        load_symbol_map(path)
    message = str(info.value)
    assert message.startswith(f"SYMBOL_MAP_FILE {path} line {line}: "), message
    assert reason in message


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(SymbolMapError, match="cannot be read"):
        SymbolResolver(str(tmp_path / "nope.yaml"), 8)


def test_reload_swaps_the_map_and_a_bad_edit_keeps_the_old_one(tmp_path):
    path = write(tmp_path, "symbols:\n  NQ1!: {symbol: MNQ, quantity_multiplier: 10}\n")
    resolver = SymbolResolver(str(path), 8)
    path.write_text("symbols:\n  NQ1!: {symbol: MNQ, quantity_multiplier: 5}\n", encoding="utf-8")
    assert "reloaded: 1 ticker(s)" in resolver.reload()
    assert resolver.resolve("NQ1!").quantity_multiplier == 5
    path.write_text("symbols:\n  NQ1!: {symbol: MNQ, quantity_multiplier: 0}\n", encoding="utf-8")
    with pytest.raises(SymbolMapError, match="line 2"):
        resolver.reload()
    assert resolver.resolve("NQ1!").quantity_multiplier == 5


def test_worker_reload_runs_every_reloader_even_after_one_fails(tmp_path):
    from worker.housekeeping import Housekeeping

    calls = []

    def bad() -> str:
        raise SymbolMapError("SYMBOL_MAP_FILE x line 3: broken")

    alarms = []
    notifier = type("N", (), {"enqueue_event": staticmethod(alarms.append)})()
    holder = type(
        "W", (), {"reloaders": [bad, lambda: calls.append(1) or "risk reloaded"], "notifier": notifier}
    )()
    assert Housekeeping.reload(holder) == ["reload failed: SYMBOL_MAP_FILE x line 3: broken", "risk reloaded"]
    assert calls == [1]
    # the trader hears that the edit is not in force (an alarm notice naming the line)
    assert len(alarms) == 1 and "SYMBOL_MAP_FILE x line 3: broken" in str(alarms[0])


# ------------------------------------------------------------------ resolve_ticker with overrides


def test_prefixed_override_wins_over_the_bare_one():
    bare, prefixed = ContractSpec("STK", "SPY", "SMART"), ContractSpec("STK", "IVV", "SMART")
    overrides = {"SPX500": bare, "OANDA:SPX500": prefixed}
    assert resolve_ticker("OANDA:SPX500", overrides=overrides) == prefixed
    assert resolve_ticker("FOO:SPX500", overrides=overrides) == bare
    assert resolve_ticker("SPX500", overrides=overrides) == bare


@pytest.mark.parametrize(
    ("ticker", "expiry", "right", "strike"),
    [
        ("AAPL250117C00150000", "20250117", "C", "150"),
        ("SPY  261218P00500500", "20261218", "P", "500.5"),
        ("OPRA:AAPL250117C150.0", "20250117", "C", "150"),
        ("SPY 250624C596", "20250624", "C", "596"),
    ],
)
def test_an_option_ticker_names_that_contract(ticker, expiry, right, strike):
    spec = resolve_ticker(ticker)
    assert (spec.sec_type, spec.exchange, spec.contract_month, spec.right, spec.strike) == (
        "OPT", "SMART", expiry, right, strike,
    )  # fmt: skip


def test_an_options_ticker_tv2ib_cannot_read_is_refused_with_the_forms_it_reads():
    with pytest.raises(OptionsNotSupported) as info:
        resolve_ticker("OPRA:SOMETHING")
    assert "OPRA:SOMETHING is an options ticker tv2ib cannot read" in str(info.value)
    assert "AAPL250117C00150000" in str(info.value) and isinstance(info.value, UnknownSymbol)


def test_an_option_in_the_map_loads_but_is_refused_at_the_alert(tmp_path):
    path = write(tmp_path, "symbols:\n  AAPLC: {sec_type: OPT, symbol: AAPL, exchange: SMART}\n")
    resolver = SymbolResolver(str(path), 8)
    with pytest.raises(OptionsNotSupported, match="the symbol map names 'AAPLC' a OPT"):
        resolver.resolve("AAPLC")


def test_futures_roots_extend_the_built_in_ones():
    from worker.contracts.tickers import FuturesRoot

    roots = {"ZN": FuturesRoot(exchange="CBOT", roll_days=5)}
    assert resolve_ticker("ZN1!", futures_roots=roots) == ContractSpec(
        "FUT", "ZN", "CBOT", front_index=1, roll_days=5
    )
    with pytest.raises(UnknownSymbol):
        resolve_ticker("ZN1!")
