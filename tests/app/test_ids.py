"""Alert ids sort by time and never repeat; order refs round-trip."""

from __future__ import annotations

from core.ids import new_alert_id, order_ref, parse_order_ref


def test_ids_are_unique_and_time_ordered():
    ids = [new_alert_id(now=1_700_000_000 + i / 1000) for i in range(2000)]
    assert len(set(ids)) == 2000
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_order_ref_round_trip():
    alert_id = new_alert_id()
    ref = order_ref(alert_id, "sl")
    assert ref == f"tv2ib:{alert_id}:sl"
    assert parse_order_ref(ref) == (alert_id, "sl")
    assert parse_order_ref("someone-else") is None
    assert parse_order_ref("tv2ib::entry") is None
    assert parse_order_ref(None) is None
