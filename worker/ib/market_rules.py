"""IB's market rules: the price bands a contract's prices must sit on (``reqMarketRule``).

A contract detail lists ``validExchanges`` and, in the same order, ``marketRuleIds`` (one rule per
exchange: ``SMART,NASDAQ,NYSE`` / ``26,26,26``). The rule of the exchange the order goes to
(SMART for stocks) is fetched once per rule id for the life of the process (rules are IB-wide
and do not change intraday) and turned into (low edge, increment) bands for
:class:`~worker.decision.rounding.PriceGrid`. A rule IB does not answer leaves the contract on ``minTick``
(logged; not cached, so the next contract asks again).

Runs on the IB loop (called from ``ContractBook.qualify``, worker/ib/contracts.py).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from ib_async import IB

log = logging.getLogger(__name__)

Bands = tuple[tuple[Decimal, Decimal], ...]


def rule_id_for(detail: Any, exchange: str) -> int | None:
    """Pure: the market rule id of ``exchange`` in a contract detail (else the first one listed)."""
    ids = [part.strip() for part in (getattr(detail, "marketRuleIds", "") or "").split(",")]
    exchanges = [part.strip().upper() for part in (getattr(detail, "validExchanges", "") or "").split(",")]
    chosen = ""
    if exchange and exchange.upper() in exchanges:
        index = exchanges.index(exchange.upper())
        chosen = ids[index] if index < len(ids) else ""
    if not chosen:
        chosen = next((part for part in ids if part), "")
    return int(chosen) if chosen.isdigit() else None


def bands_of(increments: Any) -> Bands:
    """Pure: ib_async ``PriceIncrement`` rows → sorted (low edge, increment) bands (positive ones)."""
    bands = {
        Decimal(str(row.lowEdge)): Decimal(str(row.increment))
        for row in increments or ()
        if row.increment > 0
    }
    return tuple(sorted(bands.items()))


class MarketRules:
    """The market rules asked of IB so far, per rule id (process lifetime)."""

    def __init__(self, ib: IB, timeout: float = 2.0) -> None:
        self.ib = ib
        self.timeout = timeout
        self._rules: dict[int, Bands] = {}

    async def bands_for(self, detail: Any, exchange: str) -> Bands:
        """The price bands for orders on ``exchange``; empty when IB gives none (minTick applies)."""
        rule_id = rule_id_for(detail, exchange)
        if rule_id is None:
            return ()
        if rule_id in self._rules:
            return self._rules[rule_id]
        try:
            increments = await asyncio.wait_for(self.ib.reqMarketRuleAsync(rule_id), self.timeout)
        except TimeoutError:
            increments = None
        bands = bands_of(increments)
        if not bands:
            log.warning("IB gave no price bands for market rule %s: minTick applies", rule_id)
            return ()
        self._rules[rule_id] = bands
        return bands
