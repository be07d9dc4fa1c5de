"""Price grids: the market rules reqMarketRule answers, and prices on a tick grid."""

from __future__ import annotations

#: reqMarketRule answers: rule id -> price bands (lowEdge, increment), lowest edge first. A rule
#: not listed here answers one band: the smallest minTick of the instruments that carry it.
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.0001), (1.0, 0.01)),  # US stocks (SMART and the listing exchanges): Rule 612
    67: ((0.0, 0.25),),  # CME equity index futures
    32: ((0.0, 0.01),),  # NYMEX crude
    94: ((0.0, 0.1),),  # COMEX gold
    239: ((0.0, 0.00005),),  # IDEALPRO majors
    240: ((0.0, 0.005),),  # IDEALPRO JPY pairs
    1100: ((0.0, 0.25),),  # PAXOS BTC
    1101: ((0.0, 0.05),),  # PAXOS ETH
    110: ((0.0, 0.01),),  # ibsim's: US options quoted in pennies at every price (SPY, QQQ)
    111: ((0.0, 0.01), (3.0, 0.05)),  # ibsim's: US options of the Penny Interval Program
}


def on_tick(price: float, tick: float) -> bool:
    """Whether ``price`` sits on the tick grid (tolerant of binary float noise)."""
    if tick <= 0:
        return True
    steps = price / tick
    return abs(steps - round(steps)) < 1e-6


def round_to_tick(price: float, tick: float) -> float:
    """Nearest price on the tick grid, free of float noise."""
    if tick <= 0:
        return price
    steps = round(price / tick)
    decimals = max(0, len(f"{tick:.10f}".rstrip("0").split(".")[1]))
    return round(steps * tick, decimals)
