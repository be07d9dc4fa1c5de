"""Built-in US stocks and ETFs (real conIds, SMART-routed, tick 0.01 under market rule 26)."""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument

STOCKS = (
    # symbol, conId, primary exchange, long name, price, industry
    ("AAPL", 265598, "NASDAQ", "APPLE INC", 190.0, "Technology"),
    ("MSFT", 272093, "NASDAQ", "MICROSOFT CORP", 420.0, "Technology"),
    ("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST", 500.0, "Funds"),
    ("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 430.0, "Funds"),
    ("TSLA", 76792991, "NASDAQ", "TESLA INC", 180.0, "Consumer, Cyclical"),
    ("AMD", 4391, "NASDAQ", "ADVANCED MICRO DEVICES", 160.0, "Technology"),
    ("INTC", 270639, "NASDAQ", "INTEL CORP", 30.0, "Technology"),
)


def stock_instruments() -> list[Instrument]:
    """One instrument per row of :data:`STOCKS`."""
    out = []
    for symbol, con_id, primary, name, price, industry in STOCKS:
        exchanges = f"SMART,{primary},NYSE,ARCA,BATS,IEX" if primary != "NYSE" else "SMART,NYSE"
        nms = primary == "NASDAQ"
        out.append(
            Instrument(
                con_id=con_id,
                symbol=symbol,
                sec_type="STK",
                currency="USD",
                exchange="SMART",
                local_symbol=symbol,
                trading_class="NMS" if nms else symbol,
                min_tick=0.01,
                default_price=price,
                primary_exchange=primary,
                valid_exchanges=exchanges,
                long_name=name,
                market_name="NMS" if nms else symbol,
                industry=industry,
                stock_type="ETF" if industry == "Funds" else "COMMON",
                # one rule id per valid exchange, as IB lists them (26: US stocks' price bands)
                market_rule_ids=",".join("26" for _ in exchanges.split(",")),
            )
        )
    return out
