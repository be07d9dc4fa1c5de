"""Command line: ``python -m ibsim --port 4002 --control-port 4090 [--state FILE] [--catalog FILE] [--walk]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from ibsim.latency import PROFILES
from ibsim.server import SimServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI options."""
    p = argparse.ArgumentParser(prog="python -m ibsim", description="Simulated TWS / IB Gateway (API v157)")
    p.add_argument("--host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4002, help="API port (default 4002, 0 = any free port)")
    p.add_argument("--control-port", type=int, default=4090, help="HTTP control port on loopback (-1 = off)")
    p.add_argument("--state", help="JSON file that keeps orders, fills and positions across restarts")
    p.add_argument("--catalog", help="YAML or JSON file with extra instruments")
    p.add_argument("--walk", action="store_true", help="random-walk every price (demo mode)")
    p.add_argument("--walk-interval", type=float, default=1.0, help="seconds between random-walk steps")
    p.add_argument(
        "--account",
        action="append",
        dest="accounts",
        help="managed account id (repeat for several; default DU1234567)",
    )
    p.add_argument("--cash", type=float, default=1_000_000.0, help="starting cash per account (USD)")
    p.add_argument(
        "--margin-check",
        action="store_true",
        help="refuse orders whose initial margin would exceed the equity (like IB)",
    )
    p.add_argument(
        "--market-data",
        choices=("live", "delayed", "none"),
        default="live",
        help="the login's market data: live; delayed (no live API subscription: live requests get "
        "error 354, delayed ones 10167 and delayed ticks); none (354 / 10168)",
    )
    p.add_argument(
        "--latency",
        choices=tuple(PROFILES),
        default="none",
        help="hold answers back as a live IB account does: ib (acks, fills, what-ifs, contract "
        "lookups, first market data, account stream; figures in docs/ibsim-protocol.md); "
        "none (default): at once",
    )
    p.add_argument("--seed", type=int, help="random-walk seed (reproducible demos)")
    p.add_argument("--no-pacing", action="store_true", help="do not reject clients above 50 messages/s")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    """Start the server and run until SIGINT/SIGTERM."""
    sim = SimServer(
        port=args.port,
        control_port=None if args.control_port is not None and args.control_port < 0 else args.control_port,
        host="127.0.0.1" if args.host in ("localhost",) else args.host,
        accounts=args.accounts or ["DU1234567"],
        catalog_file=args.catalog,
        state_file=args.state,
        walk=args.walk,
        walk_interval=args.walk_interval,
        pacing=not args.no_pacing,
        initial_cash=args.cash,
        margin_check=args.margin_check,
        market_data=args.market_data,
        latency=args.latency,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        # one parseable line so scripts can wait for readiness
        print(f"ibsim ready port={sim.port} control_port={sim.control_port}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
