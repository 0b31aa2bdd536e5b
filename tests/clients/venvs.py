"""Virtual environments for the client libraries that cannot share the test venv, built on demand.

Pyrofork, Kurigram and the original Pyrogram all install the `pyrogram` module, Hydrogram pins its own
dependencies, and grammers needs Python >= 3.12: each gets its own venv under
``~/.cache/tgpersist/test-venvs/<key>`` (key: client, interpreter, this checkout's path and
its dependencies), with this checkout installed editable, so a source change needs no rebuild. Builds
are serialised by a file lock (parallel test sessions wait for one build) and bounded by a timeout;
pip's own cache makes a rebuild cheap. A missing interpreter or a failed build skips the test, except
on CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("TGPERSIST_TEST_VENVS", Path.home() / ".cache" / "tgpersist" / "test-venvs"))
BUILD_TIMEOUT = 900  # seconds for one venv build (pip install of a client and tgpersist's dependencies)
RUN_TIMEOUT = 240  # seconds for one script run inside a venv


@dataclass(frozen=True)
class Client:
    """A client library pinned for the tests; `min_python`: needs the newest Python at least that new
    (else the interpreter running the tests is used)."""

    name: str
    requirement: str
    min_python: tuple[int, int] | None = None


CLIENTS = {
    "pyrofork": Client("pyrofork", "pyrofork==2.3.69"),
    "hydrogram": Client("hydrogram", "hydrogram==0.2.0"),
    "pyrogram": Client("pyrogram", "pyrogram==2.0.106"),
    "grammers": Client("grammers", "grammers==0.4.8", (3, 12)),
}


def unavailable(reason: str) -> None:
    """Skip the test (fail it on CI, where every client must be tested)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _version_of(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter that really runs (pyenv shims of inactive versions do not)."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.fullmatch(r"(\d+) (\d+)\s*", out.stdout) if out.returncode == 0 else None
    return (int(found[1]), int(found[2])) if found else None


def _candidates() -> list[str]:
    """Interpreters worth trying: this one, `python3.X` on PATH, then pyenv's versions."""
    found = [sys.executable]
    for minor in range(20, 10, -1):
        path = shutil.which(f"python3.{minor}")
        if path:
            found.append(path)
    pyenv = shutil.which("pyenv")
    root = os.environ.get("PYENV_ROOT")
    if root is None and pyenv is not None:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30, check=False)
        root = out.stdout.strip() if out.returncode == 0 else None
    if root:
        found.extend(str(p) for p in sorted(Path(root).glob("versions/3.*/bin/python3")))
    return found


def newest_python(minimum: tuple[int, int]) -> tuple[str, tuple[int, int]] | None:
    """The newest working interpreter of at least `minimum` on this machine, with its version."""
    best: tuple[str, tuple[int, int]] | None = None
    for python in _candidates():
        version = _version_of(python)
        if version is not None and version >= minimum and (best is None or version > best[1]):
            best = (python, version)
    return best


def _key(client: Client, python: str, version: tuple[int, int]) -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = json.dumps([project["requires-python"], sorted(project["dependencies"])])
    digest = hashlib.sha256()
    for part in (client.requirement, python, str(version), str(REPO), dependencies):
        digest.update(part.encode() + b"\0")
    return f"{client.name}-py{version[0]}.{version[1]}-{digest.hexdigest()[:12]}"


def _build(venv: Path, python: str, client: Client) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", client.requirement, "-e", str(REPO)],
    ]
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:4])}... failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def client_python(name: str) -> Path:
    """The Python of a venv with client `name` and this checkout installed (built once, then cached)."""
    client = CLIENTS[name]
    if client.min_python is None:
        python, version = sys.executable, (sys.version_info[0], sys.version_info[1])
    else:
        chosen = newest_python(client.min_python)
        if chosen is None:
            unavailable(f"{client.name} needs Python >= {'.'.join(map(str, client.min_python))}; none found")
            raise AssertionError("unreachable")
        python, version = chosen
    venv = CACHE / _key(client, python, version)
    ready = venv / "tgpersist-test-venv.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            try:
                _build(venv, python, client)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                unavailable(f"could not build a venv for {client.requirement}: {error}")
            ready.write_text(json.dumps({"client": client.requirement, "python": python}))
    return venv / "bin" / "python"


def run_in(name: str, module: str, *args: str) -> dict[str, object]:
    """Run `python -m module args...` in client `name`'s venv; returns the JSON its last line prints."""
    python = client_python(name)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    done = subprocess.run(
        [str(python), "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, (
        f"{module} failed in the {name} venv:\n{done.stdout[-3000:]}{done.stderr[-6000:]}"
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"{module} printed nothing:\n{done.stderr[-3000:]}"
    result: dict[str, object] = json.loads(lines[-1])
    return result
