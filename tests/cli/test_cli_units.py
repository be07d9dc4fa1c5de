"""Pure pieces of the command line: the alert it builds, the SSE parser, the replay file reader,
when following an alert stops."""

from __future__ import annotations

import pytest

from cli import exitcodes
from cli.events import parse_sse
from cli.follow import classify
from cli.payload import PayloadError, build_alert
from cli.replay import parse_lines
from cli.settings import CliConfigError, CliSettings


def test_send_options_build_the_tradingview_payload():
    body = build_alert("AAPL", "BUY", "10", take_profit="2%", stop_loss="185.5", strategy="trend", alert_id="k1",
                       price="190")  # fmt: skip
    assert body == {
        "ticker": "AAPL", "action": "buy", "quantity": 10, "orderType": "market", "price": 190,
        "takeProfit": {"percent": 2}, "stopLoss": {"type": "stop", "stopPrice": 185.5},
        "strategy": "trend", "id": "k1",
    }  # fmt: skip
    assert build_alert("ES1!", "sell", limit="5000", stop="5001.25")["orderType"] == "stop_limit"
    assert build_alert("AAPL", "buy", "1", take_profit="195")["takeProfit"] == {"limitPrice": 195}
    assert (
        build_alert("AAPL", "buy", position_size="-3", quantity_type="fixed_quantity")["positionSize"] == -3
    )
    with pytest.raises(PayloadError, match="--tp"):
        build_alert("AAPL", "buy", "1", take_profit="two%")


def test_sse_messages_are_split_on_blank_lines_and_comments_skipped():
    lines = [": keep-alive", "event: fill", 'data: {"alert_id": "A1", "price": 190}', "", "event: alert_status",
             'data: {"status":', 'data: "filled"}', "", "data: plain", ""]  # fmt: skip
    assert list(parse_sse(lines)) == [
        ("fill", {"alert_id": "A1", "price": 190}),
        ("alert_status", {"status": "filled"}),
        ("message", "plain"),
    ]


def test_replay_reader_takes_json_lines_with_a_time_column_and_reports_bad_lines():
    parsed = parse_lines([
        '{"ticker": "AAPL", "action": "buy", "quantity": 1}',
        "",
        "# a comment",
        '2026-11-20T14:30:00Z,{"ticker": "AAPL", "action": "sell", "quantity": 1}',
        '"2026-11-20 15:00:00","{""ticker"": ""MSFT"", ""action"": ""buy""}"',
        "not an alert",
        '{"ticker": "AAPL", ',
    ])  # fmt: skip
    assert [(a.number, a.time, a.alert["ticker"]) for a in parsed.alerts] == [
        (1, None, "AAPL"), (4, "2026-11-20T14:30:00Z", "AAPL"), (5, "2026-11-20 15:00:00", "MSFT"),
    ]  # fmt: skip
    assert [n for n, _ in parsed.bad] == [6, 7]


def test_following_stops_at_a_fill_a_working_limit_or_a_rejection_not_at_a_market_order_in_flight():
    market = {"status": "submitted", "orders": [{"leg": "entry", "order_type": "MKT", "status": "Submitted"}]}
    limit = {"status": "submitted", "orders": [{"leg": "entry", "order_type": "LMT", "status": "Submitted"},
                                                {"leg": "tp", "order_type": "LMT", "status": "PreSubmitted"}]}  # fmt: skip
    assert classify(market) is None
    assert classify({"status": "queued"}) is None
    assert classify(limit).state == "working" and classify(limit).exit_code == exitcodes.OK
    assert classify({"status": "filled"}).exit_code == exitcodes.OK
    assert classify({"status": "rejected", "reason": "paused"}).exit_code == exitcodes.REJECTED


def test_cli_settings_need_only_what_the_command_uses():
    settings = CliSettings.from_mapping({"ADMIN_TOKEN": "t" * 20})
    assert settings.url == "http://127.0.0.1:8000" and settings.require_token() == "t" * 20
    with pytest.raises(CliConfigError, match="WEBHOOK_SECRET"):
        settings.require_secret()
    assert CliSettings.from_mapping({"TV2IB_URL": "http://h:1/"}, url=None).url == "http://h:1"
    assert CliSettings.from_mapping({"TV2IB_URL": "http://h:1"}, url="http://other:2").url == "http://other:2"
    assert "t" * 20 not in repr(settings)


def test_the_command_line_never_imports_the_worker():
    import subprocess
    import sys

    probe = (
        "import sys, cli.main, cli.replay, cli.stack, cli.follow, cli.events; "
        "print(sorted(m for m in sys.modules if m == 'worker' or m.startswith('worker.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_and_option_has_a_help_text():
    import click

    from cli.main import cli

    def walk(command: click.Command, path: str) -> None:
        assert command.help or command.short_help, f"{path} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts} has no help"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cli, "tv2ib")


def test_flatten_takes_the_account_ids_alerts_take_and_never_default(tmp_path):
    from cli_helpers import run_cli

    refused = run_cli("flatten", "--account", "default", "--yes", env={"ADMIN_TOKEN": "t" * 20}, cwd=tmp_path)
    assert refused.returncode == exitcodes.USAGE
    assert "'default' is not an account id" in refused.stderr and "Traceback" not in refused.stderr
    # DU_1 passes the check: the command goes on to the server (none listens here)
    taken = run_cli("--url", "http://127.0.0.1:9", "flatten", "--account", "DU_1", "--yes",
                    env={"ADMIN_TOKEN": "t" * 20}, cwd=tmp_path)  # fmt: skip
    assert taken.returncode == exitcodes.UNREACHABLE, taken.stderr


def test_status_lists_the_protections_locks():
    from rich.console import Console

    from cli.render import status_panel

    lock = {"account": "DU1", "strategy": "trend", "rule": "stop_out_cooldown_minutes", "symbol": "AAPL",
            "since": "2026-11-30T19:02:00+00:00", "until": "2026-11-30T19:32:00+00:00",
            "why": "AAPL stopped out at 14:02"}  # fmt: skip
    doc = {"paused": False, "redis": True, "workers": [], "queues": {}, "last_alert": None,
           "locks": [lock, {**lock, "symbol": "", "strategy": "", "rule": "drawdown_pause"}]}  # fmt: skip
    console = Console(record=True, width=200)
    console.print(status_panel(doc))
    text = console.export_text()
    assert (
        "locked   trend AAPL until 2026-11-30T19:32:00+00:00 (stop_out_cooldown_minutes: AAPL stopped out at 14:02)"
        in text
    )
    assert "(no strategy) every ticker until" in text
