"""HTTP calls to a tv2ib server, with failures turned into :class:`CliError` (message + exit code)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from cli import exitcodes


class CliError(Exception):
    """A failure the command reports in one sentence and ends with ``exit_code``."""

    def __init__(self, exit_code: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.fields = fields or {}


def _error_of(response: httpx.Response) -> CliError:
    """The server's JSON error (``{"error", "message", "fields"}``) as a :class:`CliError`."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or response.reason_phrase or "error"
    code = exitcodes.UNREACHABLE if response.status_code >= 500 else exitcodes.REFUSED
    return CliError(code, f"HTTP {response.status_code}: {message}", body.get("fields") or {})


class ApiClient:
    """One server: ``url``; ``secret`` for /webhook, ``token`` for /api/* (either may be None)."""

    def __init__(
        self, url: str, *, secret: str | None = None, token: str | None = None, timeout: float = 10.0
    ):
        self.url = url.rstrip("/")
        self.secret = secret
        self.token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise CliError(exitcodes.UNREACHABLE, f"{self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(exitcodes.UNREACHABLE, f"cannot reach the server at {self.url}: {exc}") from None

    def post_alert(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /webhook with the secret in the header (never in the stored body); 2xx answer or CliError."""
        headers = {"X-Webhook-Secret": self.secret} if self.secret else {}
        response = self._send("POST", "/webhook", json=payload, headers=headers)
        if response.status_code >= 300:
            raise _error_of(response)
        body = response.json()
        body["duplicate"] = response.status_code == 200
        return body

    def get(self, path: str, **params: Any) -> Any:
        """GET an admin API path; the JSON answer or CliError."""
        return self._admin("GET", path, params)

    def post(self, path: str, **params: Any) -> Any:
        """POST an admin API path (no body); the JSON answer or CliError."""
        return self._admin("POST", path, params)

    def _admin(self, method: str, path: str, params: dict[str, Any]) -> Any:
        """An admin API call with the token and the query parameters that are set."""
        present = {k: v for k, v in params.items() if v is not None}
        response = self._send(method, path, params=present, headers=self._headers())
        if response.status_code >= 300:
            raise _error_of(response)
        return response.json()

    def stream_lines(self, path: str, on_open: Callable[[], None] = lambda: None) -> Iterator[str]:
        """GET a streaming path (server-sent events) and yield its lines as they arrive;
        ``on_open`` runs once the server has answered 200 (the stream is live from then on)."""
        try:
            with httpx.stream(
                "GET", f"{self.url}{path}", headers={**self._headers(), "Accept": "text/event-stream"},
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:  # fmt: skip
                if response.status_code >= 300:
                    response.read()
                    raise _error_of(response)
                on_open()
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise CliError(exitcodes.UNREACHABLE, f"lost the event stream from {self.url}: {exc}") from None
