"""The CI entry point passes pytest's exit code through, including 5 ("no tests collected")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_ci_run_fails_when_no_test_is_collected():
    env = dict(os.environ, PYTEST_ADDOPTS="-k no_test_has_this_name_zzz -p no:cacheprovider -q")
    result = subprocess.run(
        [str(ROOT / ".ci" / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 5, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no tests" in result.stderr


def test_alembic_has_one_head():
    from core.db import head_revision

    assert head_revision()  # raises when the migrations have more than one head
