"""The benchmark report's writer (bench/report.py) on canned figures: its tables give every figure
absolute, beside its floor and as a ratio; checked counts against their expected values; a
benchmark that did not run says why; the pictures are written where REPORT.md links them. No
benchmark runs here and no timing is asserted."""

from __future__ import annotations

import re

from bench.report import RUNNERS, write
from bench.report_model import Figure, Machine, Section, plot_path

MACHINE = Machine(cpus=2, model="Canned CPU", python="3.11.2", commit="abc123def456", started="2026-01-02 03:04 UTC",
                  load_before=(7.5, 6.0, 5.0), load_after=(9.25, 7.0, 5.5), minutes=4.2)  # fmt: skip


def canned() -> list[Section]:
    intake = Section("webhook", "Webhook intake against the bare endpoint", ".venv/bin/python -m bench.webhook",
                     "the bare Flask endpoint", "bare Flask")  # fmt: skip
    intake.figures = [
        Figure("webhook, sqlite, 1,000 stored", "p50 @ 200/s", 3.0, "ms", 1.5),
        Figure("webhook, sqlite, 1,000 stored", "max throughput", 600.0, "alerts/s", 2400.0),
        Figure("of which enqueue", "p50", 0.5, "ms"),
    ]
    chaos = Section("chaos", "The chaos run's counts", ".venv/bin/python -m bench.chaos --minutes 1", "none")
    chaos.figures = [
        Figure("sent", "", 120, "", expected="—", ok=True),
        Figure("lost", "", 0, "", expected="0", ok=True),
        Figure("fills recorded twice", "", 2, "", expected="0", ok=False),
        Figure("notices sent twice", "", 3, "", expected="<= 5", shown="3 in 2 message(s)"),
    ]
    missing = Section("soak", "The worker's memory after N orders", ".venv/bin/python -m bench.soak", "",
                      error="`bench.soak` is not in this checkout.")  # fmt: skip
    return [intake, chaos, missing]


def table_rows(report: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in report.splitlines()
        if line.startswith("| ")
    ]


def test_every_figure_is_given_absolute_beside_its_floor_and_as_a_ratio(tmp_path):
    write(canned(), MACHINE, True, tmp_path)
    rows = table_rows((tmp_path / "REPORT.md").read_text())
    assert ["webhook, sqlite, 1,000 stored", "p50 @ 200/s", "3.00 ms", "1.50 ms", "2.00x"] in rows
    assert [
        "webhook, sqlite, 1,000 stored",
        "max throughput",
        "600 alerts/s",
        "2,400 alerts/s",
        "0.25x",
    ] in rows
    assert ["of which enqueue", "p50", "0.50 ms", "—", "—"] in rows  # no floor: no ratio invented


def test_checked_counts_show_their_expected_value_and_a_miss_stands_out(tmp_path):
    write(canned(), MACHINE, False, tmp_path)
    rows = table_rows((tmp_path / "REPORT.md").read_text())
    assert ["sent", "120", "—", ""] in rows
    assert ["lost", "0", "0", "yes"] in rows
    assert ["fills recorded twice", "2", "0", "**NO**"] in rows
    assert ["notices sent twice", "3 in 2 message(s)", "<= 5", "yes"] in rows


def test_the_machine_and_the_kind_of_run_are_described(tmp_path):
    write(canned(), MACHINE, True, tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "2 x Canned CPU" in report and "`abc123def456`" in report and "3.11.2" in report
    assert "| load average (1 / 5 / 15 min) before | 7.50 / 6.00 / 5.00 |" in report
    assert "| load average (1 / 5 / 15 min) after | 9.25 / 7.00 / 5.50 |" in report
    assert "`--quick`" in report and "shared 2-core" in report
    write(canned(), MACHINE, False, tmp_path)
    full = (tmp_path / "REPORT.md").read_text()
    assert "the full default run" in full and "shared 2-core" not in full


def test_a_benchmark_that_did_not_run_says_why_and_has_no_picture(tmp_path):
    sections = canned()
    write(sections, MACHINE, True, tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "Not run: `bench.soak` is not in this checkout." in report
    assert "- [The worker's memory after N orders](#the-workers-memory-after-n-orders) (not run)" in report
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert (
        pictures
        == [plot_path(sections[0]), plot_path(sections[1])]
        == ["report/webhook.png", "report/chaos.png"]
    )
    for picture in pictures:
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["chaos.png", "webhook.png"]


def test_the_runner_table_names_each_benchmark_once():
    names = [r.name for r in RUNNERS]
    assert len(names) == len(set(names))
    assert {"webhook", "latency", "notices", "burst", "memory", "soak", "chaos"} <= set(names)
