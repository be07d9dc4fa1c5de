"""The files in deploy/ are checked by their own tools (caddy, nginx, promtool, systemd-analyze), and
the Grafana dashboard only uses metrics the code exposes.

The tools come from Debian packages that ``scripts/ensure-deploy-tools`` installs; this test installs
nothing. Without a tool the check is skipped with the reason, except under CI (``CI=true``), where a
missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str, *extra_dirs: str) -> str:
    """The tool's path; skip (locally) or fail (CI) when it is not installed."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).is_file()), None
    )
    if found:
        return found
    message = f"{name} is not installed: run scripts/ensure-deploy-tools (Debian packages caddy nginx prometheus systemd)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload]


def test_caddyfile_is_valid_and_formatted(tmp_path: Path) -> None:
    caddy = tool("caddy")
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    config = DEPLOY / "caddy" / "Caddyfile"
    result = run([caddy, "validate", "--adapter", "caddyfile", "--config", str(config)], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    formatted = run([caddy, "fmt", str(config)], env=env)
    assert formatted.returncode == 0 and formatted.stdout == config.read_text(), "run: caddy fmt --overwrite"
    text = config.read_text()
    assert "flush_interval -1" in text  # server-sent events are not buffered
    assert re.search(r"@metrics path /metrics\s+respond @metrics 404", text)


def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = tool("nginx", "/usr/sbin")
    openssl = tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                "-days", "1", "-subj", "/CN=tv2ib.example.com"])  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = (DEPLOY / "nginx" / "tv2ib.conf").read_text()
    # two changes only: certbot's files do not exist here (a fresh certificate instead), and
    live = "/etc/letsencrypt/live/tv2ib.example.com/"
    assert site.count(live) == 2
    site = site.replace(live + "fullchain.pem", str(cert)).replace(live + "privkey.pem", str(key))
    # nginx -t binds every listen address, where ports 80 and 443 need root (free high ports instead)
    listens = {"80": str(free_port()), "443": str(free_port())}
    directive = re.compile(r"^(\s*listen (?:\[::\]:)?)(80|443)\b", re.MULTILINE)
    tested, changed = directive.subn(lambda m: m[1] + listens[m[2]], site)
    assert changed == 4
    (tmp_path / "site.conf").write_text(tested)
    temps = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n access_log off;\n {temps}\n include {tmp_path / 'site.conf'};\n}}\n"
    )
    result = run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", f"{tmp_path}/", "-e", "stderr"])
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    events = site[site.index("location ~ ^/(api/)?events$") :]
    assert "proxy_buffering off;" in events.split("}")[0]
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    result = run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.fixture
def unit_root(tmp_path: Path) -> Iterator[Path]:
    """A root directory for ``systemd-analyze --root``: the units, systemd's own targets, and stub
    executables at the paths the units name (the real install lives on the production host)."""
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    for unit in (DEPLOY / "systemd").glob("*.service"):
        shutil.copy(unit, units / unit.name)
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecReload=")):
                exe = line.split("=", 1)[1].split()[0]
                stub = root / exe.lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
    shutil.copy(units / "tv2ib-worker@.service", units / "tv2ib-worker@paper.service")
    yield root


def test_systemd_units_pass_systemd_analyze_verify(unit_root: Path) -> None:
    analyze = tool("systemd-analyze")
    units = unit_root / "etc" / "systemd" / "system"
    names = ["tv2ib-web.service", "tv2ib-worker@paper.service", "ib-gateway.service"]
    result = run([analyze, f"--root={unit_root}", "verify", *(str(units / n) for n in names)])
    # unknown keys are only warnings to systemd ("ignoring"): any output at all is a finding here
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_units_restart_always_and_workers_are_per_account() -> None:
    for unit in (DEPLOY / "systemd").glob("*.service"):
        assert re.search(r"^Restart=always$", unit.read_text(), re.M), unit.name
    worker = (DEPLOY / "systemd" / "tv2ib-worker@.service").read_text()
    assert "EnvironmentFile=/etc/tv2ib/worker-%i.env" in worker
    web = (DEPLOY / "systemd" / "tv2ib-web.service").read_text()
    assert "--bind 127.0.0.1:8000" in web  # only the proxy reaches gunicorn
    example = (DEPLOY / "systemd" / "worker-paper.env").read_text()
    assert re.search(r"^WORKER_METRICS_PORT=9101$", example, re.M)
    scrape = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "127.0.0.1:9101" in scrape and "127.0.0.1:8000" in scrape


def _exposed_metric_names() -> set[str]:
    """Every sample name /metrics and the worker can expose, from the code itself."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from app.metrics import WebhookMetrics
    from worker.metrics import WorkerMetrics

    web = WebhookMetrics()
    web.observe("accepted", 202, 0.01)
    worker = WorkerMetrics(
        account="DU1", client_id=1, ib_connected=lambda: True, pacing=lambda: (0, 0.0),
        pacing_violations=lambda: 0, jobs_done=lambda: 0, notice_backlog=lambda: 0,
    )  # fmt: skip
    worker.sample_notice_backlog()
    names = {"tv2ib_alerts_waiting"}  # from the database at scrape time (app.metrics.BacklogCollector)
    for registry in (web.registry, worker.registry()):
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            names.update(s.name for s in family.samples)
    return names


def test_grafana_dashboard_uses_only_existing_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tv2ib-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in re.findall(r"\btv2ib_[a-z0-9_]+", expr)}
    exposed = _exposed_metric_names()
    assert used - exposed == set(), (
        f"the dashboard queries metrics the code does not expose: {used - exposed}"
    )
    # and it shows the worker's side, not only the web's
    assert {"tv2ib_worker_ib_connected", "tv2ib_worker_alert_to_wire_seconds_bucket"} <= used
    rules = (DEPLOY / "prometheus" / "tv2ib-alerts.yml").read_text()
    assert set(re.findall(r"\btv2ib_[a-z0-9_]+", rules)) - exposed == set()
