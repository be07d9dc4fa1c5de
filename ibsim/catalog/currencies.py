"""Built-in forex pairs on IDEALPRO and crypto on PAXOS."""

from __future__ import annotations

from ibsim.catalog.instruments import Instrument

FOREX = (
    # base, quote, conId, minTick, price
    ("EUR", "USD", 12087792, 0.00005, 1.08),
    ("GBP", "USD", 12087797, 0.00005, 1.27),
    ("USD", "JPY", 15016059, 0.005, 150.0),
)

CRYPTO = (
    # symbol, conId, minTick, price, long name, market rule id
    ("BTC", 479624278, 0.25, 60000.0, "Bitcoin", "1100"),
    ("ETH", 495759171, 0.05, 3000.0, "Ethereum", "1101"),
)


def forex_instruments() -> list[Instrument]:
    """One CASH instrument per row of :data:`FOREX` (symbol = base, currency = quote)."""
    out = []
    for base, quote, con_id, tick, price in FOREX:
        pair = f"{base}.{quote}"
        out.append(
            Instrument(
                con_id=con_id,
                symbol=base,
                sec_type="CASH",
                currency=quote,
                exchange="IDEALPRO",
                local_symbol=pair,
                trading_class=pair,
                min_tick=tick,
                default_price=price,
                valid_exchanges="IDEALPRO",
                long_name=f"{base} {quote}",
                market_name=pair,
                time_zone_id="US/Eastern",
                market_rule_ids="239" if quote != "JPY" else "240",
                min_size=1.0,
            )
        )
    return out


def crypto_instruments() -> list[Instrument]:
    """One CRYPTO instrument per row of :data:`CRYPTO` (fractional quantities, fewer order types)."""
    out = []
    for symbol, con_id, tick, price, name, rule in CRYPTO:
        out.append(
            Instrument(
                con_id=con_id,
                symbol=symbol,
                sec_type="CRYPTO",
                currency="USD",
                exchange="PAXOS",
                local_symbol=f"{symbol}.USD",
                trading_class=symbol,
                min_tick=tick,
                default_price=price,
                valid_exchanges="PAXOS",
                long_name=name,
                market_name=symbol,
                market_rule_ids=rule,
                min_size=0.0001,
                size_increment=0.00000001,
                order_types="DAY,GTC,IOC,LMT,MKT,STP,STPLMT,TRAIL,WHATIF",
            )
        )
    return out
