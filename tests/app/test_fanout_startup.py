"""The web reads RISK_FILE (the fan-out accounts of each strategy) when it starts: a bad file stops
it with exit code 2, the file, the line and the reason, whatever is wrong with the file; a HUP to
gunicorn starts new workers, which read the file again, and a file that cannot be used then (not
UTF-8, nested too deep, a Python tag, empty, truncated) keeps the rules the web had, keeps gunicorn
answering and raises one alarm notice (issue 16, items 4 and 7)."""

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
from sqlalchemy import create_engine, text
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
GOOD = "strategies:\n  trend:\n    accounts: [DU1, DU2]\n"
# files a HUP once read with a traceback that ended gunicorn's master: (content, line, reason)
UNUSABLE = [
    pytest.param(GOOD.encode() + b"# r\xe9glage\n", 4, "not UTF-8 text", id="latin-1"),
    pytest.param(
        b"strategies:\n  trend:\n    accounts: " + b"[" * 5000 + b"\n", 3, "nested deeper", id="nested"
    ),
    pytest.param(
        b"strategies:\n  trend:\n    accounts: !!python/name:os.system\n", 3, "YAML tag", id="python-tag"
    ),
    pytest.param(b"", 1, "the risk file is empty", id="empty"),
    pytest.param(b"strategies:\n", 1, "the risk file sets no rule", id="truncated"),
]


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
def test_a_bad_risk_file_stops_create_app_naming_the_line(make_settings, tmp_path, text, reason, capsys):
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stopped:
        create_app(make_settings(RISK_FILE=str(path)))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"tv2ib: risk file error: {path}:3: {reason}\n"


@pytest.mark.e2e
def test_a_bad_risk_file_stops_gunicorn_with_a_clear_message(tmp_path, redis_url):
    path = tmp_path / "risk.yaml"
    path.write_text(BAD)
    env = gunicorn_env(WEBHOOK_SECRET=SECRET, PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                       REDIS_URL=redis_url, RISK_FILE=str(path), PYTHONPATH=str(ROOT))  # fmt: skip
    result = subprocess.run(GUNICORN, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert f"tv2ib: risk file error: {path}:3: strategies.trend.accounts names an account twice" in output
    assert "Traceback" not in output


@pytest.mark.e2e
@pytest.mark.parametrize(("content", "line", "reason"), UNUSABLE)
def test_gunicorn_started_with_an_unusable_risk_file_exits_2_naming_file_and_line(
    tmp_path, redis_url, content, line, reason
):
    path = tmp_path / "risk.yaml"
    path.write_bytes(content)
    env = gunicorn_env(WEBHOOK_SECRET=SECRET, PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
                       REDIS_URL=redis_url, RISK_FILE=str(path), PYTHONPATH=str(ROOT))  # fmt: skip
    result = subprocess.run(GUNICORN, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"tv2ib: risk file error: {path}:{line}: " in output and reason in output
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
        # the answer is checked, not its speed: right after a HUP a loaded machine's new
        # gunicorn worker may still be importing the app (seen past 5 s at load average 10)
        answer = httpx.post(f"{base}/webhook", json=body, timeout=30)
        return [c["account"] for c in answer.json()["children"]]

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


@pytest.mark.e2e
def test_hup_with_an_unusable_risk_file_keeps_gunicorn_answering_with_the_rules_it_had(tmp_path, redis_url):
    """What ``systemctl reload`` does with a file saved in Latin-1, nested, tagged, emptied or cut:
    the master lives, /healthz and /webhook answer, alerts fan out as before, one alarm per HUP."""
    path = tmp_path / "risk.yaml"
    path.write_text(GOOD)
    port = free_port()
    database = f"sqlite:///{tmp_path / 'x.db'}"
    env = gunicorn_env(WEBHOOK_SECRET=SECRET, PORT=str(port), DATABASE_URL=database, REDIS_URL=redis_url,
                       RISK_FILE=str(path), WEB_WORKERS="2", WEB_THREADS="2")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(GUNICORN, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    sent = iter(range(1000))
    engine = create_engine(database)

    def fanned_to() -> list[str]:
        # a generous timeout: while the new workers boot, requests wait in the listen queue (a busy
        # test machine makes that seconds); what is checked is that they are answered
        body = alert_body(strategy="trend", id=f"hup-{next(sent)}")
        return [c["account"] for c in httpx.post(f"{base}/webhook", json=body, timeout=30).json()["children"]]

    def up() -> bool:
        assert proc.poll() is None, "gunicorn's master ended: " + log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def alarms() -> list[str]:
        with engine.connect() as conn:
            return list(conn.scalars(text("SELECT text FROM notices WHERE kind = 'alarm' ORDER BY id")))

    try:
        wait_until(up, 20, "gunicorn did not start")
        assert fanned_to() == ["DU1", "DU2"]
        for count, case in enumerate(UNUSABLE, start=1):
            content, line, reason = case.values
            path.write_bytes(content)
            os.kill(proc.pid, signal.SIGHUP)
            # this HUP's line (each HUP adds one): the master read the file and kept the rules
            said = "risk file error after HUP, the web keeps the rules it had: "
            wait_until(lambda: log_path.read_text().count(said) == count, 60, log_path.read_text)  # noqa: B023
            last = log_path.read_text().rsplit(said, 1)[1]
            assert last.startswith(f"{path}:{line}: ") and reason in last.split("\n", 1)[0], last[:300]
            wait_until(up, 60, "gunicorn stopped answering")
            assert fanned_to() == ["DU1", "DU2"], case.id
            wait_until(lambda: len(alarms()) >= count, 60, alarms)  # noqa: B023
            assert "Risk file not reloaded" in alarms()[-1] and f"{path}:{line}: " in alarms()[-1]
            assert reason in alarms()[-1]
        # each HUP raised its alarm once, though each of the two new workers tried
        assert len(alarms()) == len(UNUSABLE)
        # the file fixed, HUP: the new rules, and no alarm
        path.write_text("strategies:\n  trend:\n    accounts: [DU3, DU4]\n")
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: fanned_to() == ["DU3", "DU4"], 60, log_path.read_text)
        assert len(alarms()) == len(UNUSABLE)
        assert "Traceback" not in log_path.read_text()
    finally:
        engine.dispose()
        proc.terminate()
        proc.wait(15)
