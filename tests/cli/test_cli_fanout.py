"""``tv2ib alert <parent>`` lists a fan-out's children; following a parent stops at fanned_out."""

from __future__ import annotations

from rich.console import Console

from cli import exitcodes
from cli.follow import classify
from cli.render import alert_detail

PARENT = {
    "id": "01PARENT",
    "status": "fanned_out",
    "reason": "fanned out to 2 accounts: DU1, DU2 (accounts named in the alert)",
    "ticker": "AAPL",
    "action": "buy",
    "children": [
        {"id": "01CHILDA", "account": "DU1", "status": "filled", "reason": None},
        {"id": "01CHILDB", "account": "DU2", "status": "rejected", "reason": "risk: max_order_quantity 5"},
    ],
}


def _text(parts) -> str:
    console = Console(width=200, record=True)
    for part in parts:
        console.print(part)
    return console.export_text()


def test_alert_detail_lists_the_children():
    shown = _text(alert_detail(PARENT))
    assert "Children (2)" in shown
    lines = [line for line in shown.splitlines() if "01CHILD" in line]
    assert "DU1" in lines[0] and "filled" in lines[0]
    assert "DU2" in lines[1] and "rejected" in lines[1] and "risk: max_order_quantity 5" in lines[1]


def test_a_child_shows_its_parent():
    shown = _text(
        alert_detail({"id": "01CHILDA", "status": "filled", "account": "DU1", "parent_id": "01PARENT"})
    )
    assert "parent_id" in shown and "01PARENT" in shown and "Children" not in shown


def test_following_a_parent_stops_at_fanned_out():
    outcome = classify(PARENT)
    assert outcome is not None and outcome.state == "fanned_out" and outcome.exit_code == exitcodes.OK
