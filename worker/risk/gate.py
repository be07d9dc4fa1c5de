"""The risk gate: the trader's limits (the risk file) checked against the opening part of every
decision before IB sees it, the daily-loss halt, and the rules reloaded on SIGHUP.

Where it sits (worker/execution/executor.py ``Executor._decide``): look → size → decide → plan the legs →
**risk gate** → margin what-if → **dry run stops here** → store the decision → act.

* Only the OPENING part is checked (an entry, an add, a reversal's second half). A decision with
  only a closing part (an exit, a reduce, a close) is never refused by a limit, nor is a flatten.
  A refused opening part of a reversal still lets its close go out: the executor stores a
  close-only decision and ends the alert ``rejected`` once the close filled ("...; the close went
  through: the position is flat, not reversed"), as when IB refuses a reversal's open.
* The numbers come from IB's views that ib_async keeps current (portfolio, working orders, account
  values: no round trip), one quote request when a rule needs a price the alert and the look did
  not give, and the database (today's fills, the last minute's orders, the halt row). They are
  stored in the plan: ``plan["risk"] = {"rules": ..., "checks": [{rule, limit, value, passed,
  source}], ...}`` so ``GET /api/alerts/<id>`` shows what was compared.
* ``dry_run``: the alert is planned and recorded and nothing is sent, closing part included (a
  strategy in dry run has no live position of its own to close); it ends ``cancelled`` with
  "dry run: would send BUY 52 AAPL MKT + TP 195.00 + SL 188.00".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core import events
from core.risk_file import RiskFile, RiskFileError, RiskRules, load_risk_file
from worker.errors import Refused
from worker.ib.translate import num
from worker.risk import state
from worker.risk.calendar import session_at
from worker.risk.checks import (
    Check,
    DailyPnl,
    OpeningOrder,
    RiskContext,
    evaluate,
    first_failure,
    money,
    signed,
)
from worker.risk.checks import price as fmt_price
from worker.risk.checks import qty as fmt_qty

log = logging.getLogger(__name__)

DAILY_LOSS_CHECK_SECONDS = 5.0  # the watcher's period: the alarm and the flatten need no alert


class RiskRefused(Refused):
    """An opening order broke a limit; ``plan`` is the plan to store with the rejection."""

    def __init__(self, message: str, plan: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.plan = plan


@dataclass
class Verdict:
    """The gate's answer for one decision."""

    rules: RiskRules
    checks: list[Check] = field(default_factory=list)
    refusal: str | None = None  # the first failed check's sentence
    notes: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.rules.dry_run

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"rules": self.rules.to_json(), "checks": [c.to_json() for c in self.checks]}
        if self.refusal:
            doc["refused"] = self.refusal
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc


@dataclass(frozen=True)
class _IBView:
    """What the gate reads from ib_async on the IB loop (one hop)."""

    other_exposure: Decimal | None
    working: int
    working_tv2ib: int
    quote: Decimal | None
    quote_source: str
    unrealized: Decimal | None
    currency: str


def describe_legs(legs: list[Any], label: str) -> str:
    """``BUY 52 AAPL MKT + TP 195.00 + SL 188.00`` (for dry runs)."""
    parts = []
    for leg in legs:
        if leg.leg in ("tp", "sl"):
            at = leg.limit_price if leg.leg == "tp" else (leg.stop_price or leg.limit_price)
            parts.append(f"{leg.leg.upper()} {fmt_price(at)}" if at is not None else leg.leg.upper())
            continue
        text = f"{leg.action} {fmt_qty(leg.quantity)} {label} {leg.order_type}"
        if leg.limit_price is not None:
            text += f" {fmt_price(leg.limit_price)}"
        if leg.stop_price is not None:
            text += f" stop {fmt_price(leg.stop_price)}"
        if leg.leg in ("close", "exit"):
            text += f" ({leg.leg})"
        parts.append(text)
    return " + ".join(parts)


class RiskGate:
    """One per worker: the loaded risk file (swapped whole on reload) and the checks."""

    def __init__(
        self,
        risk_file: RiskFile,
        sessions: Any,
        conn: Any,
        trading: Any,
        *,
        recorder: Any = None,
        clock: Callable[[], datetime] = state.utc_now,
        ib_call_timeout: float = 30.0,
    ) -> None:
        self.risk_file = risk_file
        self.sessions = sessions
        self.conn = conn
        self.trading = trading
        self.recorder = recorder
        self.clock = clock
        self.ib_call_timeout = ib_call_timeout
        self._halting = threading.Lock()  # guards the halt row's read-then-write
        self.flatten: Callable[[str], str] | None = None  # set by worker/runtime.py

    # ------------------------------------------------------------------ rules and reload

    def rules_for(self, strategy: str | None, account: str | None) -> RiskRules:
        return self.risk_file.rules_for(strategy, account)

    def reload(self) -> tuple[bool, str]:
        """Re-read the risk file from its path. A bad file keeps the rules in force; returns
        (loaded, what to log)."""
        path = self.risk_file.path
        if path is None:
            return (
                False,
                "no risk file in use (RISK_FILE unset and no config/risk.yaml at start): nothing to reload",
            )
        try:
            new = load_risk_file(path)
        except RiskFileError as exc:
            return False, f"risk file NOT reloaded, the rules in force are kept: {exc}"
        changes = diff(self.risk_file, new)
        self.risk_file = new
        return True, f"risk file {path} reloaded: " + ("; ".join(changes) if changes else "no change")

    def warn_unknown_strategy(self, alert_id: str, strategy: str | None, account: str | None) -> str | None:
        """An alert naming a strategy the file does not know (case aside) is checked against the
        defaults and its account's section only: say so in the log, on the alert and in a notice
        (``unknown_strategy``, once per alert). Never blocks: the recorder writes it."""
        rules = self.rules_for(strategy, account)
        if rules.unknown_strategy is None:
            return None
        warning = rules.notes[0]
        log.warning("alert %s: %s", alert_id, warning)
        risk = self.risk_file
        event = events.unknown_strategy(alert_id, strategy=rules.unknown_strategy, account=account,
                                        risk_file=risk.path or "", known=sorted(risk.strategies, key=str.casefold))  # fmt: skip
        recorder = self.recorder
        if recorder is not None:

            def write(uow: Any) -> None:
                recorder.note(uow, alert_id, f"risk file: {warning}")
                uow.emit(event)

            recorder.run(write)
        return warning

    # ------------------------------------------------------------------ the gate

    def check(self, payload: Any, look: Any, decision: Any, open_legs: list[Any],
              reference_price: Decimal | None) -> Verdict:  # fmt: skip
        """The verdict for a decision: its opening part checked against every rule set (no opening
        part: nothing is checked, only the rules in force and ``dry_run`` are reported)."""
        account = look.account or payload.account or ""
        rules = self.rules_for(payload.strategy, account or None)
        verdict = Verdict(rules, notes=list(rules.notes))  # an unknown strategy is said in the plan
        if decision.open_qty <= 0 or not open_legs:
            if decision.close_qty > 0:
                verdict.notes.append("closing only: no limit applies to a close, an exit or a flatten")
            return verdict
        entry = open_legs[0]
        inst, contract = look.inst, look.contract
        price, price_source = _order_price(entry, reference_price, look.market, look.source)
        # only what the rules in force need: no limits, no extra hop to the IB loop or the database
        needs_quote = rules.max_price_deviation_percent is not None and payload.price is not None
        needs_price = price is None and any(
            v is not None
            for v in (rules.max_order_notional, rules.max_position_notional, rules.max_gross_exposure)
        )
        view = _IBView(None, 0, 0, look.market, look.source if look.market is not None else "", None, "")
        if (
            needs_quote
            or needs_price
            or any(
                v is not None
                for v in (rules.max_gross_exposure, rules.max_open_orders, rules.daily_loss_limit)
            )
        ):
            view = self.conn.call(self._ib_view(contract, inst.con_id, look.market, look.source,
                                                needs_quote or needs_price), timeout=self.ib_call_timeout)  # fmt: skip
        if price is None and view.quote is not None:
            price, price_source = view.quote, view.quote_source
        now = self.clock()
        db: dict[str, Any] = {"realized": Decimal(0), "orders_last_minute": 0, "halt": None}
        if rules.daily_loss_limit is not None or rules.max_orders_per_minute is not None:
            with self.sessions() as session:
                db = state.snapshot(session, account, now)
        order = OpeningOrder(
            ticker=payload.ticker, symbol=inst.symbol, local_symbol=inst.local_symbol, side=entry.action,
            quantity=decision.open_qty, price=price, price_source=price_source,
            multiplier=_multiplier(inst.multiplier), currency=inst.currency, legs=len(open_legs),
            position_before=decision.position, position_after=decision.target,
        )  # fmt: skip
        daily = None
        if rules.daily_loss_limit is not None:
            daily = self._daily(account, rules, db["realized"], view.unrealized, db["halt"], now)
        session_now = None
        if rules.trading_hours != "always":
            session_now = session_at(inst.sec_type, inst.exchange, now,
                                     primary_exchange=getattr(contract, "primaryExchange", "") or "",
                                     currency=inst.currency)  # fmt: skip
        ctx = RiskContext(
            order=order, account=account, base_currency=view.currency or "USD",
            other_exposure=view.other_exposure, working_orders=view.working, working_tv2ib=view.working_tv2ib,
            orders_last_minute=db["orders_last_minute"], daily=daily, session=session_now,
            alert_price=payload.price, quote=view.quote, quote_source=view.quote_source,
        )  # fmt: skip
        verdict.checks = evaluate(rules, ctx)
        failed = first_failure(verdict.checks)
        verdict.refusal = failed.message if failed is not None else None
        return verdict

    async def _ib_view(self, contract: Any, con_id: int, market: Decimal | None, source: str,
                       want_quote: bool) -> _IBView:  # fmt: skip
        """On the IB loop: the portfolio, the working orders, the account's figures, a quote."""
        account = self.trading.account or ""
        exposure: Decimal | None = Decimal(0)
        items = self.trading.portfolio()
        if not items and any(p.position for p in self.trading.ib.positions(account)):
            exposure = None  # positions without portfolio rows: IB has not sent the values yet
        for item in items:
            if item.contract.conId == con_id or not item.position:
                continue
            value = num(item.marketValue)
            if value is None:
                exposure = None
                break
            assert exposure is not None
            exposure += abs(value)
        working = tv2ib = 0
        for trade in self.trading.open_trades():
            if account and trade.order.account and trade.order.account != account:
                continue
            if trade.orderStatus.status in ("PendingSubmit", "PreSubmitted", "Submitted", "ApiPending"):
                working += 1
                if (trade.order.orderRef or "").startswith("tv2ib"):
                    tv2ib += 1
        quote, quote_source = (market, source) if market is not None else (None, "")
        if want_quote and quote is None:
            quote, quote_source = await self.trading.market_price(contract)
            if quote is None:
                quote_source = ""
        figures = self.trading.account_figures()
        return _IBView(
            exposure, working, tv2ib, quote, quote_source, figures.unrealized_pnl, figures.currency
        )

    # ------------------------------------------------------------------ the daily loss

    def _daily(self, account: str, rules: RiskRules, realized: Decimal, unrealized: Decimal | None,
               halt: state.Halt | None, now: datetime) -> DailyPnl:  # fmt: skip
        day = state.trading_day(now)
        daily = DailyPnl(realized, unrealized, halt is not None, state.describe_end(day))
        limit = rules.daily_loss_limit
        # a strategy's own limit refuses that strategy's entries; the account-wide halt, the alarm
        # and the flatten belong to the account's limit (defaults < account)
        account_level = not rules.source_of("daily_loss_limit").startswith("strategy ")
        if limit is not None and account_level and halt is None and -daily.total >= limit:
            self._halt(account, rules, daily, now)
        return daily

    def watch_once(self) -> str | None:
        """The periodic check (no alert needed): today's loss against the account's own limit
        (defaults < account; a strategy's limit only refuses that strategy's entries). Returns
        what it did, for the log and the tests."""
        if not self.conn.ready:
            return None
        account = self.trading.account or ""
        rules = self.rules_for(None, account or None)
        if rules.daily_loss_limit is None:
            return None
        now = self.clock()
        with self.sessions() as session:
            halt = state.read_halt(session, account, now)
            realized = state.realized_today(session, account, now)
        if halt is not None:
            return None

        async def figures() -> Any:
            return self.trading.account_figures()

        unrealized = self.conn.call(figures(), timeout=self.ib_call_timeout).unrealized_pnl
        daily = DailyPnl(realized, unrealized, False, state.describe_end(state.trading_day(now)))
        if -daily.total < rules.daily_loss_limit:
            return None
        return self._halt(account, rules, daily, now)

    def _halt(self, account: str, rules: RiskRules, daily: DailyPnl, now: datetime) -> str:
        """Halt entries for the rest of the trading day (persisted), alarm, flatten if asked."""
        limit = rules.daily_loss_limit
        assert limit is not None
        day = state.trading_day(now)
        reason = (f"today's PnL {signed(daily.total)} (realized {signed(daily.realized)} + unrealized "
                  f"{'?' if daily.unrealized is None else signed(daily.unrealized)}) reached the daily "
                  f"loss limit {money(limit)} ({rules.source_of('daily_loss_limit')})")  # fmt: skip
        halt = state.Halt(day, reason, now.astimezone(UTC).isoformat())
        # the job and the watcher may both find the loss: one halt, one alarm, one flatten
        with self._halting, self.sessions.begin() as session:
            fresh = state.write_halt(session, account, halt)
        # the lock is not held while flattening: the flatten waits for the job in hand, which may be
        # waiting here
        if not fresh:
            return "already halted"
        flatten = rules.flatten_on_daily_loss
        action = "entries halted; positions left open (flatten_on_daily_loss is off)"
        if flatten and self.flatten is not None:
            try:
                action = f"entries halted; flatten_on_daily_loss: {self.flatten('risk: daily loss limit')}"
            except Exception as exc:  # noqa: BLE001 - the alarm must go out even if the flatten fails
                log.exception("flatten on daily loss failed")
                action = f"entries halted; flatten_on_daily_loss FAILED: {exc}: close the positions by hand"
        log.error("DAILY LOSS LIMIT account %s: %s; %s until %s", account or "(default)", reason, action,
                  state.describe_end(day))  # fmt: skip
        event = events.daily_loss(
            account=account, day=day.isoformat(), pnl=str(daily.total), realized=str(daily.realized),
            unrealized=None if daily.unrealized is None else str(daily.unrealized), limit=str(limit),
            source=rules.source_of("daily_loss_limit"), action=action, until=state.describe_end(day),
        )  # fmt: skip
        self._emit(event)
        return action

    def _emit(self, event: Any) -> None:
        recorder = self.recorder
        if recorder is None:
            return

        def write(uow: Any) -> None:
            uow.emit(event)

        recorder.run(write).result(30)

    def warm(self) -> None:
        """Build the exchange calendars now when some rule uses ``trading_hours`` (importing pandas
        and building a calendar takes about a second: not on the first alert's path)."""
        sections = [
            self.risk_file.defaults,
            *self.risk_file.strategies.values(),
            *self.risk_file.accounts.values(),
        ]
        if any(section.get("trading_hours", "always") != "always" for section in sections):
            session_at("STK", "SMART", self.clock(), primary_exchange="NYSE", currency="USD")
            session_at("FUT", "CME", self.clock())


def _order_price(entry: Any, reference: Decimal | None, market: Decimal | None, source: str) -> tuple[Decimal | None, str]:  # fmt: skip
    """The price an opening order's notional is valued at: its limit, its stop, else the
    reference price the planner used (IB's quote or the alert's price)."""
    if entry.limit_price is not None:
        return entry.limit_price, "limit price"
    if entry.stop_price is not None:
        return entry.stop_price, "stop price"
    if reference is not None:
        return reference, "reference price"
    if market is not None:
        return market, source
    return None, ""


def _multiplier(raw: str | None) -> Decimal:
    try:
        value = Decimal(str(raw)) if raw not in (None, "") else Decimal(1)
    except ArithmeticError:
        return Decimal(1)
    return value if value > 0 else Decimal(1)


def diff(old: RiskFile, new: RiskFile) -> list[str]:
    """What changed between two risk files, per section and key (for the reload log line)."""
    changes: list[str] = []

    def section(name: str, a: Any, b: Any) -> None:
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                changes.append(f"{name}.{key}: {_show(a.get(key))} -> {_show(b.get(key))}")

    section("defaults", old.defaults, new.defaults)
    for kind, a_all, b_all in (
        ("strategies", old.strategies, new.strategies),
        ("accounts", old.accounts, new.accounts),
    ):
        for name in sorted(set(a_all) | set(b_all)):
            section(f"{kind}.{name}", a_all.get(name, {}), b_all.get(name, {}))
    for name in sorted(set(old.fanout) | set(new.fanout)):
        if old.fanout.get(name) != new.fanout.get(name):
            changes.append(
                f"strategies.{name}.accounts: {_show(old.fanout.get(name))} -> {_show(new.fanout.get(name))}"
            )
    return changes


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if hasattr(value, "to_json"):
        return str(value.to_json())
    return str(value)


def describe_rules(risk_file: RiskFile) -> str:
    """The rules in force, one line (logged at start)."""
    if risk_file.path is None:
        return "no risk file (RISK_FILE unset, no config/risk.yaml): no limits"
    parts = [f"defaults {_section(risk_file.defaults)}"]
    parts += [f"strategy {n} {_section(v)}" for n, v in sorted(risk_file.strategies.items())]
    parts += [f"account {n} {_section(v)}" for n, v in sorted(risk_file.accounts.items())]
    return f"risk file {risk_file.path}: " + "; ".join(parts)


def _section(values: Any) -> str:
    return "{" + ", ".join(f"{k}={_show(v)}" for k, v in values.items()) + "}" if values else "{}"
