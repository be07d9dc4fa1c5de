"""The stored decision's JSON is the contract the API, the dashboard and the CLI read: every plan
the worker stored in the end-to-end and worker runs reads back into the typed decision and writes
out exactly as it was (key order included).

``data/stored_plans.jsonl``: one plan per shape, recorded from ``Alert.plan`` writes during a run of
tests/worker and tests/e2e (brackets, reversals, refusals by position, sizing, risk and margin,
dry runs, exits while flat, cancels, contract maps and rolls, closes that did not fill)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from worker.decision.stored import PositionMove, StoredDecision, position_move_of

PLANS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "stored_plans.jsonl").read_text().splitlines()
]


@pytest.mark.parametrize("doc", PLANS, ids=[f"{i}-{d.get('kind')}" for i, d in enumerate(PLANS)])
def test_every_stored_plan_round_trips_exactly(doc):
    again = StoredDecision.from_json(doc).to_json()
    assert again == doc
    assert list(again) == list(doc)  # the same keys in the same order
    assert json.dumps(again) == json.dumps(doc)


def test_the_recorded_plans_cover_every_shape():
    kinds = {doc.get("kind") for doc in PLANS}
    assert {"bracket", "exit", "position", "cancel", "refused"} <= kinds
    assert any("refused_legs" in doc for doc in PLANS)  # a risk refusal of an opening
    assert any((doc.get("position") or {}).get("kind") == "none" for doc in PLANS)  # nothing to do
    assert any("outcome" in (doc.get("position") or {}) for doc in PLANS)  # a close that did not fill
    assert any("refused_open" in (doc.get("position") or {}) for doc in PLANS)
    assert any(doc.get("contract_map") for doc in PLANS) and any(doc.get("sizing") for doc in PLANS)


def test_the_job_reads_the_move_typed():
    doc = next(d for d in PLANS if (d.get("position") or {}).get("kind") == "reverse")
    stored = StoredDecision.from_json(doc)
    move = stored.decided
    assert isinstance(move, PositionMove) and move == position_move_of(doc)
    assert move.before * move.target < 0 and move.close_qty == abs(move.before)
    assert stored.close_leg is not None and stored.close_leg.leg == "close"
    assert all(leg.leg != "close" for leg in stored.open_legs)
    assert move.protection_after is None or move.protection_after.side == (1 if move.target > 0 else -1)
    assert isinstance(move.open_qty, Decimal)
