"""Who may send alerts: the shared secret (constant-time), per-strategy secrets, TradingView's addresses.

The client address is ``request.remote_addr`` after werkzeug's ProxyFix (installed by
``create_app`` when ``TRUSTED_PROXIES`` > 0): the N-th ``X-Forwarded-For`` entry from the right,
so entries a client forges on the left are never used.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from config.settings import Settings

# TradingView's published webhook sender addresses (TradingView's support page, cited in docs/tradingview.md).
TRADINGVIEW_IPS = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})
SECRET_HEADER = "X-Webhook-Secret"


def address_allowed(settings: Settings, address: str | None) -> bool:
    """With ``TRADINGVIEW_IPS_ONLY``, only TradingView's senders; otherwise everyone."""
    if not settings.tradingview_ips_only:
        return True
    return address in TRADINGVIEW_IPS


def address_refusal(address: str) -> str:
    """The 403's reason (TradersPost calls it ``not-trading-view``): the address as tv2ib saw it,
    so that a proxy's own address (``TRUSTED_PROXIES`` too low) shows at once."""
    return (f"not sent by TradingView: TRADINGVIEW_IPS_ONLY accepts alerts only from TradingView's "
            f"addresses ({', '.join(sorted(TRADINGVIEW_IPS))}), and this request came from "
            f"{address[:64]!r} (behind a reverse proxy, TRUSTED_PROXIES must count it)")  # fmt: skip


def presented_secret(alert: Mapping[str, Any] | None, headers: Mapping[str, str]) -> str | None:
    """The secret the request carries: the ``X-Webhook-Secret`` header, else the body's ``secret``."""
    header = headers.get(SECRET_HEADER)
    if header:
        return header
    if alert is not None:
        value = alert.get("secret")
        if isinstance(value, str):
            return value
    return None


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def secret_ok(
    settings: Settings, presented: str | None, strategy: Any = None, *, any_configured: bool = False
) -> bool:
    """True when ``presented`` is the global secret or the secret of the alert's own strategy.

    A per-strategy secret only opens alerts that name that strategy, so sharing one strategy's
    alert text does not give away the right to trade the others. With ``any_configured`` (a body
    that could not be parsed, so its strategy is unknown) any configured secret authenticates,
    for storing the invalid request only.
    """
    if not presented:
        return False
    candidates = [settings.webhook_secret]
    if any_configured:
        candidates.extend(settings.strategy_secrets.values())
    elif isinstance(strategy, str) and strategy.strip() in settings.strategy_secrets:
        candidates.append(settings.strategy_secrets[strategy.strip()])
    ok = False
    for candidate in candidates:  # compare against all: the time does not say which one matched
        ok |= _equal(presented, candidate)
    return ok
