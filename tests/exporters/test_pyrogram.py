"""Exported Kurigram `.session` files, opened by Kurigram itself; stores on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pyrogram import raw
from pyrogram.storage import SQLiteStorage

from tests.exporters.account import AUTH_KEY, CHANNELS, STATE, USER_ID, fill
from tests.importers.clients import peer_facts, sqlite_rows
from tgpersist import InvalidArgument, Store
from tgpersist.exporters import ExportResult, export_session_file
from tgpersist.importers import import_session_file


async def kurigram_open(path: Path) -> SQLiteStorage:
    storage = SQLiteStorage(path.stem, workdir=path.parent)
    await storage.open()
    return storage


async def session_values(storage: SQLiteStorage) -> dict[str, Any]:
    fields = (
        "dc_id",
        "server_address",
        "port",
        "api_id",
        "test_mode",
        "auth_key",
        "user_id",
        "is_bot",
        "date",
    )
    return {field: await getattr(storage, field)() for field in fields}


@pytest.mark.parametrize(
    ("address", "test_mode"),
    [("149.154.167.91", False), ("2001:67c:4e8:f004::a", False), ("149.154.167.40", True)],
)
async def test_kurigram_opens_the_exported_file_with_identical_values(
    store: Store, tmp_path: Path, address: str, test_mode: bool
) -> None:
    await fill(store, server_address=address, test_mode=test_mode, dc_id=2 if test_mode else 4)
    out = tmp_path / "alice.session"
    result = await export_session_file(store, "alice", out, "pyrogram")
    assert result == ExportResult(
        path=out, format="pyrogram", peers=8, skipped=1, channels=2, update_state=True
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sqlite_rows(out, "SELECT number FROM version") == [(7,)]  # current: Kurigram will not upgrade it

    storage = await kurigram_open(out)
    try:
        assert await session_values(storage) == {
            "dc_id": 2 if test_mode else 4,
            "server_address": address,
            "port": 443,
            "api_id": 24680,
            "test_mode": int(test_mode),
            "auth_key": AUTH_KEY,
            "user_id": USER_ID,
            "is_bot": 0,
            "date": 1_700_000_999,
        }
        alice = raw.types.InputPeerUser(user_id=101, access_hash=-(2**63))
        assert await storage.get_peer_by_id(101) == alice
        assert await storage.get_peer_by_username("alice") == alice
        assert await storage.get_peer_by_username("alice_two") == alice
        assert await storage.get_peer_by_phone_number("15550101") == alice
        assert await storage.get_peer_by_id(102) == raw.types.InputPeerUser(
            user_id=102, access_hash=2**63 - 1
        )
        assert await storage.get_peer_by_id(-55) == raw.types.InputPeerChat(chat_id=55)
        assert await storage.get_peer_by_username("newschan") == raw.types.InputPeerChannel(
            channel_id=1234, access_hash=99
        )
        for bare, access_hash in ((1235, -98), (1236, 97), (1237, 96), (1238, 95)):
            peer = await storage.get_peer_by_id(-1_000_000_000_000 - bare)
            assert peer == raw.types.InputPeerChannel(channel_id=bare, access_hash=access_hash)
        with pytest.raises(KeyError):
            await storage.get_peer_by_id(103)
        states = {s.id: (s.pts, s.qts, s.date, s.seq) for s in await storage.get_update_states()}
    finally:
        await storage.close()
    assert states == {
        0: (STATE.pts, STATE.qts, STATE.date, STATE.seq),
        -1000000001234: (900, None, None, None),
        -1000000001235: (901, None, None, None),
    }
    types = dict(sqlite_rows(out, "SELECT id, type FROM peers"))
    assert types == {
        101: "user",
        102: "bot",
        -55: "group",
        -1000000001234: "channel",
        -1000000001235: "supergroup",
        -1000000001236: "forum",
        -1000000001237: "direct",
        -1000000001238: "community",
    }


async def test_an_exported_file_imports_back_identically(store: Store, tmp_path: Path) -> None:
    await fill(store)
    out = tmp_path / "back.session"
    await export_session_file(store, "alice", out, "pyrogram")
    await import_session_file(store, out, "back")
    original, back = store.account("alice"), store.account("back")
    s1, s2 = await original.session.load(), await back.session.load()
    assert s1 is not None and s2 is not None
    for field in (
        "dc_id",
        "server_address",
        "port",
        "api_id",
        "auth_key",
        "user_id",
        "is_bot",
        "test_mode",
        "date",
    ):
        assert getattr(s2, field) == getattr(s1, field)
    expected = [
        (i, t, h if h is not None else 0, tuple(n.lower() for n in names), phone and "15550101")
        for i, t, h, names, phone in peer_facts(await original.peers.list())
        if i != 103
    ]
    assert peer_facts(await back.peers.list()) == expected
    assert await back.updates.load_state() == STATE
    assert await back.updates.list_channels() == CHANNELS


async def test_an_unknown_bot_flag_is_written_as_false_and_reported(store: Store, tmp_path: Path) -> None:
    await fill(store, is_bot=None, server_address=None, port=None)
    result = await export_session_file(store, "alice", tmp_path / "a.session", "pyrogram")
    assert result.assumed == ("is_bot",)
    assert result.filled_from_dc_table == ("server_address", "port")
    storage = await kurigram_open(tmp_path / "a.session")
    try:  # Kurigram treats a session with any of these None as logged out and would re-authorise
        assert None not in [
            await storage.test_mode(),
            await storage.auth_key(),
            await storage.user_id(),
            await storage.is_bot(),
        ]
        assert (await storage.server_address(), await storage.port()) == ("149.154.167.91", 443)
    finally:
        await storage.close()


async def test_a_session_without_user_id_is_refused(store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"  # apart from the SQLite store's own files
    tmp_path.mkdir()
    await fill(store, user_id=None)
    with pytest.raises(InvalidArgument) as info:
        await export_session_file(store, "alice", tmp_path / "u.session", "pyrogram")
    assert info.value.field == "user_id"
    assert list(tmp_path.iterdir()) == []
