"""``/openapi.json``: a valid OpenAPI 3 document that describes every route of the webhook, the admin
API and the probes, and that a real gunicorn lives up to under schemathesis' generated requests
(valid and invalid ones): no 5xx, no stack trace in any answer, every status, media type, header
and body as described.

The fuzz is bounded: a fixed number of examples per operation and mode, derandomized (the same
requests every run), no shrinking phase unless something fails. docs/testing.md says how to run it
longer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from app_helpers import SECRET
from flask import Flask
from gunicorn_server import running_gunicorn
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.openapi.paths import ROUTES
from app.webhook.schema import normalise
from config.settings import Settings
from core.option_fields import FIELDS as OPTION_FIELDS

ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
# Examples per operation and generation mode (the webhook, where most can go wrong, gets three
# times as many); with the coverage phase, 34 to 46 s on a loaded 2-core machine. FUZZ_EXAMPLES=300 runs a longer one
# (docs/testing.md).
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
WEBHOOK_FACTOR = 3
# What a Python or werkzeug stack trace leaves in a body.
TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/', "werkzeug.exceptions", "sqlalchemy.exc")
# Not fuzzed: a stream held open for EVENTS_STREAM_SECONDS per request (tests/app/test_events.py).
NOT_FUZZED = {("GET", "/api/events")}


def no_stack_trace(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """schemathesis check: an answer never carries a stack trace or an exception's module path."""
    text = response.text or ""
    for marker in TRACE_MARKERS:
        assert marker not in text, (
            f"{case.method} {case.formatted_path}: answer holds {marker!r}: {text[:300]}"
        )


# The command line's checks (its coverage phase): the ones above but the stack trace, plus invalid
# input refused, undeclared methods answered 405 with Allow, no answer without the credentials.
# Not positive_data_acceptance: a schema-valid alert can still break a rule across fields (422).
CLI_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "ignored_auth",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    no_stack_trace,
]


@pytest.fixture
def described(base_env: dict[str, str]) -> Iterator[tuple[Flask, dict[str, Any]]]:
    """An app (SQLite, real Redis) and the description it serves."""
    app = create_app(Settings.from_mapping(dict(base_env, ADMIN_TOKEN=ADMIN_TOKEN)))
    answer = app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    yield app, answer.get_json()
    from app.resources import get_ctx, resources

    resources(app).intake.close()
    get_ctx(app).close()


def test_the_description_is_valid_openapi_3(described: tuple[Flask, dict[str, Any]]) -> None:
    _, doc = described
    assert doc["openapi"].startswith("3.")
    validate(doc)  # raises with the offending place when the document is not OpenAPI


def test_every_route_but_the_dashboard_is_described(described: tuple[Flask, dict[str, Any]]) -> None:
    """The webhook, the admin API and the probes, each method; the dashboard's pages are HTML."""
    app, doc = described
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("dashboard.", "static")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        served |= {(m.lower(), path) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert listed == served
    assert ("post", "/webhook") in listed and ("get", "/api/alerts/{alert_id}") in listed
    operation_ids = {
        op["operationId"] for ops in doc["paths"].values() for m, op in ops.items() if m != "parameters"
    }
    assert len(operation_ids) == len(listed) >= len(ROUTES)


def test_the_description_names_the_auth_and_the_error_body(described: tuple[Flask, dict[str, Any]]) -> None:
    _, doc = described
    schemes = doc["components"]["securitySchemes"]
    assert schemes["webhookSecret"] == {
        **schemes["webhookSecret"],
        "in": "header",
        "name": "X-Webhook-Secret",
    }
    assert schemes["adminToken"]["scheme"] == "bearer"
    webhook = doc["paths"]["/webhook"]["post"]
    body = doc["components"]["schemas"]["Alert"]
    assert "secret" in body["properties"] and {"ticker", "action"} <= set(body["required"])
    assert webhook["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error", "message"] and error["additionalProperties"] is False
    assert doc["paths"]["/api/status"]["get"]["security"] == [{"adminToken": []}]


def test_the_option_fields_and_tickers_are_described(described: tuple[Flask, dict[str, Any]]) -> None:
    """Each option field (and TradersPost's spelling ``instrinsicValue``) is a property, and the
    alerts intake accepts with them are valid by the description (choices are listed lower-case,
    as every choice is; the description says any letter case)."""
    _, doc = described
    alert = doc["components"]["schemas"]["Alert"]
    assert {*OPTION_FIELDS, "instrinsicValue"} <= set(alert["properties"])
    accepted = [
        {"ticker": "SPY", "action": "buy", "optionType": "call", "expiration": "+6 Months", "instrinsicValue": "otm",
         "strikesAway": "1", "strikeCount": 10.0, "dteMin": None},
        {"ticker": "spy", "action": "sell", "optionType": "put", "expiration": "2026-03-20", "delta": "-0.30", "dteMax": 45},
        {"ticker": "AAPL  250117C00150000", "action": "buy"},
        {"ticker": "opra:spy 250624p596.5", "action": "buy"},
    ]  # fmt: skip
    validator = Draft202012Validator({**alert, "components": doc["components"]})
    for body in accepted:
        assert normalise(body)[1] == {}, body
        assert not list(validator.iter_errors(body)), body


def test_a_refusal_matches_the_described_error_body(described: tuple[Flask, dict[str, Any]]) -> None:
    """The real 422 of an invalid alert, validated against the served description."""
    app, doc = described
    answer = app.test_client().post("/webhook", json={"secret": SECRET, "ticker": "AAPL", "action": "hold"})
    assert answer.status_code == 422
    schema = schemathesis.openapi.from_dict(doc)
    operation = schema["/webhook"]["POST"]
    response = schemathesis.Response(
        status_code=422,
        headers={"content-type": ["application/json"]},
        content=answer.data,
        request=requests.Request("POST", "http://localhost/webhook").prepare(),
        elapsed=0.0,
        verify=False,
    )
    operation.validate_response(response)
    assert answer.get_json()["fields"]["action"]


def _auth_headers(path: str) -> dict[str, str]:
    if path == "/webhook":
        return {"X-Webhook-Secret": SECRET}
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    base: str,
    session: requests.Session,
    *,
    headers: dict[str, str],
    examples: int,
) -> None:
    """``examples`` generated requests to ``operation``, each answer put through :data:`CHECKS`;
    the first failure raises with the request as a curl command."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base, session=session, headers=headers, checks=CHECKS, timeout=10)

    run()


def _errors_logged(log: str) -> list[str]:
    """The server's log lines (JSON, LOG_FORMAT=json) at level error or above, and any traceback."""
    found = []
    for line in log.splitlines():
        try:
            level = json.loads(line).get("level", "")
        except (ValueError, AttributeError):
            level = ""
        if level in ("error", "critical") or "Traceback" in line:
            found.append(line)
    return found


def _coverage_phase(base: str, tmp_path: Path) -> None:
    """schemathesis' command line, coverage phase: every described value and boundary, one past
    each boundary, missing and wrong-typed parameters, undeclared methods, requests without the
    credentials; deterministic by construction. Its report goes to ``tmp_path``."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base}/openapi.json",
        "--phases=coverage",
        f"--checks={','.join(CLI_CHECKS)}",
        f"--header=Authorization: Bearer {ADMIN_TOKEN}",
        f"--header=X-Webhook-Secret: {SECRET}",
        "--exclude-path=/api/events",
        "--seed=1",
        "--no-color",
    ]
    report = tmp_path / "schemathesis.txt"
    with report.open("w") as out:
        done = subprocess.run(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=240)
    assert done.returncode == 0, report.read_text()[-6000:]


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_gunicorn(redis_url: str, tmp_path: Path) -> None:
    """Every described operation: valid and invalid requests with the credentials, valid ones
    without (schemathesis fills the security header with its own values): no 5xx, no stack
    traces, answers as described."""
    limits = {
        "RATE_LIMIT": "100000/minute",
        "AUTH_FAILURE_LIMIT": "100000/minute",
        "ADMIN_AUTH_FAILURE_LIMIT": "100000/minute",
        "AUTHENTICATED_RATE_LIMIT": "100000/minute",
    }
    with running_gunicorn(redis_url, tmp_path, ADMIN_TOKEN=ADMIN_TOKEN, **limits) as base:
        doc = httpx.get(f"{base}/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(doc)
        fuzzed: list[str] = []
        with requests.Session() as session:
            for result in schema.get_all_operations():
                operation = result.ok()
                if (operation.method.upper(), operation.path) in NOT_FUZZED:
                    continue
                examples = MAX_EXAMPLES * (WEBHOOK_FACTOR if operation.path == "/webhook" else 1)
                auth = _auth_headers(operation.path)
                _fuzz(operation, GenerationMode.POSITIVE, base, session, headers=auth, examples=examples)
                if len(operation.query) or len(operation.path_parameters) or len(operation.body):
                    _fuzz(operation, GenerationMode.NEGATIVE, base, session, headers=auth, examples=examples)
                anonymous = max(1, MAX_EXAMPLES // 5)
                _fuzz(operation, GenerationMode.POSITIVE, base, session, headers={}, examples=anonymous)
                fuzzed.append(operation.label)
        _coverage_phase(base, tmp_path)
        log = (tmp_path / "gunicorn.log").read_text()
    assert len(fuzzed) == len(ROUTES) - len(NOT_FUZZED), fuzzed
    assert '"level": "info"' in log  # the log is the JSON one read here
    errors = _errors_logged(log)
    assert not errors, "\n".join(errors[:5])


def test_both_forms_of_take_profit_are_described(described: tuple[Flask, dict[str, Any]]) -> None:
    """``takeProfit`` is one object or a list of levels: both forms that intake accepts are valid by
    the description, and a list of one level (intake refuses it) is not."""
    _, doc = described
    alert = doc["components"]["schemas"]["Alert"]
    validator = Draft202012Validator({**alert, "components": doc["components"]})
    accepted = [
        {"ticker": "AAPL", "action": "buy", "quantity": 10, "takeProfit": {"percent": 1}},
        {"ticker": "AAPL", "action": "buy", "quantity": 10, "stopLoss": {"percent": 2, "breakEven": {"afterTakeProfit": 1}},
         "takeProfit": [{"percent": 1, "quantity": 3}, {"limitPrice": "210", "quantity": 3}, {"ticks": 50}]},
    ]  # fmt: skip
    for body in accepted:
        assert normalise(body)[1] == {}, body
        assert not list(validator.iter_errors(body)), body
    one_level = {"ticker": "AAPL", "action": "buy", "quantity": 10, "takeProfit": [{"percent": 1}]}
    assert "takeProfit" in normalise(one_level)[1]
    assert list(validator.iter_errors(one_level))
