"""``tv2ib replay`` (a private stack of its own) and ``tv2ib db upgrade`` (a fresh SQLite file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli

from cli import exitcodes
from core.db import head_revision

ALERT_LOG = """\
# demo strategy, exported from the alert log
2026-11-20T14:30:00Z,{"ticker": "NASDAQ:AAPL", "action": "buy", "quantity": 10, "price": 190, "strategy": "demo", "secret": "from-the-log-0123456789", "account": "DU999", "time": "2026-11-20T14:30:00Z"}

{"ticker": "AAPL", "action": "sell", "quantity": 10, "price": 192, "strategy": "demo"}
{"ticker": "AAPL", "action": "buy", "quantity": 0, "strategy": "demo"}
this line is not an alert
{"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 191, "strategy": "demo"}
"""


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="replay starts a private redis-server")
def test_replay_runs_a_strategys_alerts_on_a_private_stack_and_summarises_them(tmp_path: Path):
    log = tmp_path / "alerts.jsonl"
    log.write_text(ALERT_LOG)
    # no server settings at all: the replay brings its own stack, secret and database
    done = run_cli(
        "replay", str(log), "--json", "--keep", str(tmp_path / "stack"), env={}, cwd=tmp_path, timeout=240
    )
    assert done.returncode == exitcodes.OK, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    rows = summary["alerts"]
    assert [(r["line"], r["outcome"]) for r in rows] == [
        (2, "accepted"),
        (4, "accepted"),
        (5, "refused"),
        (7, "accepted"),
    ]
    assert rows[0]["time"] == "2026-11-20T14:30:00Z" and rows[0]["status"] == "filled"
    assert "422" in rows[2]["reason"] and "quantity" in rows[2]["reason"]
    assert summary["counts"] == {"accepted": 3, "refused": 1}
    assert summary["bad_lines"] == [{"line": 6, "reason": "no JSON object on this line"}]
    assert [(p["symbol"], p["quantity"]) for p in summary["positions"]] == [("AAPL", 5)]
    assert sorted((f["side"], f["quantity"], f["price"]) for f in summary["fills"]) == [
        ("BOT", 5, 191), ("BOT", 10, 190), ("SLD", 10, 192),
    ]  # fmt: skip
    assert len(summary["orders"]) == 3
    assert (
        summary["realized_pnl"] == 19
    )  # bought 10 @ 190, sold 10 @ 192, ibsim's commission of 1 on the sale
    # the private database got the alerts; the secret from the log was not stored
    stored = (tmp_path / "stack" / "replay.db").read_bytes()
    assert b"from-the-log-0123456789" not in stored


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="replay starts a private redis-server")
def test_replay_leaves_the_live_servers_settings_in_the_shell_alone(tmp_path: Path):
    # the trader's shell holds the live server's settings: its metrics directory (gunicorn empties the
    # one it is given at start) and its risk file (which would refuse AAPL here)
    live_metrics = tmp_path / "live-metrics"
    live_metrics.mkdir()
    (live_metrics / "counter_4242.db").write_bytes(b"the live server's counts")
    risk = tmp_path / "risk.yaml"
    risk.write_text("defaults:\n  deny: [AAPL]\n")
    log = tmp_path / "alerts.jsonl"
    log.write_text('{"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 190}\n')
    shell = {"PROMETHEUS_MULTIPROC_DIR": str(live_metrics), "RISK_FILE": str(risk), "LOG_LEVEL": "DEBUG",
             "TELEGRAM_BOT_TOKEN": "123:live-bot-token"}  # fmt: skip
    done = run_cli("replay", str(log), "--json", env=shell, cwd=tmp_path, timeout=240)
    assert done.returncode == exitcodes.OK, done.stdout + done.stderr
    [row] = json.loads(done.stdout)["alerts"]
    assert (row["outcome"], row["status"]) == ("accepted", "filled"), row
    assert (live_metrics / "counter_4242.db").read_bytes() == b"the live server's counts"


def test_replay_of_a_file_without_alerts_says_so(tmp_path: Path):
    log = tmp_path / "empty.jsonl"
    log.write_text("# nothing\n\nnot json\n")
    done = run_cli("replay", str(log), env={}, cwd=tmp_path)
    assert done.returncode == exitcodes.USAGE and "no alerts found" in done.stderr and "line 3" in done.stderr


def test_db_upgrade_migrates_a_fresh_sqlite_file_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'tv2ib.db'}"
    first = run_cli("db", "upgrade", "--json", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["from"] is None and doc["to"] == head_revision() and doc["changed"] is True
    again = run_cli("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert again.returncode == 0 and "already at the latest schema" in again.stdout
    other = tmp_path / "other.db"
    flag = run_cli("db", "upgrade", "--database-url", f"sqlite:///{other}", env={}, cwd=tmp_path)
    assert flag.returncode == 0 and other.is_file() and "migrated from empty" in flag.stdout
