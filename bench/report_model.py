"""The benchmark report's figures and its Markdown: pure (no process, no clock, no plotting).

A runner of ``bench/report_runs.py`` turns one benchmark's results into ``Section`` s; each
``Figure`` carries its floor from the same run (the bare Flask endpoint for intake, the plain
ib_async script for webhook -> last leg, ...), so the report prints it absolute and as a ratio.
``render`` writes ``REPORT.md``; ``plot_path`` names each section's picture.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One measured figure. ``floor``: the same figure of the section's floor in the same run
    (None when it has none); ``expected``: for counts checked against a value (the chaos run)."""

    row: str
    metric: str
    value: float
    unit: str
    floor: float | None = None
    expected: str = ""
    ok: bool | None = None  # checked by the benchmark itself (None: check ``expected`` here)
    shown: str = ""  # the value as the benchmark gave it, when not a plain number

    @property
    def meets(self) -> bool:
        """Whether a checked count meets its expected value."""
        return self.ok if self.ok is not None else _meets(self)

    @property
    def ratio(self) -> float | None:
        """value / floor; None without a floor (or a floor of 0 or NaN)."""
        if self.floor is None or not self.floor or math.isnan(self.floor):
            return None
        return self.value / self.floor


@dataclass
class Section:
    """One part of the report: what was run, against which floor, its figures and notes."""

    key: str
    title: str
    command: str
    floor: str
    floor_name: str = ""  # the floor in a few words, for the pictures' legends
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def has_expected(self) -> bool:
        return any(f.expected for f in self.figures)


@dataclass(frozen=True)
class Machine:
    """Where and when the figures were taken."""

    cpus: int
    model: str
    python: str
    commit: str
    started: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    minutes: float


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def plot_path(section: Section) -> str:
    """The section's picture, relative to REPORT.md."""
    return f"report/{slug(section.key)}.png"


def number(value: float | None, unit: str = "") -> str:
    """A figure as the report prints it: 3 significant digits, thousands separated, its unit."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "n/a"
    if value == int(value) and unit in ("", "alerts", "messages"):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"


def section_table(section: Section) -> list[str]:
    """The section's figures as a Markdown table: absolute, the floor's, the ratio (or, for checked
    counts, the expected value)."""
    if section.has_expected:
        lines = ["| count | value | expected | ok |", "|---|---|---|---|"]
        for f in section.figures:
            ok = "" if f.expected in ("", "—") else ("yes" if f.meets else "**NO**")
            lines.append(f"| {f.row} | {f.shown or number(f.value, f.unit)} | {f.expected or '—'} | {ok} |")
        return lines
    lines = ["| what | figure | value | floor | ratio to floor |", "|---|---|---|---|---|"]
    for f in section.figures:
        floor = number(f.floor, f.unit) if f.floor is not None else "—"
        lines.append(
            f"| {f.row} | {f.metric} | {number(f.value, f.unit)} | {floor} | {ratio_text(f.ratio)} |"
        )
    return lines


def _meets(figure: Figure) -> bool:
    """A count against its expected text: a number, or "<= N" / "≤ N"."""
    text = figure.expected.replace("≤", "<=").strip()
    try:
        if text.startswith("<="):
            return figure.value <= float(text[2:])
        return figure.value == float(text)
    except ValueError:
        return True  # a description, not a number: nothing to check here


def machine_lines(machine: Machine, quick: bool) -> list[str]:
    load = lambda la: " / ".join(f"{x:.2f}" for x in la)  # noqa: E731
    mode = "`--quick` (small samples: a look, not a measurement)" if quick else "the full default run"
    return [
        "| machine | |",
        "|---|---|",
        f"| run | {mode}, started {machine.started}, {machine.minutes:.1f} min |",
        f"| CPU | {machine.cpus} x {machine.model} |",
        f"| load average (1 / 5 / 15 min) before | {load(machine.load_before)} |",
        f"| load average (1 / 5 / 15 min) after | {load(machine.load_after)} |",
        f"| Python | {machine.python} |",
        f"| git commit | `{machine.commit}` |",
    ]


def render(sections: list[Section], machine: Machine, quick: bool, preface: list[str]) -> str:
    """REPORT.md: the preface, the machine, a summary of every section, then each in full."""
    out = ["# tv2ib benchmark report", "", *preface, "", *machine_lines(machine, quick), ""]
    out += ["## Contents", ""]
    out += [f"- [{s.title}](#{anchor(s.title)})" + (" (not run)" if s.error else "") for s in sections]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        out += [f"Command: `{section.command}`", ""]
        if section.error:
            out += [f"Not run: {section.error}"]
            continue
        if section.floor:
            out += [f"Floor: {section.floor}", ""]
        out += section_table(section)
        out += ["", f"![{section.title}]({plot_path(section)})"]
        if section.notes:
            out += [""] + [f"- {note}" for note in section.notes]
    return "\n".join(out) + "\n"
