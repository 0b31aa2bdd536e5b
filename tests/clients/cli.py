"""The `tgpersist` command of the venv a client script runs in."""

from __future__ import annotations

import subprocess
import sys


def tgpersist_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `tgpersist ARGS...` with this interpreter (the client venv's, where tgpersist is installed)."""
    return subprocess.run(
        [sys.executable, "-m", "tgpersist.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
