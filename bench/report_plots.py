"""The report's pictures: one PNG per section (matplotlib, no display needed).

Horizontal bars, one panel per unit with each figure beside its floor (grey, hatched), then one
panel of the ratios to the floor with a line at 1x; a section of checked counts (the chaos run)
gets one panel, its bars green where the count meets its expected value and red where not.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from bench.report_model import Figure, Section, number, ratio_text  # noqa: E402

TV2IB, FLOOR, BAD = "#1f77b4", "#b0b0b0", "#d62728"


def _label(f: Figure) -> str:
    return f"{f.row}\n{f.metric}" if f.metric else f.row


def _log_if_wide(ax: plt.Axes, values: list[float], label: str) -> None:
    """The x axis's label; a log scale (said in the label) when the values span more than 30x."""
    positive = [v for v in values if v and v > 0 and not math.isnan(v)]
    if positive and max(positive) / min(positive) > 30:
        ax.set_xscale("log")
        label += ", log scale"
    ax.set_xlabel(label)


def _absolute(ax: plt.Axes, figures: list[Figure], unit: str, floor_name: str) -> None:
    y = list(range(len(figures)))
    values = [f.value for f in figures]
    floors = [f.floor if f.floor is not None else math.nan for f in figures]
    has_floor = any(not math.isnan(v) for v in floors)
    height = 0.38 if has_floor else 0.7
    ax.barh([i - height / 2 if has_floor else i for i in y], values, height, color=TV2IB, label="tv2ib")
    if has_floor:
        ax.barh(
            [i + height / 2 for i in y], floors, height, color=FLOOR, hatch="//", label=f"floor: {floor_name}"
        )
    for i, (v, fl) in enumerate(zip(values, floors, strict=True)):
        ax.annotate(number(v, unit), (v, i - (height / 2 if has_floor else 0)), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)  # fmt: skip
        if not math.isnan(fl):
            ax.annotate(number(fl, unit), (fl, i + height / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7, color="#555")  # fmt: skip
    ax.set_yticks(y, [_label(f) for f in figures], fontsize=7)
    ax.invert_yaxis()
    _log_if_wide(ax, values + [v for v in floors if not math.isnan(v)], unit or "count")
    ax.set_title(f"absolute ({unit or 'count'})", fontsize=9)
    ax.margins(x=0.18)


def _ratios(ax: plt.Axes, figures: list[Figure]) -> None:
    ratios = [f.ratio or math.nan for f in figures]
    y = list(range(len(figures)))
    ax.barh(y, ratios, 0.6, color=TV2IB)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="the floor (1x)")
    for i, r in enumerate(ratios):
        ax.annotate(ratio_text(r), (r, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(y, [_label(f) for f in figures], fontsize=7)
    ax.invert_yaxis()
    _log_if_wide(ax, ratios + [1.0], "ratio to the floor (x, same run)")
    ax.set_title("ratio to the floor", fontsize=9)
    ax.margins(x=0.18)


def _counts(ax: plt.Axes, figures: list[Figure]) -> None:
    y = list(range(len(figures)))
    colors = [
        TV2IB if not f.expected or f.expected == "—" else ("#2ca02c" if f.meets else BAD) for f in figures
    ]
    ax.barh(y, [f.value for f in figures], 0.6, color=colors)
    for i, f in enumerate(figures):
        note = f" (expected {f.expected})" if f.expected and f.expected != "—" else ""
        ax.annotate((f.shown or number(f.value, f.unit)) + note, (f.value, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)  # fmt: skip
    ax.set_yticks(y, [f.row for f in figures], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("count")
    ax.set_title("counts (green: as expected, red: not; blue: no expectation)", fontsize=9)
    ax.margins(x=0.35)


def plot(section: Section, path: Path) -> None:
    """Draw ``section`` into ``path`` (PNG)."""
    if section.has_expected:
        panels: list[tuple[str, list[Figure]]] = [("counts", section.figures)]
    else:
        units: dict[str, list[Figure]] = {}
        for f in section.figures:
            units.setdefault(f.unit, []).append(f)
        panels = [(unit, figures) for unit, figures in units.items()]
        with_floor = [f for f in section.figures if f.ratio is not None]
        if with_floor:
            panels.append(("ratio", with_floor))
    heights = [0.42 * len(figures) + 1.1 for _, figures in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights) + 0.6), height_ratios=heights,
                             squeeze=False)  # fmt: skip
    for ax, (kind, figures) in zip(axes[:, 0], panels, strict=True):
        if section.has_expected:
            _counts(ax, figures)
        elif kind == "ratio":
            _ratios(ax, figures)
        else:
            _absolute(ax, figures, kind, section.floor_name)
    fig.suptitle(section.title, fontsize=11, fontweight="bold", x=0.02, ha="left")
    legend: dict[str, object] = {}
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(
            legend.values(), legend.keys(), loc="upper right", ncol=len(legend), fontsize=8, frameon=False
        )
    top = 1 - 0.32 / (sum(heights) + 0.6)
    fig.tight_layout(rect=(0, 0, 1, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
