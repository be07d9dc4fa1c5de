"""The catalog: a set of instruments with TWS-like lookup (reqContractDetails matching, CONTFUT,
the operator's symbol lookup) and the price increments of their market rules. Options are a family
made on demand (:mod:`ibsim.catalog.options`): reached by conId and by OPT requests, never iterated."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from ibsim.catalog.instruments import ContractQuery, Instrument, matches
from ibsim.catalog.options import OptionChains, parse_occ
from ibsim.catalog.ticks import MARKET_RULES


class Catalog:
    """A set of instruments with TWS-like lookup."""

    def __init__(self, instruments: Iterable[Instrument] = (), options: bool = False) -> None:
        self._by_con_id: dict[int, Instrument] = {}
        for inst in instruments:
            self.add(inst)
        #: the option chains on the catalog's stocks (``options=True``), else None
        self.options = OptionChains(list(self._by_con_id.values())) if options else None

    def add(self, inst: Instrument) -> None:
        """Add or replace an instrument (keyed by conId)."""
        self._by_con_id[inst.con_id] = inst

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_con_id.values())

    def __len__(self) -> int:
        return len(self._by_con_id)

    def get(self, con_id: int) -> Instrument | None:
        """The instrument with this conId, if any (an option made on demand)."""
        inst = self._by_con_id.get(con_id)
        if inst is None and self.options is not None:
            return self.options.get(con_id)
        return inst

    def match(self, query: ContractQuery) -> list[Instrument]:
        """Every instrument matching the query, like reqContractDetails."""
        if query.sec_type.upper() == "CONTFUT":
            futs = self.match(replace(query, sec_type="FUT", last_trade_date_or_contract_month=""))
            futs.sort(key=lambda i: i.last_trade_date)
            # one answer per product: the front month
            front: dict[str, Instrument] = {}
            for inst in futs:
                front.setdefault(inst.trading_class, inst)
            return list(front.values())
        if self.options is not None and self._is_option(query):
            return self.options.match(query)
        if query.con_id:
            inst = self._by_con_id.get(query.con_id)
            return [inst] if inst and matches(inst, query) else []
        return [inst for inst in self._by_con_id.values() if matches(inst, query)]

    def _is_option(self, query: ContractQuery) -> bool:
        if query.sec_type:
            return query.sec_type.upper() == "OPT"
        if query.con_id:
            return query.con_id not in self._by_con_id
        return parse_occ(query.local_symbol) is not None

    def market_rule(self, rule_id: int) -> tuple[tuple[float, float], ...]:
        """The price bands of a market rule (``MARKET_RULES``, else one band of the smallest
        minTick among the instruments carrying the rule, else 0.01)."""
        if rule_id in MARKET_RULES:
            return MARKET_RULES[rule_id]
        ticks = [i.min_tick for i in self if str(rule_id) in i.market_rule_ids.split(",")]
        return ((0.0, min(ticks) if ticks else 0.01),)

    def increment_at(self, inst: Instrument, price: float) -> float:
        """The price increment IB enforces for ``inst`` at ``price``: the band of its first market
        rule that ``price`` falls in (a band starts at its lowEdge), else its minTick."""
        first = next((r for r in inst.market_rule_ids.split(",") if r.strip()), "")
        if not first.strip().isdigit():
            return inst.min_tick
        bands = self.market_rule(int(first))
        increment = bands[0][1]
        for low, inc in bands:
            if abs(price) >= low - 1e-12:
                increment = inc
        return increment

    def find(self, symbol: str, sec_type: str = "", **kw: str) -> list[Instrument]:
        """Operator-friendly lookup by symbol or local symbol (``EUR.USD``, ``EURUSD``, ``ESZ6``)."""
        sym = symbol.upper().strip()
        out = []
        for inst in self._by_con_id.values():
            if sec_type and inst.sec_type != sec_type.upper():
                continue
            names = {
                inst.symbol.upper(),
                inst.local_symbol.upper(),
                inst.local_symbol.upper().replace(".", ""),
            }
            if sym not in names:
                continue
            if kw.get("currency") and kw["currency"].upper() != inst.currency:
                continue
            expiry = kw.get("expiry") or kw.get("last_trade_date_or_contract_month") or ""
            if expiry and not inst.last_trade_date.startswith(expiry):
                continue
            if kw.get("exchange") and kw["exchange"].upper() not in (e.upper() for e in inst.exchanges):
                continue
            out.append(inst)
        if not out and self.options is not None and parse_occ(sym) and sec_type.upper() in ("", "OPT"):
            return self.options.match(ContractQuery(sec_type="OPT", local_symbol=sym))
        return out
