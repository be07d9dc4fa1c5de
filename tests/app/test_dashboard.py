"""The dashboard: token login, cookie, escaping, pause/resume."""

from __future__ import annotations

from app_helpers import alert_body, post

TOKEN = "test-admin-token-0123456789"


def test_disabled_without_admin_token(make_app):
    assert make_app(ADMIN_TOKEN="").test_client().get("/").status_code == 404


def test_login_form_then_dashboard(client):
    assert client.get("/").status_code == 401
    assert client.post("/login", data={"token": "wrong-wrong-wrong-wrong"}).status_code == 401
    answer = client.post("/login", data={"token": TOKEN})
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    page = client.get("/")
    assert page.status_code == 200 and b"tv2ib" in page.data


def test_token_in_url_signs_in_and_alerts_are_escaped(client):
    alert_id = post(client, alert_body(strategy="<script>alert(1)</script>")).get_json()["alert_id"]
    assert client.get(f"/?token={TOKEN}").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert alert_id in page and "AAPL" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    detail = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "&lt;script&gt;" in detail and "<script>alert" not in detail


def test_pause_and_resume_buttons(client):
    client.get(f"/?token={TOKEN}")
    client.post("/control", data={"paused": "1"})
    assert "PAUSED" in client.get("/").get_data(as_text=True)
    client.post("/control", data={"paused": "0"})
    assert "PAUSED" not in client.get("/").get_data(as_text=True)
    assert (
        client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()["paused"] is False
    )
