"""Notice text as Telegram takes it: its length in UTF-16 units, cut to fit without breaking markup,
and the SIMULATOR line. Pure; used by the composer (worker/notify) and by every writer of the
``notices`` table (core/notices.py applies both at the one write point)."""

from __future__ import annotations

import re

MAX_TEXT = 4096  # Telegram's sendMessage limit
ELLIPSIS = "…"

# Every notice about a deployment whose worker is connected to ibsim (the simulator) starts with
# this line: nothing it reports happened at Interactive Brokers.
SIMULATOR_MARK = "🧪 <b>SIMULATOR</b> (ibsim, not Interactive Brokers)"


def simulator_marked_text(text: str) -> str:
    """``text`` with :data:`SIMULATOR_MARK` on a line of its own before it (once), cut to fit."""
    if text.startswith(SIMULATOR_MARK):
        return fit(text)
    return fit(f"{SIMULATOR_MARK}\n{text}")


def _utf16_len(ch: str) -> int:
    # Telegram counts UTF-16 code units: an emoji outside the BMP costs two.
    return 2 if ord(ch) > 0xFFFF else 1


def text_length(text: str) -> int:
    """Length of ``text`` as Telegram counts it (UTF-16 code units; markup counted, conservatively)."""
    return sum(_utf16_len(ch) for ch in text)


_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)\b[^<>]*>|&(?:#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);"
)


def fit(text: str, limit: int = MAX_TEXT) -> str:
    """Cut ``text`` to at most ``limit`` UTF-16 units, never inside a tag or an entity, closing
    any tag left open and marking the cut with an ellipsis (preferably at a line end)."""
    if text_length(text) <= limit:
        return text
    stack: list[str] = []
    best: tuple[int, tuple[str, ...]] = (0, ())
    best_line: tuple[int, tuple[str, ...]] | None = None
    used = 0  # UTF-16 units before position pos
    pos = 0
    ellipsis_cost = text_length(ELLIPSIS)
    while pos < len(text):
        closing_cost = sum(len(name) + 3 for name in stack)
        if used + ellipsis_cost + closing_cost <= limit:
            best = (pos, tuple(stack))
            if text[pos] == "\n":
                best_line = best
        else:
            break
        match = _TOKEN.match(text, pos)
        if match:
            token = match.group(0)
            if token.startswith("<"):
                name = match.group(2).lower()
                if match.group(1):
                    if name in stack:
                        del stack[len(stack) - 1 - stack[::-1].index(name)]
                elif not token.endswith("/>"):
                    stack.append(name)
            used += text_length(token)
            pos = match.end()
        else:
            used += _utf16_len(text[pos])
            pos += 1
    cut, open_tags = best
    # A line end close to the limit reads better than a word cut in half.
    if best_line is not None and best_line[0] >= cut - 400:
        cut, open_tags = best_line
    closing = "".join(f"</{name}>" for name in reversed(open_tags))
    return text[:cut] + ELLIPSIS + closing
