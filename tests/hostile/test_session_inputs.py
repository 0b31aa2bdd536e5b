"""Hostile session strings and `.session` files of every supported client (Telethon, Kurigram/Pyrogram):
mutated bytes and mutated rows of real files, mutated real strings. Each import stores the session
or raises `InvalidSessionString`/`UnsupportedSessionFile` (naming the file); a failed one stores nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hostile.support import INT_EDGES, unchanged_unless_accepted
from tests.importers.clients import make_pyrogram_file, make_telethon_file
from tests.importers.test_strings import kurigram_string, telethon_string
from tgpersist import InvalidArgument, InvalidSessionString, Store, TgPersistError, UnsupportedSessionFile
from tgpersist.importers import ImportResult, import_session_file, import_session_string, read_session_file

CLIENTS = ("telethon", "kurigram")


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """The bytes of one real file per client, and real strings (made once per module)."""
    workdir = tmp_path_factory.mktemp("clients")
    files = {
        "telethon": make_telethon_file(workdir / "t").read_bytes(),
        "kurigram": asyncio.run(make_pyrogram_file(workdir)).read_bytes(),
        "telethon-string": telethon_string("149.154.167.91").encode(),
        "telethon6-string": telethon_string("2001:67c:4e8:f004::a").encode(),
        "kurigram-string": asyncio.run(kurigram_string(False)).encode(),
    }
    yield files


def checked(result: Any, *types: type[TgPersistError]) -> None:
    assert isinstance(result, (ImportResult, *types)), repr(result)


# -- session strings -------------------------------------------------------------------------------------
edits = st.lists(
    st.tuples(st.sampled_from(["replace", "delete", "insert"]), st.integers(0, 400), st.characters()),
    min_size=1,
    max_size=4,
)


def edited(text: str, changes: list[tuple[str, int, str]]) -> str:
    for kind, at, char in changes:
        at = at % (len(text) + 1)
        if kind == "replace" and at < len(text):
            text = text[:at] + char + text[at + 1 :]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at:]
    return text


@settings()
@given(
    which=st.sampled_from(["telethon-string", "telethon6-string", "kurigram-string"]),
    changes=edits,
    cut=st.none() | st.integers(0, 400),
)
@example(which="telethon-string", changes=[("replace", 0, "2")], cut=None)
@example(which="kurigram-string", changes=[("replace", 0, "\x00")], cut=None)
async def test_mutated_session_strings(
    store: Store,
    originals: dict[str, bytes],
    which: str,
    changes: list[tuple[str, int, str]],
    cut: int | None,
) -> None:
    text = edited(originals[which].decode(), changes)
    text = text if cut is None else text[:cut]
    result = await unchanged_unless_accepted(
        store, import_session_string(store, text, f"s-{uuid.uuid4().hex}")
    )
    checked(result, InvalidSessionString, InvalidArgument)


@settings()
@given(text=st.text(st.characters(exclude_categories=()), max_size=400) | st.binary(max_size=400))
async def test_arbitrary_session_strings(store: Store, text: Any) -> None:
    result = await unchanged_unless_accepted(
        store, import_session_string(store, text, f"s-{uuid.uuid4().hex}")
    )
    checked(result, InvalidSessionString, InvalidArgument)


# -- session files: mutated bytes ------------------------------------------------------------------------
@settings()
@given(
    client=st.sampled_from(CLIENTS),
    changes=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
    header=st.booleans(),
)
async def test_session_files_with_mutated_bytes(
    store: Store,
    originals: dict[str, bytes],
    tmp_path: Path,
    client: str,
    changes: list[tuple[int, int]],
    header: bool,
) -> None:
    data = bytearray(originals[client])
    for offset, value in changes:
        data[offset % (100 if header else len(data))] = value
    path = tmp_path / f"{uuid.uuid4().hex}.session"
    path.write_bytes(bytes(data))
    result = await unchanged_unless_accepted(
        store, asyncio.wait_for(import_session_file(store, path, f"f-{uuid.uuid4().hex}"), 30)
    )
    checked(result, UnsupportedSessionFile)
    if isinstance(result, UnsupportedSessionFile):
        assert str(result).startswith(f"{path}: ")


# -- session files: mutated rows -------------------------------------------------------------------------
#: Values SQLite will store in any column (it does not enforce declared types).
SQL_VALUES = st.one_of(
    st.sampled_from([*map(str, INT_EDGES), "9e999", "-9e999", "NULL", "''", "X''", "X'00ff'", "0.5", "-1"]),
    st.sampled_from(["CAST(X'ff00fe' AS TEXT)", "CAST(X'c328' AS TEXT)", "zeroblob(300)", "'x' || char(0)"]),
    st.text(max_size=20).map(lambda t: "'" + t.replace("'", "''").replace("\x00", "") + "'"),
    st.integers().map(str),
)


def columns_of(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sorted((t, row[1]) for t in tables for row in conn.execute(f'PRAGMA table_info("{t}")'))
    finally:
        conn.close()


@settings()
@given(client=st.sampled_from(CLIENTS), pick=st.integers(0, 1000), value=SQL_VALUES, delete=st.booleans())
@example(client="telethon", pick=0, value="9e999", delete=False)
async def test_session_files_with_mutated_rows(
    store: Store,
    originals: dict[str, bytes],
    tmp_path: Path,
    client: str,
    pick: int,
    value: str,
    delete: bool,
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.session"
    path.write_bytes(originals[client])
    candidates = columns_of(path)
    table, column = candidates[pick % len(candidates)]
    conn = sqlite3.connect(path)
    try:
        if delete:
            conn.execute(f'DELETE FROM "{table}"')
        else:
            conn.execute(f'UPDATE "{table}" SET "{column}" = {value}')
        conn.commit()
    except sqlite3.Error:  # a constraint of the file itself refused the edit: nothing to test
        return
    finally:
        conn.close()
    name = f"r-{uuid.uuid4().hex}"
    result = await unchanged_unless_accepted(
        store, asyncio.wait_for(import_session_file(store, path, name), 30)
    )
    checked(result, UnsupportedSessionFile)
    if isinstance(result, ImportResult):
        stored = await store.account(name).session.load()
        assert stored == read_session_file(path, name).session


@pytest.mark.parametrize("path", [None, 3, b"/tmp/x.session", "bad\x00name.session", ["x"]])
async def test_what_is_no_path_is_an_invalid_argument(store: Store, path: Any) -> None:
    result = await unchanged_unless_accepted(store, import_session_file(store, path, "p"))
    assert isinstance(result, InvalidArgument) and result.field == "path", repr(result)
