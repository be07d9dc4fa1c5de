"""One alert, several accounts: intake stores a parent (``fanned_out``) and one child per account
in one transaction, each child on its own account's queue; the API, the dashboard and a resend
all see the same family."""

from __future__ import annotations

import pytest
from app_helpers import alert_body, alerts, get_alert, post, queued_jobs
from support import TEST_ADMIN_TOKEN
from test_dashboard import sign_in
from test_routing import beat

from app.webhook.fanout import route
from app.webhook.schema import normalise_alert
from core.enqueue import alert_job_id
from core.models import AlertStatus
from core.risk_file import RiskFile
from core.routing import Served

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
RISK = "strategies:\n  trend:\n    accounts: [DU1, DU2]\n  solo:\n    accounts: [DU2]\n"


@pytest.fixture
def risk_app(make_app, tmp_path):
    path = tmp_path / "risk.yaml"
    path.write_text(RISK)
    return make_app(RISK_FILE=str(path))


def family(ctx, parent_id: str):
    rows = alerts(ctx)
    return [r for r in rows if r.id == parent_id], [r for r in rows if r.parent_id == parent_id]


# ------------------------------------------------------------------------------- routing rules

FANOUT = RiskFile(fanout={"trend": ("DU1", "DU2"), "solo": ("DU2",)})


@pytest.mark.parametrize(
    ("fields", "accounts", "single_account"),
    [
        ({"account": ["DU1", "DU2"]}, ("DU1", "DU2"), None),
        ({"account": ["DU3"]}, (), "DU3"),  # one account in a list: just the alert
        ({"strategy": "trend"}, ("DU1", "DU2"), None),  # the risk file fans the strategy out
        ({"strategy": "trend", "account": "DU9"}, (), "DU9"),  # the alert's account wins
        ({"strategy": "trend", "account": ["DU3", "DU4"]}, ("DU3", "DU4"), None),
        ({"strategy": "solo"}, (), "DU2"),  # one account in the risk file: routed, no fan-out
        ({"strategy": "other"}, (), None),
    ],
)
def test_route_table(fields, accounts, single_account):
    normalised, errors = normalise_alert({"ticker": "AAPL", "action": "buy", "quantity": 1, **fields})
    assert not errors and normalised is not None
    routed = route(normalised, FANOUT)
    assert routed.accounts == accounts
    if not accounts:
        assert routed.payload.account == single_account
    else:
        assert [routed.child_payload(a)["account"] for a in accounts] == list(accounts)


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ([], "an empty list names no account"),
        (["DU1", "DU1"], "names account DU1 twice"),
        (["DU1", "a b"], "item 2: contains characters that are not allowed"),
        (["DU1", 7.5], "item 2: must be a string"),
        # "default" names the queue of alerts without an account, whose worker trades DU1 too
        (["DU1", "default"], "item 2: 'default' is not an account id"),
        (["Default", "DU2"], "item 1: 'default' is not an account id"),
        ("default", "'default' is not an account id"),
        ([f"DU{i}" for i in range(21)], "at most 20 accounts in one alert, got 21"),
    ],
)
def test_bad_account_lists_are_field_errors(account, message):
    normalised, errors = normalise_alert({"ticker": "AAPL", "action": "buy", "account": account})
    assert normalised is None
    assert errors["account"][0].startswith(message)


# ---------------------------------------------------------------------------------------- intake


def test_a_list_of_accounts_becomes_a_parent_and_one_child_per_account(client, ctx, redis_client):
    beat(redis_client, "DU1", ["DU1"])
    beat(redis_client, "DU2", ["DU2"], client_id=2)
    answer = post(client, alert_body(account=["DU1", "DU2"], strategy="trend"))
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status"] == "fanned_out"
    assert [(c["account"], c["status"]) for c in body["children"]] == [("DU1", "queued"), ("DU2", "queued")]

    [parent], children = family(ctx, body["alert_id"])
    assert parent.status == AlertStatus.FANNED_OUT
    assert parent.reason == "fanned out to 2 accounts: DU1, DU2 (accounts named in the alert)"
    assert parent.payload["account"] == ["DU1", "DU2"] and parent.account is None
    assert sorted((c.account, c.payload["account"], c.status) for c in children) == [
        ("DU1", "DU1", AlertStatus.QUEUED),
        ("DU2", "DU2", AlertStatus.QUEUED),
    ]
    assert {c.id for c in children} == {c["alert_id"] for c in body["children"]}
    assert all(c.payload["quantity"] == 10 and c.strategy == "trend" for c in children)
    # each child on its own account's queue, the parent on none
    by_account = {c.account: c.id for c in children}
    for account in ("DU1", "DU2"):
        assert [j.id for j in queued_jobs(redis_client, account)] == [alert_job_id(by_account[account])]
    assert queued_jobs(redis_client, None) == []


def test_a_resend_answers_the_parent_and_makes_no_new_children(client, ctx, redis_client):
    first = post(client, alert_body(account=["DU1", "DU2"], id="sig-1")).get_json()
    again = post(client, alert_body(account=["DU1", "DU2"], id="sig-1"))
    assert again.status_code == 200
    body = again.get_json()
    assert body["alert_id"] == first["alert_id"] and body["duplicate"] is True
    assert body["status"] == "fanned_out"
    assert body["children"] == [
        {"alert_id": c["alert_id"], "account": c["account"]} for c in first["children"]
    ]
    rows = alerts(ctx)
    assert len([r for r in rows if r.parent_id]) == 2
    assert [r.status for r in rows].count(AlertStatus.DUPLICATE) == 1
    assert len(queued_jobs(redis_client, "DU1")) == 1 and len(queued_jobs(redis_client, "DU2")) == 1


def test_default_in_an_account_list_is_refused_at_intake_with_the_field_named(client, ctx, redis_client):
    """The worker without IB_ACCOUNT serves "default" and DU1: ["DU1", "default"] was two orders on DU1."""
    beat(redis_client, None, ["default", "DU1"])
    refused = post(client, alert_body(account=["DU1", "default"], action="add", quantity=2))
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["fields"]["account"][0].startswith(
        "item 2: 'default' is not an account id: it is tv2ib's name"
    )
    [row] = alerts(ctx)
    assert row.status == AlertStatus.INVALID
    assert queued_jobs(redis_client, "DU1") == [] and queued_jobs(redis_client) == []


def test_a_list_with_an_unserved_account_is_refused_and_stores_no_child(client, ctx, redis_client):
    beat(redis_client, "DU1", ["DU1"])
    beat(redis_client, "DU2", ["DU2"], client_id=2)
    refused = post(client, alert_body(account=["DU1", "DU9"]))
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["fields"]["account"] == ["no worker serves account DU9; workers serve: DU1, DU2"]
    [row] = alerts(ctx)  # only the invalid request's own record, as for any refused alert
    assert row.status == AlertStatus.INVALID and row.id == body["alert_id"]
    assert queued_jobs(redis_client, "DU1") == []


def test_a_strategy_with_accounts_in_the_risk_file_fans_out(risk_app, redis_client):
    client, ctx = risk_app.test_client(), risk_app.extensions["tv2ib"].ctx
    body = post(client, alert_body(strategy="trend")).get_json()
    assert body["status"] == "fanned_out"
    [parent], children = family(ctx, body["alert_id"])
    assert parent.reason == 'fanned out to 2 accounts: DU1, DU2 (risk file: strategy "trend" accounts)'
    assert parent.payload["account"] is None
    assert sorted(c.account for c in children) == ["DU1", "DU2"]


def test_the_alerts_own_account_wins_over_the_risk_file(risk_app, redis_client):
    client, ctx = risk_app.test_client(), risk_app.extensions["tv2ib"].ctx
    body = post(client, alert_body(strategy="trend", account="DU7")).get_json()
    assert "children" not in body and body["status"] == "queued"
    [row] = alerts(ctx)
    assert row.account == "DU7" and row.parent_id is None
    assert [j.id for j in queued_jobs(redis_client, "DU7")] == [alert_job_id(row.id)]
    # a strategy with ONE account in the risk file is routed there, no parent
    solo = post(client, alert_body(strategy="solo")).get_json()
    assert get_alert(ctx, solo["alert_id"]).account == "DU2"


def test_an_unserved_account_from_the_risk_file_is_refused_naming_the_file(risk_app, redis_client):
    beat(redis_client, "DU1", ["DU1"])
    refused = post(risk_app.test_client(), alert_body(strategy="trend"))
    assert refused.status_code == 422
    assert refused.get_json()["fields"]["account"] == [
        'risk file: strategy "trend" accounts: no worker serves account DU2; workers serve: DU1'
    ]


def test_children_whose_enqueue_failed_are_relayed(client, ctx, redis_client, monkeypatch):
    """Redis down at the answer: every child stays 'received' (committed) and the relay enqueues it."""
    import redis

    from app.webhook import intake
    from core.relay import relay_once

    def down(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(intake, "enqueue_alert", down)
    body = post(client, alert_body(account=["DU1", "DU2"])).get_json()
    assert [c["status"] for c in body["children"]] == ["received", "received"]
    monkeypatch.undo()
    assert relay_once(ctx) == 2
    _, children = family(ctx, body["alert_id"])
    assert sorted((c.account, c.status) for c in children) == [
        ("DU1", AlertStatus.QUEUED),
        ("DU2", AlertStatus.QUEUED),
    ]
    assert len(queued_jobs(redis_client, "DU1")) == 1 and len(queued_jobs(redis_client, "DU2")) == 1


def test_intake_refusals_check_every_account_of_a_fanout():
    from app.webhook.intake import _account_refusals

    normalised, _ = normalise_alert({"ticker": "AAPL", "action": "buy", "account": ["DU1", "DU8", "DU9"]})
    served = Served(frozenset({"DU1"}), True, 1)
    assert _account_refusals(route(normalised, RiskFile()), served) == [
        "no worker serves account DU8; workers serve: DU1",
        "no worker serves account DU9; workers serve: DU1",
    ]


# ------------------------------------------------------------------------------ API, dashboard


def test_api_lists_children_under_their_parent(client, ctx):
    body = post(client, alert_body(account=["DU1", "DU2"], ticker="MSFT")).get_json()
    parent = client.get(f"/api/alerts/{body['alert_id']}", headers=AUTH).get_json()
    assert parent["status"] == "fanned_out" and parent["parent_id"] is None
    assert [(c["account"], c["status"], c["reason"]) for c in parent["children"]] == [
        ("DU1", "queued", None),
        ("DU2", "queued", None),
    ]
    child_id = parent["children"][0]["id"]
    child = client.get(f"/api/alerts/{child_id}", headers=AUTH).get_json()
    assert child["parent_id"] == body["alert_id"] and child["children"] == []
    assert child["payload"]["account"] == "DU1"
    listed = {a["id"]: a for a in client.get("/api/alerts", headers=AUTH).get_json()["alerts"]}
    assert [c["id"] for c in listed[body["alert_id"]]["children"]] == [c["id"] for c in parent["children"]]
    assert listed[child_id]["parent_id"] == body["alert_id"]


def test_dashboard_shows_the_children_with_links(client, ctx):
    body = post(client, alert_body(account=["DU1", "DU2"])).get_json()
    sign_in(client)
    page = client.get(f"/alerts/{body['alert_id']}").get_data(as_text=True)
    assert "fanned out to 2 accounts: DU1, DU2" in page
    for child in body["children"]:
        assert f'href="/alerts/{child["alert_id"]}"' in page
    child_page = client.get(f"/alerts/{body['children'][1]['alert_id']}").get_data(as_text=True)
    assert f'href="/alerts/{body["alert_id"]}"' in child_page and "DU2" in child_page
    home = client.get("/").get_data(as_text=True)
    assert 'class="child"' in home and "fanned_out" in home


def test_a_child_no_worker_took_is_rejected_by_the_sweep_with_a_notice_naming_its_account(
    client, ctx, redis_client
):
    from sqlalchemy import select
    from test_routing import age

    from core.models import Notice
    from core.relay import relay_once

    body = post(client, alert_body(account=["DU1", "DU2"])).get_json()
    du2 = body["children"][1]["alert_id"]
    age(ctx, du2, 600)
    relay_once(ctx)
    child = get_alert(ctx, du2)
    assert child.status == AlertStatus.REJECTED and child.reason.startswith("no worker took it within")
    assert get_alert(ctx, body["alert_id"]).status == AlertStatus.FANNED_OUT  # the parent stays as it is
    with ctx.sessions() as session:
        [notice] = session.scalars(select(Notice)).all()
    assert notice.text.endswith("account DU2") and du2 in notice.text
