"""The watcher of option expiries: on an option's expiry day, an alarm names the open option
positions that expire (the rule: worker/decision/option_expiry.py).

Run by the housekeeping thread (worker/housekeeping.py) every few seconds: it reads the account's
option positions on the IB loop (IB's report plus our executions since: no round trip), decides
with the exchange's time (New York, from the trading room's clock, which tests set), and writes
the alarm notice. The underlyings' prices come from kept market-data streams only: none is asked
of IB for an alarm, and an underlying without one is named without its moneyness.
"""

from __future__ import annotations

import logging
from datetime import time
from decimal import Decimal

from core import events
from worker.decision.option_expiry import TITLE, Alarmed, OptionPosition, expiry_alarm
from worker.decision.options import NEW_YORK
from worker.ib.trading import Trading
from worker.notify import Notifier

log = logging.getLogger(__name__)


class OptionExpiryWatch:
    """Remembers what it named today; :meth:`check` is one look (called on the housekeeping thread)."""

    def __init__(self, trading: Trading, notifier: Notifier, alarm_time: str, ib_call_timeout: float = 10.0) -> None:  # fmt: skip
        self.trading = trading
        self.notifier = notifier
        hours, minutes = alarm_time.split(":")
        self.alarm_time = time(int(hours), int(minutes))  # OPTION_EXPIRY_ALARM_TIME
        self.ib_call_timeout = ib_call_timeout
        self.alarmed = Alarmed()

    def check(self) -> str | None:
        """Raise the alarm when one is due; returns its text (for the log and the tests)."""
        trading = self.trading
        if not trading.ready:
            return None
        now = trading.clock().astimezone(NEW_YORK)
        if now.time() < self.alarm_time:
            return None  # before the alarm time nothing is read

        async def held() -> list[OptionPosition]:
            return trading.options.positions_held()

        alarm = expiry_alarm(trading.conn.call(held(), timeout=self.ib_call_timeout), now, self.alarm_time,
                             self.alarmed)  # fmt: skip
        if alarm is None:
            return None

        symbols = alarm.symbols

        async def prices() -> dict[str, Decimal]:
            found = {symbol: trading.price_at_hand(symbol) for symbol in symbols}
            return {symbol: price for symbol, price in found.items() if price is not None}

        detail = alarm.detail(trading.conn.call(prices(), timeout=self.ib_call_timeout))
        account = trading.account or ""
        added = self.notifier.enqueue_event(events.alarm(TITLE, detail, dedup_key=alarm.dedup_key(account)))
        self.alarmed = alarm.after  # only once the notice is written: a failure is tried again
        # no notice added: the same contracts were named today before a restart (the notice's
        # dedup key), or NOTIFY turns alarms off
        log.warning("%s: %s%s", TITLE, detail, "" if added else " (no new notice)")
        return detail

    def __repr__(self) -> str:  # the housekeeping log names its checks
        return f"option expiry alarm ({self.alarm_time:%H:%M} New York)"
