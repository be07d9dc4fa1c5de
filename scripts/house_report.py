"""Figures about the shape of the code: the before/after table of a structural change.

    .venv/bin/python scripts/house_report.py            # a Markdown table on stdout
    .venv/bin/python scripts/house_report.py --json     # the same figures as JSON

Counts, over product code (app, cli, config, core, ibsim, worker): files and lines per package,
the largest classes and functions, ``dict[str, Any]`` / ``Any`` / ``# type: ignore``, import
circles between modules (imports under ``TYPE_CHECKING`` and inside functions count), README
lines, and how many worker test files need ibsim or a whole worker. Repeated blocks come from the
``duplicates`` command when it is on PATH (the tool library's; not part of the project).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "cli", "config", "core", "ibsim", "worker")
IBSIM_MARKERS = re.compile(r"\b(sim|running_worker|worker_env|ibsim|IBSim|SimServer|WorkerThread)\b")


def product_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def lines_per_package(files: list[Path]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for pkg in PACKAGES:
        mine = [f for f in files if f.relative_to(ROOT).parts[0] == pkg]
        out[pkg] = (len(mine), sum(len(f.read_text().splitlines()) for f in mine))
    return out


def largest(files: list[Path], kind: type, top: int) -> list[tuple[int, str]]:
    found = []
    for f in files:
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, kind) or (kind is ast.FunctionDef and isinstance(node, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((size, f"{f.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:top]


def functions_over(files: list[Path], limit: int) -> int:
    return sum(1 for size, _ in largest(files, ast.FunctionDef, 100_000) if size > limit)


def modules_over(files: list[Path], limit: int) -> list[str]:
    return [f"{f.relative_to(ROOT)} ({n})" for f in files if (n := len(f.read_text().splitlines())) > limit]


def type_counts(files: list[Path]) -> dict[str, int]:
    text = "\n".join(f.read_text() for f in files)
    return {
        "dict[str, Any]": len(re.findall(r"dict\[str, Any\]", text)),
        "Any": len(re.findall(r"\bAny\b", text)),
        "# type: ignore": len(re.findall(r"#\s*type:\s*ignore", text)),
    }


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    modules = {module_name(f): f for f in files}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, f in modules.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                # the module itself when it is one of ours, else the nearest package of ours above it
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def config_imports_app(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("config") for t in ts
                  if t == "app" or t.startswith("app."))  # fmt: skip


def duplicate_pairs() -> str:
    tool = shutil.which("duplicates")
    if tool is None:
        return "n/a (duplicates not on PATH)"
    done = subprocess.run([tool, "--seconds", "120", "--most", "1"], cwd=ROOT, capture_output=True, text=True)
    first = (done.stdout.splitlines() or ["?"])[0]
    return first


def worker_tests_needing_ibsim() -> tuple[int, int]:
    tests = sorted((ROOT / "tests" / "worker").glob("test_*.py"))
    needing = [t for t in tests if IBSIM_MARKERS.search(t.read_text())]
    return len(needing), len(tests)


def report() -> dict[str, object]:
    files = product_files()
    graph = import_graph(files)
    return {
        "packages": lines_per_package(files),
        "largest_classes": largest(files, ast.ClassDef, 5),
        "largest_functions": largest(files, ast.FunctionDef, 8),
        "functions_over_60": functions_over(files, 60),
        "modules_over_450": modules_over(files, 450),
        "types": type_counts(files),
        "import_circles": circles(graph),
        "config_imports_app": config_imports_app(graph),
        "duplicates": duplicate_pairs(),
        "readme_lines": len((ROOT / "README.md").read_text().splitlines()),
        "worker_tests_needing_ibsim": worker_tests_needing_ibsim(),
    }


def markdown(doc: dict[str, object]) -> str:
    rows = ["| figure | value |", "|---|---|"]
    for pkg, (count, lines) in doc["packages"].items():  # type: ignore[attr-defined]
        rows.append(f"| `{pkg}/` files / lines | {count} / {lines:,} |")
    for label in ("largest_classes", "largest_functions"):
        items = "; ".join(f"{name} ({size})" for size, name in doc[label])  # type: ignore[attr-defined]
        rows.append(f"| {label.replace('_', ' ')} | {items} |")
    rows.append(f"| product functions over 60 lines | {doc['functions_over_60']} |")
    rows.append(f"| product modules over 450 lines | {len(doc['modules_over_450'])}: "  # type: ignore[arg-type]
                f"{', '.join(doc['modules_over_450'])} |")  # type: ignore[arg-type]  # fmt: skip
    for key, value in doc["types"].items():  # type: ignore[attr-defined]
        rows.append(f"| `{key}` | {value} |")
    found = doc["import_circles"]
    rows.append(f"| import circles | {len(found)}: {'; '.join(' ↔ '.join(c) for c in found)} |")  # type: ignore[arg-type]
    rows.append(f"| config/ imports app/ | {', '.join(doc['config_imports_app']) or 'no'} |")  # type: ignore[arg-type]
    rows.append(f"| repeated blocks (duplicates) | {doc['duplicates']} |")
    rows.append(f"| README lines | {doc['readme_lines']} |")
    needing, total = doc["worker_tests_needing_ibsim"]  # type: ignore[misc]
    rows.append(f"| worker test files needing ibsim or a worker | {needing} of {total} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    doc = report()
    print(json.dumps(doc, indent=2, default=list) if args.json else markdown(doc))


if __name__ == "__main__":
    main()
