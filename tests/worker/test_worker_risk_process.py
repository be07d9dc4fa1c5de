"""The risk file in a real ``python -m worker`` process: a bad file stops it at start with exit code
2, the line and the reason, whatever is wrong with the file; SIGHUP reloads a good file (the change
is logged) and keeps the rules in force when the new file is bad, unreadable, empty or truncated
(logged, and an alarm notice queued)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from support import wait_until

from cli.stack import ROOT

GOOD = "defaults:\n  max_order_notional: 50000\n"
BETTER = "defaults:\n  max_order_notional: 60000\n  max_open_orders: 10\n"
BAD = "defaults:\n  max_order_quantity: -5\n"
# (content, line, reason): each once ended the worker with a traceback at start (exit 1), or (the
# empty and the truncated file) lifted every limit on a HUP with one WARNING line
UNUSABLE = [
    pytest.param(GOOD.encode() + b"# r\xe9glage\n", 3, "not UTF-8 text", id="latin-1"),
    pytest.param(b"defaults:\n  deny: " + b"[" * 5000 + b"\n", 2, "nested deeper", id="nested"),
    pytest.param(b"defaults:\n  dry_run: !!python/name:os.system\n", 2, "YAML tag", id="python-tag"),
    pytest.param(b"defaults:\n  daily_loss_limit: 1e5000\n", 2, "must be at most", id="huge-limit"),
    pytest.param(b"", 1, "the risk file is empty", id="empty"),
    pytest.param(b"defaults:\n  max_order_notional: 1,5\n", 2, "thousands separators", id="comma"),
    pytest.param(b"strategies:\naccounts:\n", 1, "the risk file sets no rule", id="truncated"),
]


def _env(base_env: dict[str, str], port: int, risk: Path) -> dict[str, str]:
    return {**os.environ, **base_env, "IB_PORT": str(port), "IB_CLIENT_ID": "31", "RISK_FILE": str(risk),
            "LOG_LEVEL": "INFO"}  # fmt: skip


def test_a_bad_risk_file_stops_the_worker_with_its_line_and_reason(base_env, tmp_path):
    risk = tmp_path / "risk.yaml"
    risk.write_text(BAD)
    done = subprocess.run([sys.executable, "-m", "worker"], cwd=ROOT, env=_env(base_env, 1, risk),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"tv2ib worker: {risk}:2: defaults.max_order_quantity must be above 0, got -5" in done.stderr


@pytest.mark.parametrize(("content", "line", "reason"), UNUSABLE)
def test_an_unusable_risk_file_stops_the_worker_with_exit_2_and_its_line(
    base_env, tmp_path, content, line, reason
):
    risk = tmp_path / "risk.yaml"
    risk.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "worker"], cwd=ROOT, env=_env(base_env, 1, risk),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"tv2ib worker: {risk}:{line}: ") and reason in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_sighup_reloads_a_good_file_and_keeps_the_rules_on_a_bad_one(base_env, sim, tmp_path):
    risk = tmp_path / "risk.yaml"
    risk.write_text(GOOD)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=_env(base_env, sim.port, risk),
                                stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        logged = log_path.read_text
        wait_until(lambda: f"risk file {risk}: defaults {{max_order_notional=50000}}" in logged(), timeout=30)
        wait_until(lambda: "worker consuming" in logged(), timeout=30)  # signal handlers are installed

        risk.write_text(BETTER)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded: defaults.max_open_orders: (unset) -> 10; "
                   "defaults.max_order_notional: 50000 -> 60000" in logged(), timeout=15)  # fmt: skip

        engine = create_engine(base_env["DATABASE_URL"])

        def alarm_texts() -> list[str]:
            with engine.connect() as conn:
                return list(conn.scalars(select(text("text")).select_from(text("notices"))
                                         .where(text("kind = 'alarm'"))))  # fmt: skip

        try:
            risk.write_text(BAD)
            proc.send_signal(signal.SIGHUP)
            kept = (
                f"risk file NOT reloaded, the rules in force are kept: {risk}:2: defaults.max_order_quantity"
            )
            wait_until(lambda: kept in logged(), timeout=15)
            wait_until(lambda: any("Risk file not reloaded" in t for t in alarm_texts()), timeout=15)

            # unreadable, empty or truncated: the rules stay, an alarm names the file and the line
            for case in UNUSABLE:
                content, line, reason = case.values
                risk.write_bytes(content)
                proc.send_signal(signal.SIGHUP)
                kept = f"risk file NOT reloaded, the rules in force are kept: {risk}:{line}: "
                wait_until(lambda: kept in logged(), timeout=15)  # noqa: B023
                wait_until(lambda: any(kept in t and reason in t for t in alarm_texts()), timeout=15)  # noqa: B023
                assert proc.poll() is None, f"the worker must keep running on a bad reload ({case.id})"
        finally:
            engine.dispose()
        # the rules in force all along were BETTER's: what changes now is measured from them
        risk.write_text(GOOD)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded: defaults.max_open_orders: 10 -> (unset); "
                   "defaults.max_order_notional: 60000 -> 50000" in logged(), timeout=15)  # fmt: skip
        assert "Traceback" not in logged()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
