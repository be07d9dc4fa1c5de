"""The worker's metrics: reason classes stay a small fixed set, the collector's exposition, settings."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings, SettingsError
from worker.metrics import REASON_CLASSES, WorkerMetrics, reason_class

SECRET = "s" * 24


@pytest.mark.parametrize(
    ("reason", "status", "expected"),
    [
        ("trading paused", "rejected", "paused"),
        ("stale: 300s old (limit 120s), IB was not available in time", "rejected", "stale"),
        ("IB: Order rejected - reason: no trading permissions", "rejected", "broker"),
        ("unknown futures root 'ZZZ' in 'ZZZ1!'", "rejected", "symbol"),
        ("IB has no unique contract for STK FOO SMART USD: no security definition", "rejected", "symbol"),
        ("positionSize (target position) is not supported yet; send quantity", "rejected", "not_supported"),
        ("take-profit 189 is not above the entry reference 190", "rejected", "plan"),
        ("worker error: KeyError: 'x'", "failed", "error"),
        ("margin: needs 4,750,000 USD initial, available 1,000,000 USD (IB what-if ...)", "rejected", "risk"),
        ("", "rejected", "other"),
        # a test alert's refusal is classed by what refused it
        ("test: would be refused: risk: max_order_quantity 5 (defaults) exceeded", "rejected", "risk"),
        ("test: would be refused: trading paused", "rejected", "paused"),
    ],
)
def test_reason_classes(reason, status, expected):
    assert reason_class(reason, status) == expected


def test_rejections_counted_per_class_never_per_text():
    metrics = WorkerMetrics()
    metrics.count_events(
        [
            {"type": "alert_rejected", "status": "rejected", "reason": f"take-profit {p} is not above"}
            for p in range(50)
        ]
        + [{"type": "fill", "leg": "entry"}, {"type": "fill", "leg": "sl"}, {"type": "fill", "leg": None}]
        + [{"type": "order_rejected", "error_code": 201}, {"type": "alert_status", "status": "filled"}]
    )
    metrics.observe_alert_to_wire(0.012)
    metrics.observe_alert_to_wire(3.0)
    text = generate_latest(metrics.registry()).decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    rejected = {k[1][0][1]: v for k, v in found.items() if k[0] == "tv2ib_worker_alerts_rejected_total"}
    assert set(rejected) == set(REASON_CLASSES) and rejected["plan"] == 50 and sum(rejected.values()) == 50
    assert found[("tv2ib_worker_fills_total", (("leg", "entry"),))] == 1
    assert found[("tv2ib_worker_fills_total", (("leg", "other"),))] == 1
    assert found[("tv2ib_worker_order_rejections_total", ())] == 1
    assert found[("tv2ib_worker_alert_to_wire_seconds_bucket", (("le", "0.01"),))] == 0
    assert found[("tv2ib_worker_alert_to_wire_seconds_bucket", (("le", "0.015"),))] == 1
    assert found[("tv2ib_worker_alert_to_wire_seconds_bucket", (("le", "5.0"),))] == 2
    assert found[("tv2ib_worker_alert_to_wire_seconds_count", ())] == 2


def test_worker_metrics_settings_off_by_default_and_loopback():
    settings = Settings.from_mapping({"WEBHOOK_SECRET": SECRET})
    assert settings.worker_metrics_port == 0 and settings.worker_metrics_host == "127.0.0.1"
    chosen = Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "WORKER_METRICS_PORT": "9101",
                                    "WORKER_METRICS_HOST": "0.0.0.0"})  # fmt: skip
    assert (chosen.worker_metrics_port, chosen.worker_metrics_host) == (9101, "0.0.0.0")
    for bad in ("70000", "nine", "-1"):
        with pytest.raises(SettingsError, match="WORKER_METRICS_PORT"):
            Settings.from_mapping({"WEBHOOK_SECRET": SECRET, "WORKER_METRICS_PORT": bad})


def test_worker_package_does_not_import_app():
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "worker" / "metrics.py"
    assert "from app" not in source.read_text() and "import app" not in source.read_text()
