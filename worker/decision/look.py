"""The look: what IB and the database said about the contract when the alert is decided.

Gathered first, with I/O (worker/execution/gather.py: one hop to the IB loop, the database's
counters on the job thread), then handed whole to the pure decision (worker/decision/core.py),
which reads nothing else. Every number a decision names is in here, so the plan shows the numbers
it used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from worker.contracts.held_month import HeldMonth
from worker.contracts.roll import Pick
from worker.contracts.tickers import ContractSpec
from worker.decision.model import Instrument
from worker.decision.quote import Quote
from worker.recording.protection import ProtectionSpec
from worker.recording.snapshots import AccountFigures
from worker.risk.verdict import RiskCounters, RiskInputs


@dataclass(frozen=True)
class Look:
    """IB's view of the contract (and the risk rules' inputs) for one alert."""

    alert_id: str
    inst: Instrument  # the contract decided on (a held earlier month after a roll)
    position: Decimal  # IB's settled position in it (its report plus our executions since)
    account: str = ""
    quote: Quote | None = None  # IB's reference price, when the alert needs one
    protection: ProtectionSpec | None = None  # the protection the position has now
    figures: AccountFigures | None = None  # IB's account figures (sizing)
    spec: ContractSpec | None = None  # what the ticker resolved to (symbol map, roll rule)
    roll: Pick | None = None  # a continuous future's roll facts
    held: HeldMonth | None = None  # the earlier month the position is held in (after a roll)
    risk: RiskInputs | None = None  # None: no risk gate

    @property
    def market(self) -> Decimal | None:
        """IB's reference price (None: not asked, or IB gave none)."""
        return self.quote.price if self.quote is not None else None

    @property
    def source(self) -> str:
        """Where :attr:`market` came from (``ib`` when no quote was asked)."""
        return self.quote.source if self.quote is not None else "ib"

    @property
    def symbol(self) -> str:
        return self.inst.local_symbol or self.inst.symbol

    def with_risk(self, *, counters: RiskCounters | None = None, quote: Quote | None = None) -> Look:
        """The look with the inputs the risk rules asked for (worker/risk/verdict.py ``missing_inputs``)."""
        assert self.risk is not None
        risk = self.risk
        if counters is not None:
            risk = replace(risk, counters=counters)
        if quote is not None:
            risk = replace(risk, quote=quote)
        return replace(self, risk=risk)
