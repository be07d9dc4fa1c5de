"""The worker's refusal of a fan-out child names the child's account in its event (hence in the
Telegram notice); the refusal of an ordinary alert stays as it was."""

from __future__ import annotations

import pytest

from config.settings import Settings
from core.context import AppContext
from core.models import Alert, AlertStatus
from worker.recording.recorder import Recorder, UnitOfWork


@pytest.fixture
def ctx(base_env):
    context = AppContext.build(Settings.from_mapping(base_env))
    yield context
    context.close()


@pytest.mark.parametrize(("parent", "named"), [("01PARENT00000000000000000X", "DU2"), (None, None)])
def test_a_refused_child_names_its_account(ctx, parent, named):
    with ctx.sessions.begin() as session:
        if parent:
            session.add(Alert(id=parent, status=AlertStatus.FANNED_OUT, account=None))
        session.add(Alert(id="01CHILD000000000000000000X", status=AlertStatus.PROCESSING, account="DU2",
                          parent_id=parent, ticker="AAPL", action="buy", strategy="trend"))  # fmt: skip
    recorder = Recorder(ctx.sessions, None, ctx.settings, client_id=1)
    try:
        with ctx.sessions.begin() as session:
            uow = UnitOfWork(session)
            assert recorder.advance(uow, "01CHILD000000000000000000X", AlertStatus.REJECTED, "risk: no",
                                    reason="risk: max_order_quantity 100 exceeded")  # fmt: skip
    finally:
        recorder.stop()
    [rejected] = [e for e in uow.events if e["type"] == "alert_rejected"]
    assert rejected.get("account") == named
