"""SQLite files: one we create is 0600 (and so are SQLite's -wal/-shm beside it); an exposed one is reported.

These are SQLite-only by nature: a PostgreSQL store has no file of ours.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import tgpersist
from tgpersist import Session
from tgpersist.sql.files import create_private_file, sqlite_file, warn_if_exposed
from tgpersist.validation import AUTH_KEY_LENGTH


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_a_database_file_we_create_is_private(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "tg.db"
    async with await tgpersist.open_store(f"sqlite+aiosqlite:///{path}") as store:
        await store.account("a").session.save(Session("a", auth_key=b"k" * AUTH_KEY_LENGTH))
        companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(p.exists() for p in companions)  # WAL mode, while the store is open
        assert {p.name: mode(p) for p in [path, *companions]} == {
            "tg.db": 0o600,
            "tg.db-wal": 0o600,
            "tg.db-shm": 0o600,
        }
    assert mode(path) == 0o600


async def test_migrations_through_a_url_create_a_private_file(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "migrated.db"
    await tgpersist.migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    assert mode(path) == 0o600


async def test_an_exposed_existing_file_is_reported_by_path_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with await tgpersist.open_store(url):
        pass
    caplog.set_level(logging.WARNING, logger="tgpersist")
    async with await tgpersist.open_store(url):
        pass
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    path.chmod(0o644)
    async with await tgpersist.open_store(url) as store:
        await store.account("a").session.save(Session("a", auth_key=b"k" * AUTH_KEY_LENGTH))
        await store.list_sessions()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.getMessage()) for r in warnings] == [
        (
            "tgpersist.sql.files",
            f"SQLite database {path} is readable or writable by other users (mode 644); it holds auth "
            "keys: restrict it with `chmod 600`",
        )
    ]
    assert mode(path) == 0o644  # reported, not changed behind the owner's back


def test_file_helpers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.engine.url import make_url

    assert sqlite_file(make_url("sqlite+aiosqlite:///:memory:")) is None
    assert sqlite_file(make_url("sqlite+aiosqlite://")) is None
    assert sqlite_file(make_url("sqlite+aiosqlite:///rel/x.db")) == "rel/x.db"
    # SQLite URIs (issue 16, item 5): every form names its file; memory ones name none.
    named = {
        "sqlite+aiosqlite:///file:x.db?uri=true": "x.db",
        "sqlite+aiosqlite:///file:x.db?mode=rwc&uri=true": "x.db",
        "sqlite+aiosqlite:///file:/abs/x.db?uri=true": "/abs/x.db",
        "sqlite+aiosqlite:///file:///abs/a%20b.db?uri=true&cache=shared": "/abs/a b.db",
        "sqlite+aiosqlite:///file://localhost/abs/x.db?uri=true": "/abs/x.db",
        "sqlite+aiosqlite:///plain.db?uri=true": "plain.db",
        "sqlite+aiosqlite:///file:x.db": "file:x.db",  # without uri=true: a plain file name
        "sqlite+aiosqlite:///file:m?mode=memory&uri=true": None,
        "sqlite+aiosqlite:///file::memory:?uri=true": None,
        "sqlite+aiosqlite:///file://elsewhere/x.db?uri=true": None,  # SQLite refuses it
    }
    assert {url: sqlite_file(make_url(url)) for url in named} == named
    path = tmp_path / "f.db"
    assert create_private_file(str(path)) is True
    assert mode(path) == 0o600
    assert create_private_file(str(path)) is False  # exists: left alone
    assert create_private_file(str(tmp_path / "missing" / "f.db")) is False  # SQLite reports it
    caplog.set_level(logging.WARNING, logger="tgpersist")
    assert warn_if_exposed(str(path)) is False
    path.chmod(0o640)
    assert warn_if_exposed(str(path)) is True
    path.chmod(0o602)
    assert warn_if_exposed(str(path)) is True
    assert warn_if_exposed(str(tmp_path / "absent.db")) is False
    assert len(caplog.records) == 2


async def test_in_memory_databases_touch_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with await tgpersist.open_store("sqlite+aiosqlite:///:memory:") as store:
        await store.account("a").session.save(Session("a"))
    assert os.listdir(tmp_path) == []


URL_FORMS = {
    "uri-relative": "file:{name}?uri=true",
    "uri-mode-rwc": "file:{name}?mode=rwc&uri=true",
    "uri-absolute": "file:{dir}/{name}?uri=true",
    "uri-authority": "file://{dir}/{name}?uri=true&cache=private",
    "relative": "{name}",
    "absolute": "{dir}/{name}",
}


@pytest.mark.parametrize("form", list(URL_FORMS.values()), ids=list(URL_FORMS))
async def test_every_url_form_makes_a_private_file_and_reports_an_exposed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    """Issue 16, item 5: `file:` URIs (and mode=rwc) got 0644 files with 0644 -wal/-shm, no warning."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite+aiosqlite:///" + form.format(dir=tmp_path, name="tg.db")
    path = tmp_path / "tg.db"
    old = os.umask(0o022)
    try:
        async with await tgpersist.open_store(url) as store:
            await store.account("a").session.save(Session("a", auth_key=b"k" * AUTH_KEY_LENGTH))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert {p.name: mode(p) for p in files} == {
                "tg.db": 0o600,
                "tg.db-wal": 0o600,
                "tg.db-shm": 0o600,
            }
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path)) == ["tg.db"]
    path.chmod(0o666)
    caplog.set_level(logging.WARNING, logger="tgpersist")
    async with await tgpersist.open_store(url) as store:
        assert await store.list_sessions() == ["a"]
    warned = [r.getMessage() for r in caplog.records if r.name == "tgpersist.sql.files"]
    assert warned == [
        f"SQLite database {path} is readable or writable by other users (mode 666); it holds auth "
        "keys: restrict it with `chmod 600`"
    ]


async def test_an_exposed_wal_file_is_reported_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tg.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with await tgpersist.open_store(url):
        pass
    wal = f"{path}-wal"
    os.close(os.open(wal, os.O_CREAT | os.O_WRONLY, 0o644))
    os.chmod(wal, 0o644)
    caplog.set_level(logging.WARNING, logger="tgpersist")
    async with await tgpersist.open_store(url):
        pass
    assert [r.getMessage().split(" is ")[0] for r in caplog.records if r.name == "tgpersist.sql.files"] == [
        f"SQLite database {wal}"
    ]
