"""``tv2ib`` as a user runs it (the console script, a subprocess) against a real gunicorn + worker +
ibsim: send and follow, the read commands as tables and --json, the kill switch, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from support import free_port, wait_until

from cli import exitcodes
from cli.follow import WORKING_ORDER
from cli.stack import ProcessStack

pytestmark = pytest.mark.e2e


def test_send_follows_the_alert_to_its_fill_and_the_read_commands_show_it(tmp_path: Path, cli_env, cli_stack):
    sent = run_cli("send", "AAPL", "buy", "10", "--tp", "2%", "--sl", "1%", "--price", "190", "--strategy", "cli",
                   "--json", env=cli_env, cwd=tmp_path)  # fmt: skip
    assert sent.returncode == exitcodes.OK, sent.stdout + sent.stderr + cli_stack.logs("worker")
    doc = json.loads(sent.stdout)
    assert doc["outcome"] == "filled"
    alert_id = doc["alert_id"]
    assert doc["alert"]["payload"]["takeProfit"] == {"percent": 2}
    assert doc["alert"]["fills"][0]["quantity"] == 10
    assert {o["leg"] for o in doc["alert"]["orders"]} == {"entry", "tp", "sl"}

    table = run_cli("alerts", env=cli_env, cwd=tmp_path)
    assert (
        table.returncode == 0
        and alert_id in table.stdout
        and "filled" in table.stdout
        and "cli" in table.stdout
    )
    listed = json.loads(
        run_cli("alerts", "--status", "filled", "--limit", "5", "--json", env=cli_env, cwd=tmp_path).stdout
    )
    assert [a["id"] for a in listed] == [alert_id]
    assert (
        json.loads(run_cli("alerts", "--status", "rejected", "--json", env=cli_env, cwd=tmp_path).stdout)
        == []
    )

    one = run_cli("alert", alert_id, env=cli_env, cwd=tmp_path)
    assert one.returncode == 0 and "Fills (1)" in one.stdout and "Audit trail" in one.stdout
    assert (
        json.loads(run_cli("alert", alert_id, "--json", env=cli_env, cwd=tmp_path).stdout)["status"]
        == "filled"
    )
    missing = run_cli("alert", "01NOSUCHALERT", env=cli_env, cwd=tmp_path)
    assert missing.returncode == exitcodes.REFUSED and "404" in missing.stderr

    working = json.loads(run_cli("orders", "--working", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert {o["leg"] for o in working if o["alert_id"] == alert_id} == {"tp", "sl"}
    orders_table = run_cli("orders", env=cli_env, cwd=tmp_path)
    assert orders_table.returncode == 0 and "Orders (3)" in orders_table.stdout

    positions = json.loads(run_cli("positions", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("AAPL", 10)]
    assert "AAPL" in run_cli("positions", env=cli_env, cwd=tmp_path).stdout

    status = json.loads(run_cli("status", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert status["paused"] is False and status["workers"][0]["ib_connected"] is True
    assert status["last_alert"]["id"] == alert_id
    assert "IB connected" in run_cli("status", env=cli_env, cwd=tmp_path).stdout

    # the same --id again: the server answers with the first alert, nothing is traded twice
    again = run_cli(
        "send", "AAPL", "buy", "10", "--id", "cli-once", "--no-wait", "--json", env=cli_env, cwd=tmp_path
    )
    first = json.loads(again.stdout)["alert_id"]
    repeat = json.loads(run_cli("send", "AAPL", "buy", "10", "--id", "cli-once", "--no-wait", "--json",
                                env=cli_env, cwd=tmp_path).stdout)  # fmt: skip
    assert repeat == {"alert_id": first, "status": repeat["status"], "duplicate": True}


def test_a_limit_entry_is_followed_until_it_works_at_ib(tmp_path: Path, cli_env, cli_stack):
    sent = run_cli(
        "send", "AAPL", "buy", "5", "--limit", "150", "--sl", "140", "--json", env=cli_env, cwd=tmp_path
    )
    assert sent.returncode == exitcodes.OK, sent.stdout + sent.stderr
    doc = json.loads(sent.stdout)
    assert doc["outcome"] == "working"
    entry = next(o for o in doc["alert"]["orders"] if o["leg"] == "entry")
    # "working" as the CLI means it (cli.follow.WORKING_ORDER): on a busy machine the CLI may see the
    # order before IB's Submitted arrives (PendingSubmit); IB itself then has it resting at 150
    assert entry["limit_price"] == 150 and entry["status"] in WORKING_ORDER, entry
    ref = f"tv2ib:{doc['alert_id']}:entry"

    def resting_at_ib() -> bool:
        orders = [o for o in cli_stack.sim_state()["orders"] if o["orderRef"] == ref]
        resting = [o["lmtPrice"] for o in orders if o["status"] in {"Submitted", "PreSubmitted"}]
        return len(orders) == 1 and resting == [150]

    wait_until(resting_at_ib, 10, lambda: f"the entry does not rest at IB: {cli_stack.sim_state()['orders']}")


def test_refusals_and_failures_have_their_own_exit_codes(tmp_path: Path, cli_env, cli_stack):
    refused = run_cli("send", "AAPL", "buy", "10", "--tp", "0%", env=cli_env, cwd=tmp_path)
    assert refused.returncode == exitcodes.REFUSED
    assert "422" in refused.stderr and "takeProfit" in refused.stderr  # the field error is printed
    as_json = json.loads(run_cli("send", "AAPL", "buy", "0", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert as_json["exit_code"] == exitcodes.REFUSED and "quantity" in as_json["fields"]

    wrong = run_cli(
        "send", "AAPL", "buy", "1", env={**cli_env, "WEBHOOK_SECRET": "not-the-right-secret-xx"}, cwd=tmp_path
    )
    assert wrong.returncode == exitcodes.REFUSED and "401" in wrong.stderr
    assert "not-the-right-secret-xx" not in wrong.stdout + wrong.stderr
    bad_token = run_cli("alerts", env={**cli_env, "ADMIN_TOKEN": "not-the-right-token-xx"}, cwd=tmp_path)
    assert bad_token.returncode == exitcodes.REFUSED and "401" in bad_token.stderr

    nobody = run_cli("--url", f"http://127.0.0.1:{free_port()}", "status", env=cli_env, cwd=tmp_path)
    assert nobody.returncode == exitcodes.UNREACHABLE and "cannot reach" in nobody.stderr
    no_secret = run_cli("send", "AAPL", "buy", "1", env={"TV2IB_URL": cli_env["TV2IB_URL"]}, cwd=tmp_path)
    assert no_secret.returncode == exitcodes.CONFIG and "WEBHOOK_SECRET" in no_secret.stderr
    assert (
        run_cli("send", "AAPL", "buy", "1", "--tp", "lots", env=cli_env, cwd=tmp_path).returncode
        == exitcodes.USAGE
    )
    # nothing of the above reached the worker
    listed = json.loads(run_cli("alerts", "--json", env=cli_env, cwd=tmp_path).stdout)
    assert all(a["status"] != "filled" for a in listed)


def test_settings_come_from_the_env_file_like_the_servers(tmp_path: Path, cli_env, cli_stack):
    (tmp_path / ".env").write_text(
        f"WEBHOOK_SECRET={cli_env['WEBHOOK_SECRET']}\nADMIN_TOKEN={cli_env['ADMIN_TOKEN']}\n"
    )
    listed = run_cli("alerts", "--json", env={"TV2IB_URL": cli_env["TV2IB_URL"]}, cwd=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_pause_refuses_the_next_entry_resume_and_flatten(tmp_path: Path, cli_env, cli_stack: ProcessStack):
    paused = run_cli("pause", env=cli_env, cwd=tmp_path)
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert json.loads(run_cli("status", "--json", env=cli_env, cwd=tmp_path).stdout)["paused"] is True
    rejected = run_cli("send", "AAPL", "buy", "3", env=cli_env, cwd=tmp_path)
    assert rejected.returncode == exitcodes.REJECTED, rejected.stdout + rejected.stderr
    assert "rejected" in rejected.stderr and "pause" in rejected.stderr.lower()

    assert json.loads(run_cli("resume", "--json", env=cli_env, cwd=tmp_path).stdout)["paused"] is False
    again = run_cli("send", "AAPL", "buy", "3", env=cli_env, cwd=tmp_path)  # the same body within the window
    assert again.returncode == exitcodes.REJECTED and "duplicate" in again.stdout
    filled = run_cli("send", "AAPL", "buy", "3", "--id", "after-resume", env=cli_env, cwd=tmp_path)
    assert filled.returncode == exitcodes.OK, filled.stdout + filled.stderr

    declined = run_cli("flatten", env=cli_env, cwd=tmp_path, input="n\n")
    assert declined.returncode == exitcodes.FAILED and "not flattened" in declined.stderr
    flat = run_cli("flatten", "--yes", "--json", env=cli_env, cwd=tmp_path)
    assert flat.returncode == 0 and json.loads(flat.stdout)["flatten"] == "requested"
    wait_until(lambda: json.loads(run_cli("positions", "--json", env=cli_env, cwd=tmp_path).stdout) == [], 20,
               f"the position was not closed\n{cli_stack.logs('worker')}")  # fmt: skip
