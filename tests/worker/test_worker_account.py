"""worker/ib/account.py ``figures_from_values``: ib_async's AccountValue rows → AccountFigures, on
rows shaped like real IB's (a EUR-based paper account with a USD balance, values as IB sends them:
every per-currency tag once per currency and once as BASE, in alphabetical order) and like ibsim's."""

from __future__ import annotations

from decimal import Decimal as D

from ib_async import AccountValue

from worker.ib.account import AccountFigures, figures_from_values


def _rows(account, rows):
    return [AccountValue(account, tag, value, currency, "") for tag, value, currency in rows]


# as reqAccountUpdates delivers them for a EUR-based account (trimmed to the tags that matter)
REAL_EUR_ACCOUNT = [
    ("AccountCode", "DU3352788", ""),
    ("AccountOrGroup", "DU3352788", "BASE"),
    ("AccountOrGroup", "DU3352788", "EUR"),  # alphabetical: the first currency is not the base
    ("AccountOrGroup", "DU3352788", "USD"),
    ("AvailableFunds", "451.99", "EUR"),
    ("BuyingPower", "3013.26", "EUR"),
    ("CashBalance", "2527.8905", "BASE"),
    ("Currency", "BASE", "BASE"),  # the value is the word BASE, not a currency
    ("Currency", "EUR", "EUR"),
    ("Currency", "USD", "USD"),
    ("Cushion", "0.968458", ""),
    ("ExcessLiquidity", "2374.65", "EUR"),
    ("ExchangeRate", "1.00", "BASE"),
    ("ExchangeRate", "1.00", "EUR"),
    ("ExchangeRate", "0.8406187", "USD"),
    ("GrossPositionValue", "2000.00", "EUR"),
    ("InitMarginReq", "2000.00", "EUR"),
    ("MaintMarginReq", "77.34", "EUR"),
    ("NetLiquidation", "2451.99", "EUR"),
    ("NetLiquidationByCurrency", "2451.99", "BASE"),
    ("RealizedPnL", "-8.01", "BASE"),
    ("RealizedPnL", "-8.01", "EUR"),
    ("RealizedPnL", "0.00", "USD"),
    ("UnrealizedPnL", "-75.90", "BASE"),
    ("UnrealizedPnL", "0.00", "EUR"),
    ("UnrealizedPnL", "-90.29", "USD"),
]


def test_real_ib_rows_of_a_eur_account():
    figures = figures_from_values("DU3352788", _rows("DU3352788", REAL_EUR_ACCOUNT))
    assert figures == AccountFigures(
        account="DU3352788",
        currency="EUR",  # from NetLiquidation's row: neither "BASE" nor the first currency seen
        net_liquidation=D("2451.99"),
        available_funds=D("451.99"),
        excess_liquidity=D("2374.65"),
        buying_power=D("3013.26"),
        gross_position_value=D("2000.00"),
        init_margin=D("2000.00"),
        maint_margin=D("77.34"),
        unrealized_pnl=D("-75.90"),  # the BASE total, not one currency's part
        realized_pnl=D("-8.01"),
        exchange_rates={"EUR": D("1.00"), "USD": D("0.8406187")},
    )
    assert figures.to_json()["exchange_rates"] == {"EUR": "1.00", "USD": "0.8406187"}
    assert figures.to_json()["net_liquidation"] == "2451.99"


def test_ibsim_rows():
    rows = [("AccountCode", "DU1", ""), ("Currency", "USD", "USD"), ("ExchangeRate", "1.00", "USD"),
            ("NetLiquidation", "1000000.00", "USD"), ("AvailableFunds", "1000000.00", "USD"),
            ("UnrealizedPnL", "0.00", "USD"), ("Cushion", "1.0", "")]  # fmt: skip
    figures = figures_from_values("DU1", _rows("DU1", rows))
    assert (figures.currency, figures.net_liquidation, figures.available_funds) == (
        "USD", D("1000000.00"), D("1000000.00"))  # fmt: skip
    assert figures.exchange_rates == {"USD": D("1.00")} and figures.maint_margin is None


def test_other_accounts_and_unreadable_values_are_left_out():
    rows = _rows("DU2", [("NetLiquidation", "5.00", "USD")]) + _rows("DU1", [
        ("NetLiquidation", "nan", "USD"),  # IB sends NaN-like text before a value exists
        ("AvailableFunds", "", "USD"),
        ("BuyingPower", "inf", "USD"),
        ("ExchangeRate", "junk", "GBP"),
        ("ExcessLiquidity", "12.50", "USD"),
    ])  # fmt: skip
    figures = figures_from_values("DU1", rows)
    assert (
        figures.net_liquidation is None and figures.available_funds is None and figures.buying_power is None
    )
    assert figures.excess_liquidity == D("12.50") and figures.exchange_rates == {}
    assert figures.currency == "USD"  # no NetLiquidation: the currency of the values it has


def test_nothing_reported_yet():
    figures = figures_from_values("DU1", [])
    assert figures == AccountFigures("DU1") and figures.to_json() == {"account": "DU1", "currency": ""}
