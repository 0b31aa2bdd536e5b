"""Telling Telethon files from Pyrogram ones, and refusing everything else with one clear error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.importers.clients import contents, make_pyrogram_file, make_telethon_file
from tgpersist import Store, UnsupportedSessionFile
from tgpersist.importers import FileFormat, detect, import_session_file, read_session_file


async def test_each_client_is_recognised(tmp_path: Path) -> None:
    assert detect(make_telethon_file(tmp_path / "t")) is FileFormat.TELETHON
    assert detect(await make_pyrogram_file(tmp_path, "p")) is FileFormat.PYROGRAM


def _sqlite(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


def foreign_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the error must say)."""
    empty = tmp_path / "empty.session"
    empty.write_bytes(b"")
    text = tmp_path / "text.session"
    text.write_text("this is not a database\n")
    damaged = tmp_path / "damaged.session"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    (tmp_path / "folder.session").mkdir()
    return {
        "empty": (empty, "the file is empty"),
        "text": (text, "not an SQLite database"),
        "damaged": (damaged, "not a readable SQLite database"),
        "folder": (tmp_path / "folder.session", "is a directory"),
        "missing": (tmp_path / "missing.session", "no such file"),
        "no tables": (_sqlite(tmp_path / "blank.session", "create table t (x)", "drop table t"), "no tables"),
        "other app": (
            _sqlite(
                tmp_path / "other.session", "create table users (id integer)", "create table version (v)"
            ),
            "unknown schema: users, version",
        ),
        "telethon-ish": (
            _sqlite(
                tmp_path / "half.session",
                "create table version (version integer)",
                "create table sessions (dc_id integer)",
                "create table entities (id integer)",
                "insert into version values (8)",
            ),
            "table 'sessions' lacks auth_key, port, server_address",
        ),
        "pyrogram-ish": (
            _sqlite(
                tmp_path / "halfpyro.session",
                "create table version (number integer)",
                "create table sessions (dc_id integer, auth_key blob)",
                "create table peers (id integer)",
                "insert into version values (7)",
            ),
            "table 'sessions' lacks is_bot, test_mode, user_id",
        ),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "text",
        "damaged",
        "folder",
        "missing",
        "no tables",
        "other app",
        "telethon-ish",
        "pyrogram-ish",
    ],
)
async def test_foreign_files_raise_unsupported_session_file_and_change_nothing(
    store: Store, tmp_path: Path, kind: str
) -> None:
    await import_session_file(store, make_telethon_file(tmp_path / "existing"), "existing")
    before = await contents(store)
    path, problem = foreign_files(tmp_path)[kind]
    with pytest.raises(UnsupportedSessionFile) as info:
        await import_session_file(store, path, "new")
    assert problem in str(info.value)
    assert str(path) in str(info.value)
    assert await contents(store) == before
    with pytest.raises(UnsupportedSessionFile):
        read_session_file(path, "new")


def test_reading_never_writes_to_the_file(tmp_path: Path) -> None:
    path = make_telethon_file(tmp_path / "ro")
    before = path.read_bytes()
    path.chmod(0o400)
    try:
        read_session_file(path, "ro")
    finally:
        path.chmod(0o600)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.session"]
