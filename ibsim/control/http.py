"""The control API's transport: JSON over a tiny stdlib asyncio HTTP/1.1 server, loopback only.

The routes are in :mod:`ibsim.control.routes`. Errors answer
``{"error": "<code>", "message": "<sentence>"}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from typing import Any

from ibsim.control.routes import HttpError, route
from ibsim.model import Json
from ibsim.server.operator import OperatorControls

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


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ControlServer:
    """Serves the control routes for one simulator's operator API."""

    def __init__(self, sim: OperatorControls, host: str = "127.0.0.1", port: int = 0) -> None:
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
        body: Json = {}
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

    def route(self, method: str, path: str, body: Json) -> Any:
        """Dispatch one request (also usable without HTTP)."""
        return route(self.sim, method, path, body)
