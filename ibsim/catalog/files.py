"""Catalog extension files: extra instruments from YAML or JSON (snake_case or TWS camelCase keys)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from ibsim.catalog.instruments import Instrument

_FIELD_NAMES = {f.name for f in fields(Instrument)}
_CAMEL = {
    "conId": "con_id",
    "secType": "sec_type",
    "localSymbol": "local_symbol",
    "tradingClass": "trading_class",
    "minTick": "min_tick",
    "price": "default_price",
    "defaultPrice": "default_price",
    "primaryExchange": "primary_exchange",
    "primaryExch": "primary_exchange",
    "validExchanges": "valid_exchanges",
    "lastTradeDateOrContractMonth": "last_trade_date",
    "lastTradeDate": "last_trade_date",
    "contractMonth": "contract_month",
    "longName": "long_name",
    "timeZoneId": "time_zone_id",
    "underConId": "under_con_id",
    "minSize": "min_size",
    "sizeIncrement": "size_increment",
}


def instrument_from_dict(data: dict[str, Any]) -> Instrument:
    """Build an instrument from a catalog-file entry (snake_case or TWS camelCase keys)."""
    kw: dict[str, Any] = {}
    for key, value in data.items():
        name = _CAMEL.get(key, key)
        if name not in _FIELD_NAMES:
            raise ValueError(f"unknown catalog field {key!r}")
        kw[name] = value
    for required in ("con_id", "symbol", "sec_type"):
        if required not in kw:
            raise ValueError(f"catalog entry needs {required!r}: {data!r}")
    kw["sec_type"] = str(kw["sec_type"]).upper()
    kw.setdefault("currency", "USD")
    kw.setdefault("exchange", "SMART" if kw["sec_type"] == "STK" else "")
    kw.setdefault("local_symbol", kw["symbol"])
    kw.setdefault("trading_class", kw["symbol"])
    kw.setdefault("min_tick", 0.01)
    kw.setdefault("default_price", 100.0)
    kw["multiplier"] = str(kw.get("multiplier", "") or "")
    kw["last_trade_date"] = str(kw.get("last_trade_date", "") or "")
    if kw["last_trade_date"] and not kw.get("contract_month"):
        kw["contract_month"] = kw["last_trade_date"][:6]
    return Instrument(**kw)


def load_extension(path: str | Path) -> list[Instrument]:
    """Load extra instruments from YAML or JSON: a list, or a mapping with key ``instruments``."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("instruments", [])
    if not isinstance(data, list):
        raise ValueError("catalog file must hold a list of instruments (or {instruments: [...]})")
    return [instrument_from_dict(entry) for entry in data]
