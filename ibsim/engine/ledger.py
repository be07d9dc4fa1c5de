"""Positions, cash and the account figures derived from them (USD), per managed account."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ibsim.catalog.instruments import Instrument
from ibsim.engine.costs import MAINTENANCE_SHARE, margin_rate, position_margin
from ibsim.engine.market import Market
from ibsim.model import Account, Position


@dataclass
class Exposure:
    """One account's positions marked to the current prices (USD)."""

    stock_value: float = 0.0  # everything but futures, at market value
    fut_unrealized: float = 0.0  # futures are marked to market: only their P&L counts
    unrealized: float = 0.0
    gross: float = 0.0
    init_margin: float = 0.0
    by_type: dict[str, float] = field(default_factory=dict)


class Ledger:
    """The managed accounts: positions per (account, conId), cash, realised P&L, cash accounts."""

    def __init__(self, market: Market, account_ids: list[str], initial_cash: float) -> None:
        self.market = market
        self.account_ids = account_ids
        self.initial_cash = initial_cash
        self.reset()

    def reset(self) -> None:
        """Every account back to its starting cash, without positions."""
        self.positions: dict[tuple[str, int], Position] = {}
        self.accounts: dict[str, Account] = {a: Account(a, cash=self.initial_cash) for a in self.account_ids}
        #: cash accounts: a SELL that would take the position below zero is refused (no shorting)
        self.cash_accounts: set[str] = set()
        self.daily_start_netliq: dict[str, float] = {a: self.initial_cash for a in self.account_ids}

    @property
    def default_account(self) -> str:
        """The first managed account (orders with an empty account go there)."""
        return self.account_ids[0]

    def add_account(self, account: Account) -> None:
        """Take on an account (a restored --state may name accounts the command line did not)."""
        if account.account_id not in self.accounts:
            self.account_ids.append(account.account_id)
        self.accounts[account.account_id] = account

    def quantity(self, account_id: str, con_id: int) -> float:
        """The signed position (0 when none)."""
        pos = self.positions.get((account_id, con_id))
        return pos.quantity if pos else 0.0

    def holders(self, con_id: int) -> list[str]:
        """Accounts with a non-zero position in the contract."""
        return [account for (account, cid), pos in self.positions.items() if cid == con_id and pos.quantity]

    def book(
        self,
        account_id: str,
        inst: Instrument,
        buy: bool,
        qty: float,
        price: float,
        commission: float,
        fx: float,
    ) -> float | None:
        """Update the position and cash; return realised P&L (instrument currency) or None if opening."""
        account = self.accounts[account_id]
        pos = self.positions.get((account_id, inst.con_id))
        if pos is None:
            pos = self.positions[(account_id, inst.con_id)] = Position(account_id, inst.con_id)
        sign = 1.0 if buy else -1.0
        unit_cost = price * inst.mult
        realized: float | None = None
        old = pos.quantity
        if old == 0 or (old > 0) == buy:
            total = abs(old) + qty
            pos.avg_cost = (abs(old) * pos.avg_cost + qty * unit_cost) / total
            pos.quantity = round(old + sign * qty, 10)
        else:
            closed = min(qty, abs(old))
            realized = (unit_cost - pos.avg_cost) * closed * (1.0 if old > 0 else -1.0)
            pos.quantity = round(old + sign * qty, 10)
            if pos.quantity == 0:
                pos.avg_cost = 0.0
            elif (pos.quantity > 0) != (old > 0):
                pos.avg_cost = unit_cost  # flipped through zero: the rest opens at this price
            pos.realized_pnl += realized
            account.realized_pnl += realized * fx
        if inst.sec_type == "FUT":
            if realized is not None:
                account.cash += realized * fx
        else:
            account.cash -= sign * qty * unit_cost * fx
        account.cash -= commission
        account.commissions += commission
        return realized

    def margin_rate(self, account_id: str, sec_type: str) -> float:
        """Initial margin per unit of notional in this account (see :func:`costs.margin_rate`)."""
        return margin_rate(sec_type, account_id in self.cash_accounts)

    def position_margin(self, account_id: str, inst: Instrument, quantity: float, price: float) -> float:
        """Initial margin (USD) of a signed position in this account at ``price`` (an option's
        with its underlying's current price)."""
        und = self.market.price(inst.under_con_id) if inst.sec_type == "OPT" else 0.0
        rate = self.margin_rate(account_id, inst.sec_type)
        return position_margin(inst, quantity, price, und, rate) * self.market.fx_to_usd(inst.currency)

    def portfolio(self, account_id: str) -> list[dict[str, Any]]:
        """Portfolio rows (positions marked to the current price), as updatePortfolio carries them."""
        return [
            self.portfolio_row(account_id, con_id) for acct, con_id in self.positions if acct == account_id
        ]

    def portfolio_row(self, account_id: str, con_id: int) -> dict[str, Any]:
        """One portfolio row for a position (quantity 0 rows tell clients to drop the item)."""
        inst = self.market.instrument(con_id)
        pos = self.positions.get((account_id, con_id)) or Position(account_id, con_id)
        price = self.market.price(con_id)
        value = pos.quantity * price * inst.mult
        return {
            "account": account_id,
            "conId": con_id,
            "symbol": inst.symbol,
            "secType": inst.sec_type,
            "localSymbol": inst.local_symbol,
            "position": pos.quantity,
            "marketPrice": price,
            "marketValue": round(value, 6),
            "avgCost": round(pos.avg_cost, 8),
            "unrealizedPnL": round(value - pos.quantity * pos.avg_cost, 6),
            "realizedPnL": round(pos.realized_pnl, 6),
        }

    def exposure(self, account_id: str) -> Exposure:
        """The account's positions marked to the current prices."""
        market = self.market
        x = Exposure()
        for (acct, con_id), pos in self.positions.items():
            if acct != account_id or not pos.quantity:
                continue
            inst = market.instrument(con_id)
            fx = market.fx_to_usd(inst.currency)
            value = pos.quantity * market.price(con_id) * inst.mult * fx
            upnl = value - pos.quantity * pos.avg_cost * fx
            x.unrealized += upnl
            x.init_margin += self.position_margin(account_id, inst, pos.quantity, market.price(con_id))
            x.by_type[inst.sec_type] = x.by_type.get(inst.sec_type, 0.0) + value
            if inst.sec_type == "FUT":
                x.fut_unrealized += upnl
            else:
                x.stock_value += value
                x.gross += abs(value)
        return x

    def account_values(self, account_id: str) -> dict[str, float | str]:
        """Account figures (USD) consistent with cash, positions and current prices."""
        account = self.accounts[account_id]
        x = self.exposure(account_id)
        gross, init_margin = x.gross, x.init_margin
        net_liq = account.cash + x.stock_value + x.fut_unrealized
        maint = init_margin * MAINTENANCE_SHARE
        available = net_liq - init_margin
        excess = net_liq - maint
        return {
            "NetLiquidation": round(net_liq, 2),
            "TotalCashValue": round(account.cash, 2),
            "SettledCash": round(account.cash, 2),
            "CashBalance": round(account.cash, 2),
            "EquityWithLoanValue": round(net_liq, 2),
            "GrossPositionValue": round(gross, 2),
            "StockMarketValue": round(x.by_type.get("STK", 0.0), 2),
            "FuturesPNL": round(x.fut_unrealized, 2),
            "InitMarginReq": round(init_margin, 2),
            "MaintMarginReq": round(maint, 2),
            "FullInitMarginReq": round(init_margin, 2),
            "FullMaintMarginReq": round(maint, 2),
            "AvailableFunds": round(available, 2),
            "FullAvailableFunds": round(available, 2),
            "ExcessLiquidity": round(excess, 2),
            "FullExcessLiquidity": round(excess, 2),
            "BuyingPower": round(max(available, 0.0) * 4, 2),
            "UnrealizedPnL": round(x.unrealized, 2),
            "RealizedPnL": round(account.realized_pnl, 2),
            "Cushion": round(excess / net_liq, 6) if net_liq else 0.0,
            "Leverage": round(gross / net_liq, 6) if net_liq else 0.0,
        }

    def daily_pnl(self, account_id: str) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L since the start (or the last reset)."""
        values = self.account_values(account_id)
        daily = float(values["NetLiquidation"]) - self.daily_start_netliq.get(account_id, self.initial_cash)
        return round(daily, 2), float(values["UnrealizedPnL"]), float(values["RealizedPnL"])
