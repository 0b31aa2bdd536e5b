"""The README's `Use` snippet runs as written (no undefined names), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def use_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Use\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "no python block in the README's Use section"
    return match.group(1)


def test_the_use_snippet_runs_as_written(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "use.py"
    script.write_text(use_snippet(), encoding="utf-8")
    env = {**os.environ, "TGPERSIST_URL": db_url}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("new message; bob is Peer(")
