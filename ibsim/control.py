"""The HTTP control API (JSON over a tiny stdlib asyncio HTTP/1.1 server, loopback only).

Routes: ``GET /state``, ``GET /health``, ``POST /price``, ``POST /fault``, ``POST /reset``,
``POST /fill_limit``, ``POST /fill``, ``POST /notice``, ``POST /end_of_day``, ``POST /trade`` (a manual
trade outside the API), ``POST /account`` (cash account: no short sales), ``POST /market_data`` (an
account without live data), ``POST /halt``. Errors answer
``{"error": "<code>", "message": "<sentence>"}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ibsim.server import SimServer

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


class HttpError(Exception):
    """An error answer with a status, a code and a sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ControlServer:
    """Serves the control routes for one :class:`~ibsim.server.SimServer`."""

    def __init__(self, sim: SimServer, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise ValueError("the control API listens on loopback only")
        self.sim = sim
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Bind the control port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            status, body = await asyncio.wait_for(self._request(reader, peer), 10.0)
        except HttpError as exc:
            status, body = exc.status, {"error": exc.code, "message": exc.message}
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            writer.close()
            return
        data = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            await writer.drain()
        writer.close()

    async def _request(self, reader: asyncio.StreamReader, peer: Any) -> tuple[int, Any]:
        if peer and not _is_loopback(str(peer[0])):
            raise HttpError(403, "forbidden", "the control API answers loopback clients only")
        line = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
        parts = line.split()
        if len(parts) != 3:
            raise HttpError(400, "bad_request", "malformed request line")
        method, target = parts[0].upper(), parts[1]
        length = 0
        while True:
            header = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError as exc:
                    raise HttpError(400, "bad_request", "bad Content-Length") from exc
        if length > MAX_BODY:
            raise HttpError(413, "too_large", "body over 64 KiB")
        raw = await reader.readexactly(length) if length else b""
        body: dict[str, Any] = {}
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise HttpError(400, "bad_json", f"body is not JSON: {exc}") from exc
            if not isinstance(parsed, dict):
                raise HttpError(400, "bad_json", "body must be a JSON object")
            body = parsed
        path = target.split("?", 1)[0].rstrip("/") or "/"
        return 200, self.route(method, path, body)

    def route(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """Dispatch one request (also usable without HTTP)."""
        sim = self.sim
        get_routes = {"/state": lambda: sim.state(), "/health": lambda: {"ok": True, "port": sim.port}}
        if method == "GET":
            if path in get_routes:
                return get_routes[path]()
            raise HttpError(404, "not_found", f"no route GET {path}")
        if method != "POST":
            raise HttpError(405, "method_not_allowed", f"{method} is not supported")
        try:
            if path == "/price":
                return self._price(body)
            if path == "/fault":
                kind = body.get("kind")
                if not isinstance(kind, str):
                    raise HttpError(422, "invalid", "field 'kind' is required")
                kw = {k: v for k, v in body.items() if k != "kind"}
                return {"ok": True, "kind": kind, **sim.fault(kind, **kw)}
            if path == "/reset":
                sim.reset()
                return {"ok": True}
            if path == "/fill_limit":
                qty = body.get("quantity")
                result = sim.set_fill_limit(
                    None if qty is None else float(qty),
                    symbol=str(body.get("symbol", "")),
                    sec_type=str(body.get("secType", "")),
                    con_id=_opt_int(body.get("conId")),
                    client_id=_opt_int(body.get("clientId")),
                    order_id=_opt_int(body.get("orderId")),
                )
                return {"ok": True, **result}
            if path == "/fill":
                if "orderId" not in body:
                    raise HttpError(422, "invalid", "field 'orderId' is required")
                order = sim.fill(
                    int(body.get("clientId", 0)),
                    int(body["orderId"]),
                    None if body.get("quantity") is None else float(body["quantity"]),
                    None if body.get("price") is None else float(body["price"]),
                )
                return {"ok": True, "order": order}
            if path == "/trade":
                if "quantity" not in body:
                    raise HttpError(422, "invalid", "field 'quantity' is required (signed: negative sells)")
                return {"ok": True, **sim.external_trade(
                    float(body["quantity"]),
                    symbol=str(body.get("symbol", "")),
                    sec_type=str(body.get("secType", "")),
                    con_id=_opt_int(body.get("conId")),
                    account=str(body.get("account", "")),
                    price=None if body.get("price") is None else float(body["price"]),
                )}  # fmt: skip
            if path == "/account":
                balance = body.get("balance")
                return {"ok": True, **sim.set_account_type(
                    str(body.get("account", "")), bool(body.get("cash", True)),
                    None if balance is None else float(balance))}  # fmt: skip
            if path == "/market_data":
                return {"ok": True, **sim.set_market_data(
                    str(body.get("mode", "live")), int(body.get("liveError", 354)))}  # fmt: skip
            if path == "/halt":
                con_ids = sim.set_halted(
                    bool(body.get("halted", True)),
                    symbol=str(body.get("symbol", "")),
                    sec_type=str(body.get("secType", "")),
                    con_id=_opt_int(body.get("conId")),
                )
                return {"ok": True, "conIds": con_ids, "halted": bool(body.get("halted", True))}
            if path == "/end_of_day":
                return {"ok": True, **sim.end_of_day()}
            if path == "/notice":
                sim.notice(int(body.get("code", 2103)), str(body.get("message", "")))
                return {"ok": True}
        except (LookupError, KeyError) as exc:
            raise HttpError(404, "not_found", str(exc).strip("'\"")) from exc
        except (ValueError, TypeError) as exc:
            raise HttpError(422, "invalid", str(exc)) from exc
        raise HttpError(404, "not_found", f"no route POST {path}")

    def _price(self, body: dict[str, Any]) -> dict[str, Any]:
        if "price" not in body:
            raise HttpError(422, "invalid", "field 'price' is required")
        if not body.get("symbol") and not body.get("conId"):
            raise HttpError(422, "invalid", "give 'symbol' (with optional 'secType') or 'conId'")
        extra = {k: str(body[k]) for k in ("currency", "exchange", "expiry") if body.get(k)}
        con_ids = self.sim.set_price(
            str(body.get("symbol", "")),
            float(body["price"]),
            sec_type=str(body.get("secType", "")),
            con_id=_opt_int(body.get("conId")),
            **extra,
        )
        return {"ok": True, "conIds": con_ids, "price": float(body["price"])}


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)
