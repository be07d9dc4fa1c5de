"""The pure rules of IB's connection troubles (worker/decision/connectivity.py) and the repeating
outage alarm (worker/notify/outage.py), as tables."""

from __future__ import annotations

import pytest

from worker.decision.connectivity import (
    IBNotice,
    classify,
    job_wait,
    lost_placement,
    missed_text,
    next_alarm_at,
    outage_detail,
    sync_timeout_detail,
    whole_when,
)
from worker.notify.outage import OutageAlarm

LOST = "Connectivity between IB and Trader Workstation has been lost."


@pytest.mark.parametrize(
    ("code", "text", "kind", "farm", "data_only"),
    [
        (1100, LOST, "lost", "", False),
        (1100, "Connectivity lost: another session (competing live session)", "competing_session", "", False),
        (1101, "restored - data lost.", "restored", "", False),
        (1102, "restored - data maintained.", "restored", "", False),
        (2103, "Market data farm connection is broken:usfarm", "farm_broken", "market data", True),
        (2105, "HMDS data farm connection is broken:ushmds", "farm_broken", "historical data (HMDS)", True),
        (2157, "Sec-def data farm connection is broken:secdefnj", "farm_broken", "sec-def", True),
        (2104, "Market data farm connection is OK:usfarm", "farm_ok", "market data", True),
        (2106, "HMDS data farm connection is OK:ushmds", "farm_ok", "historical data (HMDS)", True),
        (2158, "Sec-def data farm connection is OK:secdefnj", "farm_ok", "sec-def", True),
        (326, "Unable to connect as the client id is already in use.", "client_id_in_use", "", False),
        (10197, "No market data during competing live session", "competing_session", "", False),
        (201, "Order rejected", "other", "", False),
    ],
)
def test_classify(code: int, text: str, kind: str, farm: str, data_only: bool) -> None:
    notice = classify(code, text)
    assert (notice.kind, notice.farm, notice.data_only) == (kind, farm, data_only)


def test_outage_details_name_the_cause_and_keep_ibs_words() -> None:
    in_use = outage_detail(IBNotice("client_id_in_use"), 326, "Unable to connect  as the client id", 7)
    assert in_use.startswith("client id 7 is still in use at IB")
    assert "same client id" in in_use and in_use.endswith("IB 326 Unable to connect as the client id")
    competing = outage_detail(
        IBNotice("competing_session"), 10197, "No market data during competing live session", 7
    )
    assert competing.startswith("another login took the IB session") and "IB 10197" in competing
    assert outage_detail(IBNotice("lost"), 1100, LOST, 7) == f"IB 1100 {LOST}"
    assert "within 4s" in sync_timeout_detail("['positions request timed out']", 4.0)


@pytest.mark.parametrize(
    ("ready", "age", "exit_only", "sent", "decided", "verdict"),
    [
        (True, 1.0, False, False, False, "go"),
        (False, 1.0, False, False, False, "wait"),
        (False, 31.0, False, False, False, "stale"),  # an entry past the limit: stale, IB up or not
        (True, 31.0, False, False, False, "stale"),
        (False, 3600.0, True, False, False, "wait"),  # an exit never goes stale: it waits for IB
        (True, 3600.0, True, False, False, "go"),  # and goes out as soon as IB is back
        (False, 31.0, False, True, False, "wait"),  # its orders are at IB: followed, never abandoned
        (True, 31.0, False, False, True, "go"),  # a stored decision: IB is asked (the executor)
    ],
)
def test_job_wait(ready: bool, age: float, exit_only: bool, sent: bool, decided: bool, verdict: str) -> None:
    got = job_wait(ready=ready, age=age, stale_after=30.0, exit_only=exit_only, sent=sent, decided=decided)
    assert got == verdict


@pytest.mark.parametrize(
    ("alarm_after", "repeat_every", "sent", "due"),
    [
        (60.0, 3600.0, 0, 1060.0),  # the first alarm: alarm_after into the outage
        (60.0, 3600.0, 1, 4660.0),  # then every repeat_every
        (60.0, 3600.0, 3, 11860.0),
        (60.0, 0.0, 0, 1060.0),
        (60.0, 0.0, 1, None),  # 0: one alarm per outage
    ],
)
def test_next_alarm_at(alarm_after: float, repeat_every: float, sent: int, due: float | None) -> None:
    assert next_alarm_at(1000.0, alarm_after, repeat_every, sent) == due


@pytest.mark.parametrize(
    ("stale", "ids", "text"),
    [
        (0, (), ""),
        (1, ("A1",), "missed while down: 1 alert went stale (refused, nothing sent): A1"),
        (2, (), "missed while down: 2 alerts went stale (refused, nothing sent)"),
        (
            6,
            tuple("ABCDEF"),
            "missed while down: 6 alerts went stale (refused, nothing sent): A, B, C, D, E ...",
        ),
    ],
)
def test_missed_text(stale: int, ids: tuple[str, ...], text: str) -> None:
    assert missed_text(stale, ids) == text


def test_the_outage_alarm_repeats_while_down_and_restores_once() -> None:
    alarm = OutageAlarm("ib_lost", "ib_restored", alarm_after=10, with_detail=True, repeat_every=100)
    assert alarm.went_down(0.0, "disconnected")
    assert alarm.check(9.0) is None
    first = alarm.check(10.0)
    assert first is not None and "repeat" not in first and first["detail"] == "disconnected"
    assert alarm.check(50.0) is None
    alarm.went_down(60.0, "cannot connect: refused")  # still down, a newer reason
    second = alarm.check(110.0)
    assert second is not None and second["repeat"] == 2 and second["detail"] == "cannot connect: refused"
    assert alarm.alarm_due_at == 210.0
    restored = alarm.came_back(150.0, "connected")
    assert restored is not None and restored["type"] == "ib_restored" and restored["down_seconds"] == 150.0
    assert alarm.came_back(151.0) is None and alarm.alarm_due_at is None


@pytest.mark.parametrize(
    ("last_ref", "known", "lost"),
    [
        ("tv2ib:A:sl", {"tv2ib:A:entry", "tv2ib:A:tp", "tv2ib:A:sl"}, False),  # the whole bracket is at IB
        ("tv2ib:A:sl", {"tv2ib:A:entry"}, True),  # only the staged entry reached IB: it never trades
        ("tv2ib:A:sl", set(), True),  # nothing reached IB
        ("tv2ib:A:sl.2", {"tv2ib:A:entry", "tv2ib:A:tp.1", "tv2ib:A:sl.1", "tv2ib:A:tp.2"}, True),  # levels
        ("tv2ib:A:entry", {"tv2ib:A:entry"}, False),  # a plain entry (an add) IB has
        ("tv2ib:A:tp", {"tv2ib:A:close", "tv2ib:A:entry"}, True),  # a reversal's opening bracket lost
    ],
)
def test_a_bracket_is_lost_when_ib_does_not_know_its_last_order(last_ref, known, lost):
    assert lost_placement(last_ref, known) is lost


@pytest.mark.parametrize(
    ("planned", "recorded", "whole"),
    [
        # a bracket: its stop-loss transmits it, recorded with the rest
        (["entry", "tp", "sl"], ["tv2ib:A:entry", "tv2ib:A:tp", "tv2ib:A:sl"], ("tv2ib:A:sl", True)),
        # the connection dropped as the legs went out: recorded all the same (written to the socket)
        (["entry", "tp", "sl"], ["tv2ib:A:entry", "tv2ib:A:tp", "tv2ib:A:sl"], ("tv2ib:A:sl", True)),
        # a reversal whose worker died after the close: the opening bracket was never sent
        (["close", "entry", "tp", "sl"], ["tv2ib:A:close"], ("tv2ib:A:sl", False)),
        # a reversal with no exits: its opening entry transmits
        (["close", "entry"], ["tv2ib:A:close", "tv2ib:A:entry"], ("tv2ib:A:entry", True)),
        # a reduce: the close alone
        (["close"], ["tv2ib:A:close"], ("tv2ib:A:close", True)),
        # no planned legs (an exit update, an unreadable plan): the last order recorded
        ([], ["tv2ib:A:tp2", "tv2ib:A:sl2"], ("tv2ib:A:sl2", True)),
        # nothing recorded: its job never sent anything (the relay's business, not this sweep's)
        (["entry", "tp", "sl"], [], None),
    ],
)
def test_a_submitted_alert_is_whole_once_its_plans_last_leg_is_at_ib(planned, recorded, whole):
    assert whole_when("A", planned, recorded) == whole
