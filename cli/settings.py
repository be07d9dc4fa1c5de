"""The few settings the command line needs, read like the server reads its own.

Same sources as the server (``config.settings``: a ``.env`` file overlaid by the environment), but
only what a client uses, each demanded only by the command that needs it: a ``tv2ib alerts`` on a
laptop needs ``ADMIN_TOKEN`` and nothing of the server's (no Redis, no IB, no secret).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from config.settings import DEFAULT_SQLITE_URL, MIN_SECRET_LENGTH, SettingsError, read_dotenv

DEFAULT_URL = "http://127.0.0.1:8000"


class CliConfigError(ValueError):
    """A setting a command needs is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True, repr=False)
class CliSettings:
    """Server address and credentials; ``repr`` hides the secrets."""

    url: str = DEFAULT_URL
    webhook_secret: str | None = None
    admin_token: str | None = None
    database_url: str = DEFAULT_SQLITE_URL
    risk_file: str | None = None
    symbol_map_file: str | None = None

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], url: str | None = None) -> CliSettings:
        """Build from an environment-like mapping; ``url`` (``--url``) wins over ``TV2IB_URL``."""

        def opt(name: str) -> str | None:
            value = (env.get(name) or "").strip()
            return value or None

        address = (url or opt("TV2IB_URL") or DEFAULT_URL).rstrip("/")
        if not address.startswith(("http://", "https://")):
            raise CliConfigError(f"the server URL must start with http:// or https://, got {address!r}")
        try:
            host = httpx.URL(address).host
        except httpx.InvalidURL as exc:
            raise CliConfigError(f"the server URL {address!r} is not a valid URL: {exc}") from None
        if not host:
            raise CliConfigError(f"the server URL {address!r} names no host")
        return cls(
            url=address,
            webhook_secret=opt("WEBHOOK_SECRET"),
            admin_token=opt("ADMIN_TOKEN"),
            database_url=opt("DATABASE_URL") or DEFAULT_SQLITE_URL,
            risk_file=opt("RISK_FILE"),
            symbol_map_file=opt("SYMBOL_MAP_FILE"),
        )

    def require_secret(self) -> str:
        """The webhook secret, or a :class:`CliConfigError` that says how to set it."""
        if not self.webhook_secret:
            raise CliConfigError(
                "WEBHOOK_SECRET is not set: put the server's secret in the environment or .env"
            )
        if len(self.webhook_secret) < MIN_SECRET_LENGTH:
            raise CliConfigError(f"WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return self.webhook_secret

    def require_token(self) -> str:
        """The admin token, or a :class:`CliConfigError` that says how to set it."""
        if not self.admin_token:
            raise CliConfigError("ADMIN_TOKEN is not set: the admin API needs it (environment or .env)")
        return self.admin_token

    def __repr__(self) -> str:
        return f"CliSettings(url={self.url!r}, database_url={self.database_url!r}, secrets=***)"


def load_cli_settings(
    url: str | None = None, environ: Mapping[str, str] | None = None, dotenv_path: str = ".env"
) -> CliSettings:
    """Settings from ``.env`` overlaid by the environment (the server's rule)."""
    try:
        merged = read_dotenv(dotenv_path)
    except SettingsError as exc:  # unreadable, or not UTF-8: the file and the line
        raise CliConfigError(str(exc)) from None
    merged.update(os.environ if environ is None else environ)
    return CliSettings.from_mapping(merged, url)
