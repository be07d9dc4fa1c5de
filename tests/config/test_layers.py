"""The layers of the code: the settings at the bottom, and no import circle in the web app, the
shared core, the settings, the command line or the notices.

Imports are counted as ``scripts/house_report.py`` counts them: every one, also those under
``TYPE_CHECKING`` and inside functions, and ``from package import module`` as an import of the
package too (importing the module runs the package's ``__init__`` first).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
LAYERED = ("app", "core", "config", "cli", "worker.notify")


def house_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("house_report", ROOT / "scripts" / "house_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("house_report", module)
    spec.loader.exec_module(module)
    return module


def ours(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in LAYERED)


def test_the_settings_import_nothing_of_the_app() -> None:
    report = house_report()
    assert report.config_imports_app(report.import_graph(report.product_files())) == []


def test_no_import_circle_in_the_app_core_settings_cli_or_notices() -> None:
    report = house_report()
    circles = report.circles(report.import_graph(report.product_files()))
    assert [c for c in circles if any(ours(m) for m in c)] == []
