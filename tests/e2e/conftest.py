"""Fixtures for end-to-end tests: a :class:`procs.Stack` of real processes, torn down by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Stack


@pytest.fixture
def stack(tmp_path: Path, base_env: dict[str, str]) -> Iterator[Stack]:
    """An empty stack on the test's SQLite file and private Redis DB; start what you need."""
    handle = Stack(tmp_path, base_env)
    try:
        yield handle
    finally:
        handle.stop()
