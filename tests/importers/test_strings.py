"""Storing session strings made by Telethon and Kurigram, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyrogram.storage import SQLiteStorage
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from tests.importers.clients import API_ID, AUTH_KEY, USER_ID, contents, make_telethon_file
from tgpersist import InvalidSessionString, Store
from tgpersist.importers import ImportResult, SessionExists, import_session_file, import_session_string


def telethon_string(address: str) -> str:
    session = StringSession()
    session.set_dc(4, address, 443)
    session.auth_key = AuthKey(AUTH_KEY)
    return str(session.save())


async def kurigram_string(test_mode: bool) -> str:
    storage = SQLiteStorage("s", workdir=Path("."), in_memory=True)
    await storage.open()
    await storage.dc_id(2)
    await storage.api_id(API_ID)
    await storage.test_mode(test_mode)
    await storage.auth_key(AUTH_KEY)
    await storage.user_id(USER_ID)
    await storage.is_bot(True)
    text = await storage.export_session_string()
    await storage.close()
    return str(text)


@pytest.mark.parametrize("address", ["149.154.167.91", "2001:67c:4e8:f004::a"])
async def test_a_telethon_string_is_stored_identically(store: Store, address: str) -> None:
    result = await import_session_string(store, telethon_string(address), "tele")
    assert result == ImportResult(
        name="tele",
        source="telethon string",
        peers=0,
        channels=0,
        update_state=False,
        replaced=False,
        notes=(
            "the string does not carry api_id",
            "the string does not carry user_id",
            "the string does not carry is_bot",
        ),
    )
    session = await store.account("tele").session.load()
    assert session is not None
    assert (session.dc_id, session.server_address, session.port, session.auth_key) == (
        4,
        address,
        443,
        AUTH_KEY,
    )
    assert (session.user_id, session.test_mode) == (None, False)


@pytest.mark.parametrize(
    ("test_mode", "address", "port"), [(False, "149.154.167.51", 443), (True, "149.154.167.40", 80)]
)
async def test_a_kurigram_string_is_stored_with_the_address_from_the_dc_table(
    store: Store, test_mode: bool, address: str, port: int
) -> None:
    result = await import_session_string(store, await kurigram_string(test_mode), "kuri", format="pyrogram")
    assert result.filled_from_dc_table == ("server_address", "port")
    assert result.source == "pyrogram string"
    session = await store.account("kuri").session.load()
    assert session is not None
    stored = (
        session.dc_id,
        session.api_id,
        session.test_mode,
        session.auth_key,
        session.user_id,
        session.is_bot,
    )
    assert stored == (2, API_ID, test_mode, AUTH_KEY, USER_ID, True)
    assert (session.server_address, session.port) == (address, port)


async def test_bad_strings_and_taken_names_change_nothing(store: Store, tmp_path: Path) -> None:
    await import_session_file(store, make_telethon_file(tmp_path / "alice"), "alice")
    before = await contents(store)
    good = telethon_string("149.154.167.91")
    for bad in ("", good[:-4], "2" + good[1:], good[:200] + "*" + good[201:]):
        with pytest.raises(InvalidSessionString):
            await import_session_string(store, bad, "new")
        with pytest.raises(InvalidSessionString):
            await import_session_string(store, bad, "alice", replace=True)
    with pytest.raises(SessionExists):
        await import_session_string(store, good, "alice")
    assert await contents(store) == before
    assert (await import_session_string(store, good, "alice", replace=True)).replaced is True
    account = store.account("alice")
    assert await account.peers.count() == 0  # the file's peers went with the replaced session
    assert await account.updates.load_state() is None
