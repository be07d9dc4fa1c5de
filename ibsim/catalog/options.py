"""US equity options on the built-in stocks and ETFs: their expiries (weeklies and monthlies), their
strike grids around the underlying's current price, OCC local symbols and conIds.

Option contracts are many (a few thousand per underlying), so they are not stored: a contract is
made when a request names it (reqContractDetails, an order, a conId) and kept once made. A conId
encodes the underlying, the right, the expiry and the strike, so it survives restarts and
``--state`` without a table, and an option whose expiry has passed is still known by its conId
(a position in it can be shown) while no chain lists it any more.

Simulator policies (documented in ibsim/README.md):

* expiries: every Friday of the next :data:`WEEKLY_COUNT` weeks (today's included until its close)
  and the third Friday of the next :data:`MONTHLY_COUNT` months; no holiday shifts, no daily (0DTE)
  expiries; an option expires at :data:`EXPIRY_CLOSE_HOUR` New York on its expiry day (SPY and QQQ
  too, though their last trade time says 16:15);
* strikes: multiples of the root's near step within :data:`NEAR_BAND` of the underlying's current
  price, multiples of its far step out to :data:`FAR_BAND`; the same grid for every expiry;
* price increments (market rules): SPY and QQQ 0.01 at every price, the other roots (all in the
  Penny Interval Program) 0.01 under 3.00 and 0.05 from 3.00.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from ibsim.catalog.instruments import ContractQuery, Instrument, matches, normal_right

NEW_YORK = ZoneInfo("America/New_York")
#: the session's end on the expiry day (New York): the option model's expiry, the options' expiry
EXPIRY_CLOSE_HOUR = 16
#: how many Fridays and how many monthly (third-Friday) expiries a chain lists
WEEKLY_COUNT = 8
MONTHLY_COUNT = 12
#: the strike grid: the near step within ±20 % of the underlying's price, the far step to ±50 %
NEAR_BAND = 0.20
FAR_BAND = 0.50
#: option conIds: BASE + (((root × 2 + right) × DAYS + day) × STRIKE_UNITS + strike × 2), below 2**31
OPTION_CON_ID_BASE = 1_000_000_000
_EPOCH = dt.date(2024, 1, 1)  # day 0 of the conIds' expiry days
_DAYS = 8192  # expiries up to 2046
_STRIKE_UNITS = 4096  # strikes in half dollars up to 2047.50
#: ibsim's market rules for options (ids of its own: IB's are not public)
PENNY_ALL_RULE = 110  # 0.01 at every price (SPY, QQQ)
PENNY_RULE = 111  # 0.01 under 3.00, 0.05 from 3.00 (the Penny Interval Program)
OPTION_EXCHANGES = "SMART,CBOE,AMEX,ISE,PHLX,BOX,NASDAQOM,BATS,MIAX,EDGX,PEARL,EMERALD,MEMX"
#: the exchanges reqSecDefOptParams answers for (one message each)
SECDEF_EXCHANGES = ("SMART", "CBOE")
OPTION_ORDER_TYPES = "ALERT,ALLOC,DAY,GTC,IOC,FOK,LMT,MKT,STP,STPLMT,TRAIL,WHATIF"


@dataclass(frozen=True)
class OptionRoot:
    """An underlying with listed options: its place in the conIds, its strike steps, its ticks."""

    index: int  # 0..15
    symbol: str
    near_step: float
    far_step: float
    all_penny: bool = False
    last_trade_time: str = "16:00"


OPTION_ROOTS: tuple[OptionRoot, ...] = (
    OptionRoot(0, "SPY", 1.0, 5.0, all_penny=True, last_trade_time="16:15"),
    OptionRoot(1, "QQQ", 1.0, 5.0, all_penny=True, last_trade_time="16:15"),
    OptionRoot(2, "AAPL", 2.5, 5.0),
    OptionRoot(3, "TSLA", 2.5, 5.0),
    OptionRoot(4, "MSFT", 2.5, 5.0),
    OptionRoot(5, "AMD", 2.5, 5.0),
    OptionRoot(6, "INTC", 0.5, 1.0),
)


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of a month (the monthly expiry)."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


@functools.lru_cache(maxsize=4096)
def expiry_close(last_trade_date: str) -> float:
    """The moment (unix seconds) an option with this expiry (``YYYYMMDD``) expires: the session's
    end, 16:00 New York, on its expiry day."""
    day = dt.datetime.strptime(last_trade_date, "%Y%m%d")
    return day.replace(hour=EXPIRY_CLOSE_HOUR, tzinfo=NEW_YORK).timestamp()


def listing_day(now: float) -> dt.date:
    """The day whose chains are listed at ``now``: the day in New York, the next one from the
    session's end (an expiry is no longer listed once it has expired)."""
    local = dt.datetime.fromtimestamp(now, NEW_YORK)
    return local.date() + dt.timedelta(days=1 if local.hour >= EXPIRY_CLOSE_HOUR else 0)


def option_expiries(today: dt.date) -> list[dt.date]:
    """The expiries listed on ``today``: the weeklies and the monthlies, in order."""
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    days = {friday + dt.timedelta(weeks=n) for n in range(WEEKLY_COUNT)}
    monthlies: list[dt.date] = []
    year, month = today.year, today.month
    while len(monthlies) < MONTHLY_COUNT:
        monthly = third_friday(year, month)
        if monthly >= today:
            monthlies.append(monthly)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(days.union(monthlies))


def strike_grid(root: OptionRoot, price: float) -> list[float]:
    """The strikes listed around ``price``: near steps within NEAR_BAND, far steps to FAR_BAND."""
    if not price > 0:
        return []
    strikes: set[float] = set()
    for step, band in ((root.near_step, NEAR_BAND), (root.far_step, FAR_BAND)):
        low = math.ceil(price * (1 - band) / step - 1e-9)
        high = math.floor(price * (1 + band) / step + 1e-9)
        strikes.update(round(n * step, 2) for n in range(max(low, 1), high + 1))
    return sorted(s for s in strikes if 0 < s * 2 < _STRIKE_UNITS and float(s * 2).is_integer())


def occ_symbol(symbol: str, expiry: dt.date, right: str, strike: float) -> str:
    """The OCC symbol IB uses as an option's localSymbol: ``SPY   250620C00596000``."""
    return f"{symbol:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def parse_occ(text: str) -> tuple[str, str, str, float] | None:
    """(symbol, YYYYMMDD, right, strike) of an OCC symbol (spaces optional), or None."""
    compact = text.replace(" ", "").upper()
    tail = compact[-15:]
    if len(compact) < 16 or not (tail[:6].isdigit() and tail[6] in "CP" and tail[7:].isdigit()):
        return None
    return compact[:-15], f"20{tail[:6]}", tail[6], int(tail[7:]) / 1000


def option_con_id(root: OptionRoot, expiry: dt.date, right: str, strike: float) -> int | None:
    """The conId of an option, or None when it cannot have one (strike off the half-dollar grid)."""
    day, units = (expiry - _EPOCH).days, strike * 2
    if not (0 <= day < _DAYS and 0 < units < _STRIKE_UNITS and float(units).is_integer()):
        return None
    slot = (root.index * 2 + (right == "P")) * _DAYS + day
    return OPTION_CON_ID_BASE + slot * _STRIKE_UNITS + int(units)


def decode_con_id(con_id: int) -> tuple[int, str, dt.date, float] | None:
    """(root index, right, expiry, strike) of an option conId, or None."""
    rest = con_id - OPTION_CON_ID_BASE
    if rest < 0:
        return None
    slot, units = divmod(rest, _STRIKE_UNITS)
    side, day = divmod(slot, _DAYS)
    index, put = divmod(side, 2)
    if not units or index >= 16:
        return None
    return index, "P" if put else "C", _EPOCH + dt.timedelta(days=day), units / 2


class OptionChains:
    """The option family of a catalog: chains on the listing day ``today()`` around the prices of
    ``price(conId)`` (both bound by the engine: its clock and its market), contracts made on demand."""

    def __init__(self, underlyings: list[Instrument], roots: tuple[OptionRoot, ...] = OPTION_ROOTS) -> None:
        by_symbol = {inst.symbol: inst for inst in underlyings if inst.sec_type == "STK"}
        self.roots = {r.symbol: r for r in roots if r.symbol in by_symbol}
        self.underlyings = {r.symbol: by_symbol[r.symbol] for r in self.roots.values()}
        self._by_index = {r.index: r for r in self.roots.values()}
        self._made: dict[int, Instrument] = {}
        self.today: Callable[[], dt.date] = dt.date.today
        self.price: Callable[[int], float] = self._default_price

    def _default_price(self, con_id: int) -> float:
        return next((u.default_price for u in self.underlyings.values() if u.con_id == con_id), 0.0)

    def bind(self, today: Callable[[], dt.date], price: Callable[[int], float]) -> None:
        """Take the engine's listing day (:func:`listing_day` of its clock) and its market's prices."""
        self.today, self.price = today, price

    # ------------------------------------------------------------- the chains

    def root_for(self, symbol: str, con_id: int = 0) -> OptionRoot | None:
        """The root of an underlying named by symbol (and conId when given)."""
        root = self.roots.get(symbol.upper().strip())
        if root is None or (con_id and self.underlyings[root.symbol].con_id != con_id):
            return None
        return root

    def expiries(self) -> list[dt.date]:
        """Today's listed expiries."""
        return option_expiries(self.today())

    def strikes(self, root: OptionRoot) -> list[float]:
        """Today's strikes of a root, around its underlying's current price."""
        return strike_grid(root, self.price(self.underlyings[root.symbol].con_id))

    # ------------------------------------------------------------- contracts

    def get(self, con_id: int) -> Instrument | None:
        """The option with this conId (listed or not: an expired one stays known)."""
        made = self._made.get(con_id)
        if made is not None:
            return made
        decoded = decode_con_id(con_id)
        if decoded is None or decoded[0] not in self._by_index:
            return None
        index, right, expiry, strike = decoded
        return self._make(self._by_index[index], expiry, right, strike)

    def match(self, q: ContractQuery) -> list[Instrument]:
        """The listed options a reqContractDetails names (a partial request: every strike, every
        expiry, both rights, as IB answers it), by expiry, right and strike."""
        if q.con_id:
            inst = self.get(q.con_id)
            return [inst] if inst and matches(inst, q) else []
        occ = parse_occ(q.local_symbol)
        if occ is not None:
            symbol, expiry_day, right, strike = occ
            q = replace(q, symbol=q.symbol or symbol, right=q.right or right, strike=q.strike or strike,
                        last_trade_date_or_contract_month=q.last_trade_date_or_contract_month or expiry_day)  # fmt: skip
        root = self.roots.get(q.symbol.upper())
        if root is None:
            return []
        grid = self.strikes(root)
        strikes = [q.strike] if q.strike else grid
        rights = [normal_right(q.right)] if normal_right(q.right) else ["C", "P"]
        expiry = q.last_trade_date_or_contract_month
        out = []
        for day in self.expiries():
            if expiry and not f"{day:%Y%m%d}".startswith(expiry):
                continue
            for right in rights:
                out += [self._made_or_make(root, day, right, s) for s in strikes if s in grid]
        return [inst for inst in out if inst is not None and matches(inst, q)]

    def _made_or_make(
        self, root: OptionRoot, expiry: dt.date, right: str, strike: float
    ) -> Instrument | None:
        con_id = option_con_id(root, expiry, right, strike)
        if con_id is None or right not in ("C", "P"):
            return None
        return self._made.get(con_id) or self._make(root, expiry, right, strike, keep=False)

    def _make(
        self, root: OptionRoot, expiry: dt.date, right: str, strike: float, keep: bool = True
    ) -> Instrument | None:
        """The contract; ``keep``: remembered (only what a conId reached: a listing makes thousands)."""
        con_id = option_con_id(root, expiry, right, strike)
        if con_id is None:
            return None
        under = self.underlyings[root.symbol]
        exchanges = OPTION_EXCHANGES.split(",")
        rule = str(PENNY_ALL_RULE if root.all_penny else PENNY_RULE)
        inst = Instrument(
            con_id=con_id,
            symbol=root.symbol,
            sec_type="OPT",
            currency="USD",
            exchange="SMART",
            local_symbol=occ_symbol(root.symbol, expiry, right, strike),
            trading_class=root.symbol,
            min_tick=0.01,
            default_price=0.01,  # unused: an option's price is its model's (ibsim/engine/option_model.py)
            multiplier="100",
            valid_exchanges=OPTION_EXCHANGES,
            last_trade_date=f"{expiry:%Y%m%d}",
            last_trade_time=root.last_trade_time,
            contract_month=f"{expiry:%Y%m}",
            long_name=under.long_name,
            market_name=root.symbol,
            under_con_id=under.con_id,
            under_symbol=root.symbol,
            under_sec_type="STK",
            industry=under.industry,
            market_rule_ids=",".join(rule for _ in exchanges),
            order_types=OPTION_ORDER_TYPES,
            strike=strike,
            right=right,
        )
        if keep:
            self._made[con_id] = inst
        return inst
