"""How the tests run the console script: ``tv2ib ARGS`` as a subprocess with an explicit environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TV2IB = Path(sys.executable).with_name("tv2ib")  # the console script installed next to this Python


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``tv2ib ARGS`` with exactly ``env`` (plus PATH) in ``cwd``; never raises on a non-zero exit."""
    full_env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env}
    return subprocess.run([str(TV2IB), *args], env=full_env, cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip
