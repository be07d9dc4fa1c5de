"""worker/decision/evolve.py: the decision core's copy of a frozen dataclass with some fields
changed gives what ``dataclasses.replace`` gives, for the classes it takes, and refuses the others."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from worker_helpers import AAPL

from core.payload import AlertPayload
from core.risk_file import load_risk_file
from worker.decision.core import DecisionConfig, propose
from worker.decision.evolve import evolve
from worker.decision.look import Look
from worker.decision.model import Leg
from worker.decision.quote import Quote
from worker.recording.protection import ProtectionSpec
from worker.recording.snapshots import AccountFigures
from worker.risk.state import RiskCounters
from worker.risk.verdict import AccountView, RiskInputs

D = Decimal
NOW = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
STOP = Leg("sl", "SELL", "STP", D(10), stop_price=D("188.10"), parent_leg="entry")


def _proposal():
    """A real proposal: a bracket from flat, every rule of the risk file on, the margin check on."""
    rules = load_risk_file("bench/risk.yaml").rules_for("bench", "DU1")
    risk = RiskInputs(rules, "DU1", NOW, AccountView(D(0), 0, 0, D(0), "USD"), RiskCounters(D(0)))
    figures = AccountFigures("DU1", "USD", net_liquidation=D(100_000), available_funds=D(50_000))
    look = Look(
        "A1", AAPL, D(0), "DU1", Quote(D(190), "IB last price", "live", "live"), None, figures, risk=risk
    )
    payload = AlertPayload.from_json({"ticker": "AAPL", "strategy": "bench", "action": "buy", "quantity": 10,
                                      "price": 190, "takeProfit": {"percent": 1}, "stopLoss": {"percent": 1}})  # fmt: skip
    return propose(look, payload, DecisionConfig(margin_check=True))


@pytest.mark.parametrize(
    ("make", "changes"),
    [
        (lambda: STOP, {"transmit": False}),
        (lambda: STOP, {"quantity": D(4), "transmit": True, "parent_leg": None}),
        (lambda: STOP, {}),
        (_proposal, {"margin_ask": None, "refused_open": "margin: needs 9, available 1"}),
        (_proposal, {"missing": ("quote",)}),
    ],
)
def test_the_copy_equals_replace_and_leaves_the_original(make, changes):
    original = make()
    before = dataclasses.asdict(original) if isinstance(original, Leg) else repr(original)
    copied = evolve(original, **changes)
    assert copied == replace(original, **changes)
    assert copied is not original
    assert type(copied) is type(original)
    for name, value in changes.items():
        assert getattr(copied, name) == value
    assert (dataclasses.asdict(original) if isinstance(original, Leg) else repr(original)) == before
    with pytest.raises(dataclasses.FrozenInstanceError):  # still frozen
        copied.transmit = True  # type: ignore[misc]


def test_the_bracket_leaves_with_only_its_last_leg_transmitting():
    """The planner's use: the legs of a bracket from the real decision, in order."""
    legs = _proposal().opening.legs
    assert [leg.leg for leg in legs] == ["entry", "tp", "sl"]
    assert [leg.transmit for leg in legs] == [False, False, True]


@dataclass(frozen=True)
class _Validated:
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("negative")


@dataclass(frozen=True)
class _Derived:
    size: int
    double: int = field(init=False, default=0)


@dataclass(frozen=True, slots=True)
class _Slotted:
    size: int


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (_Validated(1), "__post_init__"),  # a copy must not skip the class's own check
        (ProtectionSpec("DU1", 265598, "A1", 1, {"sl": D(188)}), "__post_init__"),  # the position's exits
        (_Derived(1), "does not set"),
        (_Slotted(1), "without slots"),
        ((1, 2), "dataclass"),
    ],
)
def test_a_class_whose_init_does_more_than_store_is_refused(obj, why):
    with pytest.raises(TypeError, match=why):
        evolve(obj, size=2)


def test_an_unknown_field_is_refused_like_replace():
    with pytest.raises(TypeError, match="no field.*colour"):
        evolve(STOP, colour="red")
    with pytest.raises(TypeError):
        replace(STOP, colour="red")
