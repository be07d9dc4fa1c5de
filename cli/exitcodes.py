"""What a ``tv2ib`` exit code means (scripts branch on these; docs/cli.md "Exit codes" lists them)."""

from __future__ import annotations

OK = 0  # done: the alert was accepted and placed / filled, the command succeeded
FAILED = 1  # something else went wrong, or the operator answered "no" to a question
USAGE = 2  # wrong options or arguments (click's own code)
CONFIG = 3  # a needed setting is missing (WEBHOOK_SECRET, ADMIN_TOKEN) or malformed
REFUSED = 4  # the server refused the request (4xx: bad field, wrong secret or token, unknown id)
REJECTED = 5  # the alert was accepted but the worker rejected it (risk, contract, broker, paused)
UNREACHABLE = 6  # no answer from the server, or it is unavailable (5xx)
TIMEOUT = 7  # the alert did not reach an outcome within --timeout

MEANINGS = {
    OK: "success",
    FAILED: "other failure, or the question was answered no",
    USAGE: "wrong options or arguments",
    CONFIG: "a needed setting is missing or malformed",
    REFUSED: "the server refused the request (4xx)",
    REJECTED: "the alert was rejected by the worker",
    UNREACHABLE: "the server is unreachable or unavailable (5xx)",
    TIMEOUT: "no outcome within the timeout",
}
