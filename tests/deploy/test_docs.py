"""The guides stay honest about the tree: every link resolves (anchors too), every path and module
they name exists, nothing points outside the repository, the README stays a door (two commands,
the going-live guide on its first screen, at most 200 lines), every setting the code reads is in
docs/settings.md, the example files say what the guides say, and the exit codes the docs give are
the ones the processes return."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_deploy_files import _exposed_metric_names

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"
PAGES = [README, *DOCS, ROOT / "bench" / "README.md", ROOT / "ibsim" / "README.md"]
PACKAGES = "app|core|worker|cli|config|ibsim|bench"
# Paths the guides name that the trader creates (a copy of an example), not files of the tree.
USER_FILES = {"config/risk.yaml", "config/symbols.yaml"}
# A page another branch of the same issue adds (docs/architecture.md: the module walk); links to it
# are allowed to wait for that merge. Remove a name once its page is in the tree.


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    in_code = False
    for line in _text(page).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", _text(page), flags=re.S)
    inline = re.findall(r"\]\(([^)\s]+)\)", text)
    reference = re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, flags=re.M)
    return [t for t in inline + reference if not re.match(r"[a-z]+:", t)]


def test_every_guide_is_linked_from_the_readme() -> None:
    readme = _text(README)
    assert {p.name for p in DOCS} >= {"tradingview.md", "ib-gateway.md", "telegram.md", "production.md",
                                      "scaling.md", "security.md", "troubleshooting.md", "design.md",
                                      "positions.md", "intake.md", "settings.md", "cli.md"}  # fmt: skip
    for page in [*DOCS, ROOT / "bench" / "README.md"]:
        assert f"({page.relative_to(ROOT)})" in readme, page.name


def test_the_readme_is_a_door() -> None:
    """At most 200 lines; the two commands of a fresh machine, exactly; the going-live guide on
    the first screen; the test command is the one CI runs."""
    lines = _text(README).splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move reference material to docs/"
    first_screen = "\n".join(lines[:30])
    assert "(docs/production.md)" in first_screen and "going-live guide" in first_screen
    block = re.search(r"```sh\n(.*?)```", _text(README), re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["scripts/run", "scripts/test"]
    assert re.search(r"^\s*(exec\s+)?(\./)?scripts/test\b", _text(ROOT / ".ci" / "run"), re.M)


def test_links_resolve_to_files_and_headings() -> None:
    for page in PAGES:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: no heading #{anchor} in {path}"


def test_named_paths_exist() -> None:
    """Every repository path a page names in backticks exists (a file moved by a refactor leaves no
    stale name in the README or a guide)."""
    prefix = rf"(?:{PACKAGES}|deploy|scripts|tests|docs|\.ci)/"
    for page in PAGES:
        named = set(re.findall(rf"`({prefix}[\w./@-]*[\w/])", _text(page)))
        for path in named - USER_FILES:
            assert (ROOT / path).exists(), f"{page.relative_to(ROOT)}: names {path}, which does not exist"


def test_dotted_module_names_exist() -> None:
    """`core.relay.relay_once`, `worker.notify` ...: the module exists and defines the name after it."""
    for page in PAGES:
        for dotted in set(re.findall(rf"`((?:{PACKAGES})(?:\.\w+)+)", _text(page))):
            parts = dotted.split(".")
            if parts[-1] in {"ini", "py", "md", "yaml", "yml", "json", "toml", "conf"}:
                continue  # a file name (IB Gateway's config.ini), not a module
            for i in range(len(parts), 0, -1):
                module = ROOT.joinpath(*parts[:i])
                source = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
                if source.exists():
                    rest = parts[i:]
                    assert not rest or re.search(rf"\b{rest[0]}\b", _text(source)), (
                        f"{page.name}: names {dotted}, but {rest[0]} is not in {source.relative_to(ROOT)}"
                    )
                    break
            else:
                raise AssertionError(f"{page.name}: names {dotted}, a module that does not exist")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_nothing_points_outside_the_repository() -> None:
    """The project's design and its reference facts live in docs/: no file may send a reader to
    the sibling folder they once came from, which no user gets."""
    outside = ["../" + "shared", "shared" + "/design", "shared" + "/reference", "tws-" + "protocol.md",
               "platform-" + "facts.md"]  # fmt: skip
    found = []
    for path in _tracked_files():
        if path.suffix in {".png", ".ico", ".gz", ".pdf"} or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}: {word}" for word in outside if word in text]
    assert not found, found


def _settings_read_by_the_code() -> set[str]:
    names: set[str] = set()
    sources = [*ROOT.glob("config/settings*.py"), *ROOT.glob("config/settings/**/*.py")]
    for source in sources:
        names |= set(re.findall(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)[\"']", _text(source)))
    names -= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}  # log level values, not settings
    names |= set(re.findall(r"\"(TV2IB_URL)\"", _text(ROOT / "cli" / "settings.py")))
    names.add("PROMETHEUS_MULTIPROC_DIR")  # read by app/metrics.py through prometheus_client
    return names


def test_every_setting_is_documented() -> None:
    names = _settings_read_by_the_code()
    assert len(names) >= 45, sorted(names)  # the settings module moved? point this test at it
    page = _text(ROOT / "docs" / "settings.md")
    missing = sorted(n for n in names if f"`{n}`" not in page)
    assert not missing, f"docs/settings.md lacks {missing}"


def test_operations_metric_table_matches_the_code() -> None:
    text = _text(ROOT / "docs" / "operations.md")
    rows = [line.split("|")[1] for line in text.splitlines() if line.lstrip().startswith("| `tv2ib_")]
    listed = {name for cell in rows for name in re.findall(r"`(tv2ib_[a-z0-9_]+)", cell)}
    assert len(listed) >= 12
    exposed = _exposed_metric_names()
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exposed}
    assert listed <= exposed | families, listed - (exposed | families)
    worker_families = {n for n in families if n.startswith("tv2ib_worker_")}
    assert worker_families <= listed | {n + "_total" for n in listed} | {n[: -len("_total")] for n in listed}


def test_one_alert_template_in_one_place() -> None:
    """A TradingView message with placeholders is shown in docs/tradingview.md only, and its
    "The template" section holds exactly one."""
    for page in PAGES:
        if page.name == "tradingview.md":
            continue
        blocks = re.findall(r"```json\n(.*?)```", _text(page), re.S)
        assert not [b for b in blocks if "{{" in b], (
            f"{page.name} shows an alert template: link the one in docs/tradingview.md"
        )
    text = _text(ROOT / "docs" / "tradingview.md")
    section = text.split("## The template", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```json", section)) == 1


def test_tradingview_facts_cite_a_source_or_say_they_have_none() -> None:
    text = _text(ROOT / "docs" / "tradingview.md")
    section = text.split("## What TradingView guarantees, and what it does not", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fact")]
    assert len(rows) >= 10
    refs = dict(re.findall(r"^\[([\w-]+)\]: (\S+)$", section, re.M))
    for row in rows:
        source = row.rstrip(" |").rsplit("|", 1)[1]
        cited = [refs.get(r, "") for r in re.findall(r"\]\[([\w-]+)\]", source)]
        assert any(url.startswith("https://www.tradingview.com/support/") for url in cited) or re.search(
            r"\*\*(observed|unknown|unverified)\*\*", source
        ), row
    for fact in ("80 and 443", "3 seconds", "IPv6", "52.89.214.238", "500 and 599"):
        assert fact in section, fact


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in _text(path).splitlines() if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_env_examples_load_and_use_the_database_socket() -> None:
    """deploy/systemd's example files are valid settings, and DATABASE_URL is the peer-auth socket
    the guides describe (a TCP URL without a password fails against PostgreSQL's defaults)."""
    env = _env_file(ROOT / "deploy" / "systemd" / "tv2ib.env.example")
    env |= _env_file(ROOT / "deploy" / "systemd" / "worker-paper.env")
    settings = Settings.from_mapping(env)
    assert re.fullmatch(r"postgresql\+psycopg://tv2ib@/tv2ib\?host=/\S+", settings.database_url)
    assert settings.database_url in _text(ROOT / "docs" / "operations.md")
    assert settings.risk_file and settings.risk_file in _text(ROOT / "docs" / "production.md")
    assert settings.ib_port == 4002 and settings.trusted_proxies == 1


def test_the_ibc_example_sets_what_the_guides_name() -> None:
    ini = _env_file(ROOT / "deploy" / "ibc" / "config.ini.example")
    assert ini["TradingMode"] == "paper" and ini["OverrideTwsApiPort"] == "4002"
    assert ini["AcceptNonBrokerageAccountWarning"] == "yes" and ini["ReadOnlyApi"] == "no"
    assert re.fullmatch(r"\d\d:\d\d [AP]M", ini["AutoRestartTime"])  # IBC's format, no quotes
    assert re.fullmatch(r"\d\d:\d\d", ini["ColdRestartTime"])
    guide = _text(ROOT / "docs" / "ib-gateway.md")
    table = guide.split("### The settings that matter", 1)[1].split("\n## ", 1)[0]
    named = {k for cell in re.findall(r"^\| ([^|]+)\|", table, re.M) for k in re.findall(r"`(\w+)`", cell)}
    assert named and named <= set(ini), named - set(ini)


def test_reload_is_the_units_exec_reload() -> None:
    """The guides say `systemctl reload` re-reads the risk file: both units must send SIGHUP."""
    for unit in ("tv2ib-web.service", "tv2ib-worker@.service"):
        assert "ExecReload=/bin/kill -HUP $MAINPID" in _text(ROOT / "deploy" / "systemd" / unit)
    assert "systemctl reload tv2ib-worker@" in _text(ROOT / "docs" / "risk.md")


@pytest.mark.slow
def test_the_documented_exit_codes_are_the_processes_codes(tmp_path: Path) -> None:
    """docs/settings.md: a bad setting stops the worker with exit 2 and the web with exit 1."""
    table = _text(ROOT / "docs" / "settings.md").split("## When a setting is wrong", 1)[1]
    assert re.search(r"^\| execution worker .*?\| exit \*\*2\*\*", table, re.M)
    assert re.search(r"^\| web under gunicorn .*?\| exit \*\*1\*\*", table, re.M)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WEBHOOK_SECRET": "short"}
    worker = subprocess.run([sys.executable, "-m", "worker"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert worker.returncode == 2, worker.stderr
    assert "WEBHOOK_SECRET" in worker.stderr
    gunicorn = Path(sys.executable).with_name("gunicorn")
    web = subprocess.run([str(gunicorn), "app:create_app()", "-c", str(ROOT / "config" / "gunicorn.conf.py"),
                          "--chdir", str(ROOT), "--bind", "127.0.0.1:0"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert web.returncode == 1, web.stderr
    assert "tv2ib: configuration error: WEBHOOK_SECRET" in web.stderr
