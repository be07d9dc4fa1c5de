"""JSON error answers in the shape of docs/design.md: ``{"error", "message", "fields"}``.

Every HTTP error of the app, including werkzeug's own (404, 405, 413, ...) and unexpected
exceptions, leaves as JSON, so TradingView's alert log and curl users see a sentence, not HTML.
"""

from __future__ import annotations

import logging
from typing import Any, NotRequired, TypedDict

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_alert",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorBody(TypedDict):
    """Every error answer's body (``/openapi.json`` describes it from this class)."""

    error: str  # a short code: bad_request, unauthorized, invalid_alert, rate_limited, ...
    message: str  # one sentence a person can act on
    fields: NotRequired[dict[str, Any]]  # field name -> its problems (a list, or a dict for nested fields)
    alert_id: NotRequired[str]  # the webhook's: the id an authenticated but refused alert was stored under


def error_response(
    status: int, message: str, *, code: str | None = None, fields: dict[str, Any] | None = None
) -> Response:
    """A JSON error answer; ``fields`` maps a field name to its list of problems."""
    body: ErrorBody = {"error": code or _CODES.get(status, "error"), "message": message}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Answer every HTTP error and unexpected exception with JSON."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(status, exc.description or exc.name)
        if status == 413:
            # The rest of an oversized body is not worth reading; gunicorn drains it briefly.
            response.headers["Connection"] = "close"
        if status == 429 and exc.description:
            response = error_response(429, f"too many requests: over the limit of {exc.description}")
        # werkzeug's own headers but its media type: a 405 names the allowed methods (RFC 9110)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, "internal error; the request was not processed")
