"""Contract requests: reqContractDetails, reqMatchingSymbols, reqMarketRule and reqSecDefOptParams
(the option chains), from the catalog (held back by the latency profile's ``contract_details``: IB
answers them from its servers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ibsim.catalog.instruments import ContractQuery, Instrument
from ibsim.catalog.lookup import Catalog
from ibsim.catalog.options import SECDEF_EXCHANGES
from ibsim.framing import FieldReader
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.latency import Latency
from ibsim.messages import ids
from ibsim.messages.contracts import (
    ContractRequest,
    contract_details,
    contract_details_end,
    market_rule,
    parse_contract_details_request,
    symbol_samples,
)
from ibsim.messages.options import (
    SecDefOptParamsRequest,
    parse_sec_def_opt_params,
    security_definition_option_parameter,
    security_definition_option_parameter_end,
)
from ibsim.session import Session

NO_DEFINITION = "No security definition has been found for the request"


def one_contract(catalog: Catalog, session: Session, req: ContractRequest) -> Instrument | None:
    """The one instrument a request names, or None after answering error 200 on its request id."""
    found = catalog.match(req.contract)
    if len(found) != 1:
        session.error(req.req_id, 200, NO_DEFINITION)
        return None
    return found[0]


class ContractRequests(RequestGroup):
    """Contract lookups against the catalog."""

    def __init__(self, catalog: Catalog, latency: Latency) -> None:
        self.catalog = catalog
        self.latency = latency

    @contextmanager
    def _held(self, session: Session, req_id: int) -> Iterator[None]:
        """The whole answer in the contracts lane, held back by the profile's figure."""
        delay = self.latency.profile.contract_details
        held = self.latency.log.note("contractDetails", session.client_id, req_id, delay)
        with session.holding("contracts", delay, held):
            yield

    @answers(ids.REQ_CONTRACT_DATA)
    def contract_details(self, session: Session, fields: list[str]) -> None:
        """Every matching instrument (on the exchange asked for), then the end; none is error 200."""
        req_id, query = parse_contract_details_request(fields)
        with self._held(session, req_id):
            self._details(session, req_id, query)

    def _details(self, session: Session, req_id: int, query: ContractQuery) -> None:
        found = self.catalog.match(query)
        if not found:
            session.error(req_id, 200, NO_DEFINITION)
            return
        exchange = query.exchange.upper() if query.exchange else ""
        for inst in found:
            session.send(contract_details(req_id, inst, exchange if exchange else inst.exchange))
        session.send(contract_details_end(req_id))

    @answers(ids.REQ_MATCHING_SYMBOLS)
    def matching_symbols(self, session: Session, fields: list[str]) -> None:
        """Up to 16 symbols starting with the pattern (or whose name contains it), one per product."""
        r = FieldReader(fields, 1)
        req_id = r.int()
        pattern = r.str().upper().strip()
        seen: dict[tuple[str, str], Any] = {}
        for inst in self.catalog:
            if not pattern:
                break
            if inst.symbol.upper().startswith(pattern) or pattern in inst.long_name.upper():
                key = (inst.symbol, "FUT" if inst.sec_type == "FUT" else inst.sec_type + inst.currency)
                seen.setdefault(key, inst)
        with self._held(session, req_id):
            session.send(symbol_samples(req_id, list(seen.values())[:16]))

    @answers(ids.REQ_MARKET_RULE)
    def market_rule(self, session: Session, fields: list[str]) -> None:
        """The price bands of a market rule."""
        rule_id = FieldReader(fields, 1).int()
        with self._held(session, rule_id):
            session.send(market_rule(rule_id, list(self.catalog.market_rule(rule_id))))

    @answers(ids.REQ_SEC_DEF_OPT_PARAMS)
    def sec_def_opt_params(self, session: Session, fields: list[str]) -> None:
        """An underlying's option chain: one message per exchange (SMART, CBOE) with today's
        expiries and strikes, then the end (the end alone for an underlying without options)."""
        req = parse_sec_def_opt_params(fields)
        with self._held(session, req.req_id):
            self._chains(session, req)

    def _chains(self, session: Session, req: SecDefOptParamsRequest) -> None:
        chains = self.catalog.options
        root = None
        if chains is not None and req.underlying_sec_type.upper() in ("", "STK"):
            root = chains.root_for(req.underlying_symbol, req.underlying_con_id)
        if chains is not None and root is not None:
            expirations = [f"{day:%Y%m%d}" for day in chains.expiries()]
            strikes = chains.strikes(root)
            under = chains.underlyings[root.symbol].con_id
            wanted = req.fut_fop_exchange.upper()
            for exchange in SECDEF_EXCHANGES:
                if wanted and wanted != exchange:
                    continue
                session.send(
                    security_definition_option_parameter(
                        req.req_id, exchange, under, root.symbol, "100", expirations, strikes
                    )
                )
        session.send(security_definition_option_parameter_end(req.req_id))
