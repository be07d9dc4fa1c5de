"""Mistakes on the command line end in one readable line and a documented exit code, never a
traceback: a malformed URL, files replay cannot read, an ``.env`` that is not UTF-8, a filter value
that does not exist. ``tv2ib`` runs as a subprocess; no server is needed (each is refused first)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli

from cli import exitcodes

TOKENS = {"WEBHOOK_SECRET": "cli-error-secret-0123456789", "ADMIN_TOKEN": "cli-error-token-0123456789"}


def _files(tmp: Path) -> None:
    (tmp / "latin1.jsonl").write_bytes(b'# r\xe9glage\n{"ticker": "AAPL", "action": "buy", "quantity": 1}\n')
    (tmp / "late.jsonl").write_bytes(b'{"ticker": "AAPL", "action": "buy"}\n\n{"ticker": "\xff"}\n')
    (tmp / "bad.env").write_bytes(b"ADMIN_TOKEN=abc\nTV2IB_URL=http://127.0.0.1:1\xff\n")
    (tmp / "big.jsonl").write_bytes(b"{}" * (8 * 2**20 + 1))  # 16 MiB + 2 bytes


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--url", "http://[::1", "status"],
            exitcodes.CONFIG,
            "the server URL 'http://[::1' is not a valid URL",
        ),
        (["--url", "http://:8000", "status"], exitcodes.CONFIG, "names no host"),
        (["replay", "/bin/ls"], exitcodes.USAGE, "/bin/ls: not a text file (it holds NUL bytes)"),
        (["replay", "latin1.jsonl"], exitcodes.USAGE, "latin1.jsonl:1: not UTF-8 text (byte 0xe9)"),
        (["replay", "late.jsonl"], exitcodes.USAGE, "late.jsonl:3: not UTF-8 text (byte 0xff)"),
        (["replay", "/dev/zero"], exitcodes.USAGE, "/dev/zero: larger than 16 MiB"),
        (["replay", "big.jsonl"], exitcodes.USAGE, "big.jsonl: larger than 16 MiB"),
        (["--env-file", "bad.env", "status"], exitcodes.CONFIG, "bad.env:2: not UTF-8 text (byte 0xff)"),
        (["alerts", "--status", "bogus"], exitcodes.USAGE, "'bogus' is not one of 'received', 'queued'"),
        (["tail", "--kind", "nosuchkind"], exitcodes.USAGE, "'nosuchkind' is not one of 'alert_rejected'"),
    ],
)
def test_a_mistake_is_one_line_and_an_exit_code(tmp_path: Path, args, code, message):
    _files(tmp_path)
    done = run_cli(*args, env=TOKENS, cwd=tmp_path, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_the_usage_errors_name_every_valid_value(tmp_path: Path):
    statuses = run_cli("alerts", "--status", "bogus", env=TOKENS, cwd=tmp_path)
    for status in ("filled", "rejected", "fanned_out", "partially_filled"):
        assert f"'{status}'" in statuses.stderr
    kinds = run_cli("tail", "--kind", "fill", "--kind", "nosuchkind", env=TOKENS, cwd=tmp_path)
    assert kinds.returncode == exitcodes.USAGE
    for kind in ("fill", "order_status", "alert_status", "paused", "unprotected"):
        assert f"'{kind}'" in kinds.stderr
    assert "'ib_lost'" not in kinds.stderr  # the notifier's alarms never reach the event stream
    # a valid state is still taken in any case (the server then says it cannot be reached)
    upper = run_cli("--url", "http://127.0.0.1:1", "alerts", "--status", "FILLED", env=TOKENS, cwd=tmp_path)
    assert upper.returncode == exitcodes.UNREACHABLE, upper.stderr
