"""The web reads RISK_FILE (the fan-out accounts of each strategy) when it starts: a bad file stops
it like a bad setting, with the file, the line and the reason; a HUP to gunicorn starts new workers,
which read the file again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from app_helpers import SECRET, alert_body
from gunicorn_server import gunicorn_env
from support import free_port, wait_until

from app import create_app

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "app:create_app()",
    "-c",
    str(ROOT / "config" / "gunicorn.conf.py"),
]
BAD = "strategies:\n  trend:\n    accounts: [DU1, DU1]\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BAD, "strategies.trend.accounts names an account twice"),
        (
            "strategies:\n  trend:\n    accounts: [DU1, 'DU 2']\n",
            "strategies.trend.accounts names 'DU 2', not an IB account id (letters, digits, _ . - only)",
        ),
    ],
)
def test_a_bad_risk_file_stops_create_app_naming_the_line(make_settings, tmp_path, text, reason):
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stopped:
        create_app(make_settings(RISK_FILE=str(path)))
    assert str(stopped.value) == f"tv2ib: risk file error: {path}:3: {reason}"


@pytest.mark.e2e
def test_a_bad_risk_file_stops_gunicorn_with_a_clear_message(tmp_path, redis_url):
    path = tmp_path / "risk.yaml"
    path.write_text(BAD)
    env = gunicorn_env(WEBHOOK_SECRET=SECRET, PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                       REDIS_URL=redis_url, RISK_FILE=str(path), PYTHONPATH=str(ROOT))  # fmt: skip
    result = subprocess.run(GUNICORN, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"tv2ib: risk file error: {path}:3: strategies.trend.accounts names an account twice" in output
    assert "Traceback" not in output


@pytest.mark.e2e
def test_hup_reads_the_risk_file_again_and_a_broken_one_keeps_the_rules_the_web_had(tmp_path, redis_url):
    path = tmp_path / "risk.yaml"
    path.write_text("strategies:\n  trend:\n    accounts: [DU1, DU2]\n")
    port = free_port()
    env = gunicorn_env(WEBHOOK_SECRET=SECRET, PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                       REDIS_URL=redis_url, RISK_FILE=str(path), WEB_WORKERS="1", WEB_THREADS="2")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(GUNICORN, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    sent = iter(range(1000))

    def fanned_to() -> list[str]:
        body = alert_body(strategy="trend", id=f"hup-{next(sent)}")
        return [c["account"] for c in httpx.post(f"{base}/webhook", json=body, timeout=5).json()["children"]]

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, log_path.read_text()
            return False

    try:
        wait_until(up, 20, "gunicorn did not start")
        assert fanned_to() == ["DU1", "DU2"]
        # broken file, HUP: reported, and the new worker routes with the rules the web had
        path.write_text(BAD)
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: "using the rules gunicorn's master read last" in log_path.read_text(), 20,
                   log_path.read_text)  # fmt: skip
        assert "risk file error after HUP, the web keeps the rules it had" in log_path.read_text()
        wait_until(up, 20, "gunicorn stopped answering")
        assert fanned_to() == ["DU1", "DU2"]
        # fixed file, HUP: the new rules
        path.write_text("strategies:\n  trend:\n    accounts: [DU3, DU4]\n")
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: fanned_to() == ["DU3", "DU4"], 20, log_path.read_text)
    finally:
        proc.terminate()
        proc.wait(15)
