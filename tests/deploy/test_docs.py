"""The guides stay connected to the tree: links resolve, named deploy files exist, the metric table
in docs/production.md lists exactly what the code exposes, and the README links every guide."""

from __future__ import annotations

import re
from pathlib import Path

from test_deploy_files import _exposed_metric_names

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PACKAGES = "app|core|worker|cli|config|ibsim|bench"


def test_every_guide_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert {p.name for p in DOCS} >= {"tradingview.md", "ib-gateway.md", "telegram.md", "production.md",
                                      "scaling.md", "security.md", "troubleshooting.md"}  # fmt: skip
    for page in DOCS:
        assert f"(docs/{page.name})" in readme, page.name


def test_relative_links_and_deploy_paths_exist() -> None:
    for page in [*DOCS, ROOT / "README.md"]:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#:]+)\)", text):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
        for path in set(re.findall(rf"`((?:{PACKAGES}|deploy|scripts|tests)/[\w./@-]+)`", text)):
            assert (ROOT / path).exists(), f"{page.name}: names {path}, which does not exist"


def test_dotted_module_names_exist() -> None:
    """`core.relay.relay_once`, `worker.notify` ...: the module exists and defines the name after it
    (a module moved by a refactor leaves no stale name in the README or a guide)."""
    for page in [*DOCS, ROOT / "README.md"]:
        for dotted in set(re.findall(rf"`((?:{PACKAGES})(?:\.\w+)+)", page.read_text())):
            parts = dotted.split(".")
            if parts[-1] in {"ini", "py", "md", "yaml", "yml", "json", "toml", "conf"}:
                continue  # a file name (IB Gateway's config.ini), not a module
            for i in range(len(parts), 0, -1):
                module = ROOT.joinpath(*parts[:i])
                source = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
                if source.exists():
                    rest = parts[i:]
                    assert not rest or re.search(rf"\b{rest[0]}\b", source.read_text()), (
                        f"{page.name}: names {dotted}, but {rest[0]} is not in {source.relative_to(ROOT)}"
                    )
                    break
            else:
                raise AssertionError(f"{page.name}: names {dotted}, a module that does not exist")


def test_production_metric_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "production.md").read_text()
    rows = [line.split("|")[1] for line in text.splitlines() if line.lstrip().startswith("| `tv2ib_")]
    listed = {name for cell in rows for name in re.findall(r"`(tv2ib_[a-z0-9_]+)", cell)}
    assert len(listed) >= 12
    exposed = _exposed_metric_names()
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exposed}
    assert listed <= exposed | families, listed - (exposed | families)
    worker_families = {n for n in families if n.startswith("tv2ib_worker_")}
    assert worker_families <= listed | {n + "_total" for n in listed} | {n[: -len("_total")] for n in listed}
