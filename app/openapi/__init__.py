"""``GET /openapi.json``: the OpenAPI 3.1 description of the webhook, the admin API and the probes,
generated when first asked for, never written by hand:

* paths and methods from the app's URL map, summaries from the views' docstrings;
* the webhook's body from the marshmallow schemas that validate it (:mod:`app.webhook.schema`,
  through apispec's marshmallow plugin and :mod:`app.openapi.fields`);
* every JSON answer from the TypedDict the code fills in (:mod:`app.openapi.typed`), errors
  included (:class:`app.errors.ErrorBody`);
* who may call what, parameters and statuses from :mod:`app.openapi.paths`.

The dashboard's HTML pages are for browsers and are left out. tests/app/test_openapi.py fuzzes the
description against a real gunicorn with schemathesis.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify

from app.openapi.fields import field_schema
from app.openapi.paths import ROUTES, Answer, Route
from app.openapi.typed import TypedSchemas
from app.webhook.auth import SECRET_HEADER
from app.webhook.exit_schemas import MAX_TAKE_PROFIT_LEVELS, TakeProfitSchema
from app.webhook.schema import AlertSchema

OPENAPI_VERSION = "3.1.0"
EXTENSION_KEY = "tv2ib.openapi"
SECURITY_SCHEMES = {
    "webhookSecret": {
        "type": "apiKey",
        "in": "header",
        "name": SECRET_HEADER,
        "description": "WEBHOOK_SECRET, or a strategy's own secret (STRATEGY_SECRETS). TradingView "
        "cannot set headers: there the secret is the body's `secret` field instead.",
    },
    "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
}
SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})

bp = Blueprint("openapi", __name__)


def _version() -> str:
    try:
        return metadata.version("tv2ib")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
        return "0"


def _webhook_body(spec: APISpec) -> dict[str, Any]:
    """The alert's component from :class:`AlertSchema`, plus ``secret`` (taken out before it)."""
    spec.components.schema("TakeProfit", schema=TakeProfitSchema)
    spec.components.schema("Alert", schema=AlertSchema)
    alert = spec.components.schemas["Alert"]
    alert["properties"] = {
        "secret": {
            "type": "string",
            "writeOnly": True,
            "description": f"the secret, unless sent in {SECRET_HEADER}; never stored (masked as ***)",
        },
        **alert["properties"],
    }
    alert["description"] = " ".join((AlertSchema.__doc__ or "").split())
    alert["properties"]["takeProfit"] = _take_profit(alert["properties"]["takeProfitLevels"])
    ref = {"$ref": "#/components/schemas/Alert"}
    as_text = {"type": "string", "description": "the alert's JSON as text (what TradingView sends)"}
    return {
        "required": True,
        "content": {"application/json": {"schema": ref}, "text/plain": {"schema": as_text}},
    }


def _take_profit(levels: dict[str, Any]) -> dict[str, Any]:
    """``takeProfit``: one object, or a list of levels (app/webhook/exit_schemas.py TakeProfitField)."""
    level, one = levels["items"], {"$ref": "#/components/schemas/TakeProfit"}
    return {
        "description": "one take-profit for the whole position (an object: one of limitPrice, percent, amount, "
        "ticks), or a take-profit in levels (a list of 2 to 10: each a price and a size, quantity or "
        "quantityPercent; the last may omit its size: the rest of the position)",
        "anyOf": [
            one,
            {"type": "array", "minItems": 2, "maxItems": MAX_TAKE_PROFIT_LEVELS, "items": level},
        ],
    }


def _answer(answer: Answer, typed: TypedSchemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = answer.headers
    body = answer.body
    if body is None:
        schema: dict[str, Any] = {"type": "string"}
    elif isinstance(body, list):
        schema = {"anyOf": [typed.ref(b) for b in body]}
    else:
        schema = typed.schema(body)
    out["content"] = {answer.media_type: {"schema": schema}}
    return out


def _operation(app: Flask, endpoint: str, route: Route, typed: TypedSchemas, spec: APISpec) -> dict[str, Any]:
    doc = (app.view_functions[endpoint].__doc__ or "").strip().replace("``", "`")
    summary, _, rest = doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": summary.strip(),
        "tags": [route.tag],
        "security": route.security,
        "responses": {str(s): _answer(a, typed) for s, a in route.answers.items()},
    }
    if rest.strip():
        operation["description"] = " ".join(rest.split())
    if route.parameters:
        operation["parameters"] = route.parameters
    if endpoint == "webhook.webhook":
        operation["requestBody"] = _webhook_body(spec)
    return operation


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"<(?:[a-z]+:)?(\w+)>", rule)
    ]


def build_spec(app: Flask) -> dict[str, Any]:
    """The description of ``app``'s webhook, admin API and probes, as a JSON-ready dict."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="tv2ib",
        version=_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": "TradingView alerts in, Interactive Brokers orders out. See docs/intake.md."},
    )
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(field_schema)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    typed = TypedSchemas()
    described = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        route = ROUTES.get(rule.endpoint)
        if route is None:
            continue
        described.add(rule.endpoint)
        path = re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule.rule)
        operations = {
            m.lower(): _operation(app, rule.endpoint, route, typed, spec)
            for m in sorted((rule.methods or set()) - SKIPPED_METHODS)
        }
        spec.path(path=path, operations=operations, parameters=_path_parameters(rule.rule) or None)
    missing = set(ROUTES) - described
    if missing:
        raise RuntimeError(f"app.openapi.paths describes endpoints the app does not have: {sorted(missing)}")
    for name, schema in typed.components.items():
        spec.components.schema(name, component=schema)
    return spec.to_dict()


@bp.get("/openapi.json")
def description() -> Response:
    """This OpenAPI 3.1 description (generated from the code)."""
    cached = current_app.extensions.get(EXTENSION_KEY)
    if cached is None:
        cached = current_app.extensions[EXTENSION_KEY] = build_spec(current_app)
    return jsonify(cached)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
