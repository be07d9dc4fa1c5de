"""``tv2ib replay``: a dry run of a strategy's alerts against a private stack (ibsim, no real broker).

The file holds one alert message per line, as TradingView's alert log shows them: a JSON object,
optionally preceded by other columns such as the time (``2026-11-20T14:30:00Z,{"ticker": ...}``,
CSV-quoted messages with doubled quotes work too). Blank lines and lines starting with ``#`` or
``//`` are skipped; anything else that holds no JSON object is reported as a bad line.

The private stack is started here and stopped at the end: a throwaway ``redis-server``, ``python -m
ibsim``, gunicorn and ``python -m worker`` on free loopback ports, SQLite in a temp dir, a random
secret, no Telegram, no ``.env`` of the user, and none of the shell's environment but ``PATH``,
``HOME``, the locale and ``TMPDIR`` (:func:`cli.stack.clean_environment`: a live server's
``PROMETHEUS_MULTIPROC_DIR`` or ``RISK_FILE`` in the shell stays the live server's). So a replay never
touches the live server's queues, database, metric files or broker account. Each alert is posted as TradingView would post it, after the simulator's
price for its ticker is set to the alert's ``price`` (``{{close}}``) when it has one, so market
orders fill where the strategy saw the market. The alert's own ``secret`` and ``account`` are
dropped (one simulated account); ``time`` is kept, and the staleness check is switched off, since
old alerts are the point of a replay.
"""

from __future__ import annotations

import codecs
import json
import secrets
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from cli import exitcodes
from cli.client import ApiClient, CliError
from cli.follow import follow_alert
from cli.stack import ProcessStack, free_port, private_redis

if TYPE_CHECKING:
    from core.services import FillDoc, OrderDoc, PositionDoc

# A replay file is an alert log (a year of a busy strategy is a few MiB); reading stops beyond this
# (a device such as /dev/zero, or a wrong file, ends in a message rather than a MemoryError).
MAX_FILE_BYTES = 16 * 2**20
# Ten years: alerts from a log are old by nature; the live server's staleness rule does not apply.
REPLAY_STALE_SECONDS = str(10 * 365 * 24 * 3600)


@dataclass(frozen=True)
class ReplayLine:
    """One alert of the file: its line number, the time column (if any) and the message."""

    number: int
    time: str | None
    alert: dict[str, Any]


@dataclass
class ReplayFile:
    alerts: list[ReplayLine] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def _json_object(text: str) -> dict[str, Any] | None:
    for candidate in (text, text.replace('""', '"')):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_lines(lines: Iterable[str]) -> ReplayFile:
    """Split a JSON-lines alert log into alerts and bad lines (see the module docstring)."""
    result = ReplayFile()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        start, end = line.find("{"), line.rfind("}")
        if start < 0 or end < start:
            result.bad.append((number, "no JSON object on this line"))
            continue
        alert = _json_object(line[start : end + 1])
        if alert is None:
            result.bad.append((number, "the JSON object on this line does not parse"))
            continue
        prefix = line[:start].strip().strip(",;\t\"'").strip()
        result.alerts.append(ReplayLine(number, prefix or None, alert))
    return result


def read_file(path: Path) -> ReplayFile:
    """The alerts of ``path``. A file that cannot be read, is larger than :data:`MAX_FILE_BYTES`,
    holds NUL bytes (a binary) or is not UTF-8 text is a usage error naming it (and the line)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # bounded: /dev/zero never ends
    except OSError as exc:
        raise CliError(exitcodes.USAGE, f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CliError(exitcodes.USAGE, f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; "
                       "replay an alert log of that size in parts")  # fmt: skip
    if b"\0" in data:
        raise CliError(exitcodes.USAGE, f"{path}: not a text file (it holds NUL bytes); replay reads "
                       "an alert log with one JSON alert per line")  # fmt: skip
    data = data.removeprefix(codecs.BOM_UTF8)  # exports from Windows carry one
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CliError(exitcodes.USAGE, f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                       "save the file as UTF-8") from None  # fmt: skip
    return parse_lines(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


class ReplayRow(TypedDict):
    """What became of one alert of the file: ``outcome`` is accepted, rejected, refused or timeout;
    ``status`` the alert's last status (``refused``: intake did not take it)."""

    line: int
    time: str | None
    ticker: str | None
    action: str | None
    strategy: str | None
    alert_id: str | None
    status: str | None
    outcome: str | None
    reason: str | None


@dataclass
class ReplayResult:
    """What would have been traded: one row per alert, then orders, positions and PnL at the end."""

    rows: list[ReplayRow] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    orders: list[OrderDoc] = field(default_factory=list)
    positions: list[PositionDoc] = field(default_factory=list)
    fills: list[FillDoc] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            outcome = str(row["outcome"])
            out[outcome] = out.get(outcome, 0) + 1
        return out

    def realized_pnl(self) -> float | None:
        values = [pnl for f in self.fills if (pnl := f.get("realized_pnl")) is not None]
        return round(sum(values), 6) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "alerts": self.rows,
            "counts": self.counts(),
            "bad_lines": [{"line": n, "reason": why} for n, why in self.bad_lines],
            "orders": self.orders,
            "fills": self.fills,
            "positions": self.positions,
            "realized_pnl": self.realized_pnl(),
        }


def outcome_of(state: str) -> str:
    """Summary bucket of a followed alert: accepted / rejected / timeout."""
    if state in {"rejected", "invalid", "failed", "cancelled"}:
        return "rejected"
    if state == "timeout":
        return "timeout"
    return "accepted"


def stack_env(workdir: Path, redis_url: str) -> dict[str, str]:
    """Settings of the private stack: nothing from the user's live configuration leaks in."""
    return {
        "WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "ADMIN_TOKEN": secrets.token_urlsafe(24),
        "DATABASE_URL": f"sqlite:///{workdir / 'replay.db'}",
        "REDIS_URL": redis_url,
        "RATE_LIMIT": "1000000/minute",
        "AUTH_FAILURE_LIMIT": "1000000/minute",
        "DEDUP_WINDOW_SECONDS": "0",  # identical signals at different bar times are distinct alerts
        "STALE_ALERT_SECONDS": REPLAY_STALE_SECONDS,
        "LOG_LEVEL": "WARNING",
        "WEB_WORKERS": "1",
        "IB_ACCOUNT": "",
        "TELEGRAM_BOT_TOKEN": "",  # a dry run sends no notices
        "TELEGRAM_CHAT_ID": "",
        "TELEGRAM_CHAT_IDS": "",
        "TRADINGVIEW_IPS_ONLY": "false",
        "DAILY_SUMMARY_TIME": "",
        "WORKER_METRICS_PORT": str(free_port()),  # never collide with a live worker's port
    }


def _set_sim_price(stack: ProcessStack, alert: dict[str, Any]) -> None:
    price, ticker = alert.get("price", alert.get("signalPrice")), alert.get("ticker")
    if price is None or not ticker:
        return
    try:
        stack.sim_post("/price", {"symbol": str(ticker).split(":")[-1].upper(), "price": float(price)})
    except (ValueError, OSError, Exception):  # noqa: BLE001 - an unknown symbol just keeps ibsim's price
        return


def replay_alert(client: ApiClient, stack: ProcessStack, line: ReplayLine, timeout: float) -> ReplayRow:
    """Post one alert and follow it; the summary row."""
    body = {k: v for k, v in line.alert.items() if k not in {"secret", "account"}}
    row: ReplayRow = {
        "line": line.number, "time": line.time, "ticker": body.get("ticker"), "action": body.get("action"),
        "strategy": body.get("strategy"), "alert_id": None, "status": None, "outcome": None, "reason": None,
    }  # fmt: skip
    _set_sim_price(stack, body)
    try:
        answer = client.post_alert(body)
    except CliError as exc:
        if exc.exit_code != exitcodes.REFUSED:
            raise
        fields = "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in exc.fields.items()
        )
        row["outcome"] = row["status"] = "refused"
        row["reason"] = exc.message if not fields or fields in exc.message else f"{exc.message} ({fields})"
        return row
    row["alert_id"] = alert_id = answer["alert_id"]
    outcome = follow_alert(client, alert_id, timeout)
    row["status"], row["outcome"] = outcome.state, outcome_of(outcome.state)
    row["reason"] = outcome.alert.get("reason")
    return row


def _run_on_stack(
    stack: ProcessStack,
    env: dict[str, str],
    lines: list[ReplayLine],
    result: ReplayResult,
    timeout: float,
    on_step: Callable[[ReplayRow], None],
    on_phase: Callable[[str], None],
) -> None:
    on_phase("starting ibsim")
    stack.start_sim()
    on_phase("starting the web server")
    stack.start_web()
    on_phase("starting the worker")
    stack.start_worker()
    with ApiClient(stack.web_url, secret=env["WEBHOOK_SECRET"], token=env["ADMIN_TOKEN"]) as client:
        for line in lines:
            row = replay_alert(client, stack, line, timeout)
            result.rows.append(row)
            on_step(row)
        on_phase("collecting the results")
        for row in result.rows:
            if row["alert_id"]:
                result.fills.extend(client.get(f"/api/alerts/{row['alert_id']}").get("fills") or [])
        result.orders = client.get("/api/orders").get("orders", [])
        result.positions = client.get("/api/positions").get("positions", [])


def run_replay(
    lines: list[ReplayLine],
    *,
    timeout: float = 20.0,
    on_step: Callable[[ReplayRow], None] = lambda row: None,
    on_phase: Callable[[str], None] = lambda what: None,
    keep_dir: Path | None = None,
) -> ReplayResult:
    """Start the private stack, replay ``lines`` in order, collect the summary, stop everything."""
    result = ReplayResult()
    try:
        with tempfile.TemporaryDirectory(prefix="tv2ib-replay-") as tmp:
            workdir = Path(keep_dir or tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            on_phase("starting redis-server")
            with private_redis() as redis_url:
                env = stack_env(workdir, redis_url)
                # a clean environment: the caller's shell may hold a live server's settings
                with ProcessStack(workdir, env, cwd=workdir, inherit=False) as stack:
                    _run_on_stack(stack, env, lines, result, timeout, on_step, on_phase)
    except (RuntimeError, TimeoutError) as exc:
        raise CliError(exitcodes.FAILED, f"the private stack failed: {exc}") from None
    return result
