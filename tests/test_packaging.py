"""The installed package carries its migrations: a wheel in a fresh virtual environment, used from
another directory, runs `tgpersist db ...` and `tgpersist.migrate` on SQLite and PostgreSQL.

The wheel and the virtual environment are built once per test session (slow: pip installs the
dependencies into a plain venv, which cannot see this checkout or its editable install).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_migrate import FIRST, HEAD, REPO, REVISIONS, version_rows

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH and no VIRTUAL_ENV of ours: the fresh venv must find everything it needs itself.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _ok(args: list[str], cwd: Path) -> str:
    result = _run(args, cwd)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A wheel of this checkout, installed (not editable) into a new plain venv."""
    root = tmp_path_factory.mktemp("packaging")
    wheels = root / "wheels"
    _ok(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        root,
    )
    (wheel,) = wheels.glob("tgpersist-*.whl")
    venv = root / "venv"
    _ok([sys.executable, "-m", "venv", str(venv)], root)
    _ok(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        root,
    )
    return Installed(wheel, venv)


def test_the_wheel_ships_the_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {
        "tgpersist/migrations/env.py",
        "tgpersist/migrations/script.py.mako",
        *(f"tgpersist/migrations/versions/{p.name}" for p in (REPO / "migrations" / "versions").glob("*.py")),
        "tgpersist/py.typed",
    } <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tgpersist = tgpersist.cli:main" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_the_installed_package_is_not_this_checkout(installed: Installed, tmp_path: Path) -> None:
    out = _ok(
        [
            installed.bin("python"),
            "-c",
            "import tgpersist, tgpersist.migrate as m; print(tgpersist.__file__); print(m.script_location())",
        ],
        tmp_path,
    )
    package, migrations = out.splitlines()
    site = installed.venv / "lib"
    assert Path(package).is_relative_to(site)
    assert Path(migrations).is_relative_to(site)
    assert Path(migrations).name == "migrations"
    assert not Path(package).is_relative_to(REPO)


async def test_installed_cli_from_another_directory(
    installed: Installed, backend: str, db_url: str, tmp_path: Path
) -> None:
    # On SQLite exactly the documented command: a relative file in the current directory.
    url = "sqlite+aiosqlite:///x.db" if backend == "sqlite" else db_url
    tgpersist = installed.bin("tgpersist")
    assert _ok([tgpersist, "db", "upgrade", "--url", url], tmp_path) == f"at {HEAD}\n"
    assert _ok([tgpersist, "db", "current", "--url", url], tmp_path) == f"{HEAD} (head)\n"
    assert _ok([tgpersist, "db", "check", "--url", url], tmp_path).startswith("ok: ")
    history = _ok([tgpersist, "db", "history", "--url", url], tmp_path)
    assert [line.split(":")[0] for line in history.splitlines()] == REVISIONS
    if backend == "sqlite":
        assert (tmp_path / "x.db").is_file()
        url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    assert await version_rows(url) == [HEAD]
    assert _ok([tgpersist, "db", "downgrade", "base", "--yes", "--url", url], tmp_path) == "at base\n"
    failed = _run([tgpersist, "db", "check", "--url", url], tmp_path)
    assert failed.returncode == 2  # no tables any more: a missing database
    assert failed.stderr.startswith("tgpersist: error: no tgpersist tables (prefix tgpersist_)")


INSTALLED_API = """
import asyncio, sys
import tgpersist
from tgpersist import migrate

async def main(url):
    await migrate.upgrade(url, "0001_core")
    print(await migrate.current(url))
    engine = tgpersist.create_engine(url)
    try:
        await migrate.upgrade(engine)
        print(await migrate.current(engine))
        await migrate.check(engine)
    finally:
        await engine.dispose()
    async with await tgpersist.open_store(url) as store:
        await store.account("pkg").updates.remember("k")
        print(await store.list_sessions())

asyncio.run(main(sys.argv[1]))
"""


async def test_installed_python_api_from_another_directory(
    installed: Installed, db_url: str, tmp_path: Path
) -> None:
    out = _ok([installed.bin("python"), "-c", INSTALLED_API, db_url], tmp_path)
    assert out.splitlines() == [f"('{FIRST}',)", f"('{HEAD}',)", "['pkg']"]


EXTRAS = (
    ("telethon", "tgpersist.adapters.telethon", "TelethonSession"),
    ("pyrogram", "tgpersist.adapters.pyrogram", "PyrogramStorage"),
    ("aiogram", "tgpersist.adapters.aiogram", "TgPersistStorage"),
)


def test_each_extra_installs_and_its_adapter_imports(installed: Installed, tmp_path: Path) -> None:
    """Without the extra an adapter names the extra to install; with it, the adapter imports.

    Runs last in this module: it adds the extras to the shared venv."""
    for extra, module, name in EXTRAS:
        missing = _run([installed.bin("python"), "-c", f"import {module}"], tmp_path)
        assert missing.returncode != 0
        assert f"tgpersist[{extra}]" in missing.stderr
        _ok(
            [installed.bin("pip"), "install", "-q", f"tgpersist[{extra}] @ {installed.wheel.as_uri()}"],
            tmp_path,
        )
        out = _ok(
            [installed.bin("python"), "-c", f"import {module}; print({module}.{name}.__name__)"], tmp_path
        )
        assert out.strip() == name
