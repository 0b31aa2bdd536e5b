"""Importing `.session` files of Kurigram (written by Kurigram itself) and of the older Pyrogram-family
schemas found in the wild, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from pyrogram.storage import SQLiteStorage

from tests.importers.clients import (
    API_ID,
    AUTH_KEY,
    CHANNEL_PTS,
    OLD_PYROGRAM_PEERS,
    PYROGRAM_PEERS,
    STATE,
    USER_ID,
    contents,
    edit,
    make_pyrogram_file,
    old_pyrogram_file,
    peer_facts,
    sqlite_rows,
)
from tgpersist import ChannelState, Peer, PeerType, Session, Store, UnsupportedSessionFile
from tgpersist.importers import ImportResult, SessionExists, import_session_file, read_session_file


async def kurigram_view(path: Path, peer_ids: list[int]) -> dict[str, Any]:
    """What Kurigram itself reads from the file (on a copy: Kurigram upgrades old schemas in place)."""
    copy = path.with_name("kurigram-view.session")
    shutil.copy(path, copy)
    storage = SQLiteStorage("kurigram-view", workdir=path.parent)
    await storage.open()
    try:
        fields = ("dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
        view = {field: await getattr(storage, field)() for field in fields}
        view["test_mode"], view["is_bot"] = bool(view["test_mode"]), bool(view["is_bot"])
        view["peers"] = {}
        for peer_id in peer_ids:
            with contextlib.suppress(KeyError):  # not stored
                view["peers"][peer_id] = await storage.get_peer_by_id(peer_id)
        view["states"] = {s.id: (s.pts, s.qts, s.date, s.seq) for s in await storage.get_update_states()}
        return view
    finally:
        await storage.close()
        copy.unlink()


def stored_view(session: Session) -> dict[str, Any]:
    fields = ("dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "user_id", "is_bot")
    return {field: getattr(session, field) for field in fields}


MARKED = [101, 102, -55, -1000000001234, -1000000001235, -1000000001236]


@pytest.mark.parametrize(
    ("dc_id", "test_mode", "address", "port", "is_bot"),
    [
        (4, False, None, None, False),  # Kurigram's own default address: DC 2's
        (4, False, "149.154.167.91", 443, True),
        (4, False, "2001:67c:4e8:f004::a", 443, False),
        (2, True, "149.154.167.40", 80, False),
    ],
)
async def test_a_kurigram_file_imports_with_identical_values(
    store: Store,
    tmp_path: Path,
    dc_id: int,
    test_mode: bool,
    address: str | None,
    port: int | None,
    is_bot: bool,
) -> None:
    path = await make_pyrogram_file(
        tmp_path, dc_id=dc_id, test_mode=test_mode, address=address, port=port, is_bot=is_bot
    )
    result = await import_session_file(store, path, "kuri")
    assert result == ImportResult(
        name="kuri", source="pyrogram file (schema 7)", peers=6, channels=1, update_state=True, replaced=False
    )
    account = store.account("kuri")
    session = await account.session.load()
    assert session is not None
    view = await kurigram_view(path, MARKED)
    assert stored_view(session) == {k: view[k] for k in stored_view(session)}
    assert (session.dc_id, session.api_id, session.auth_key, session.user_id) == (
        dc_id,
        API_ID,
        AUTH_KEY,
        USER_ID,
    )
    assert (session.test_mode, session.is_bot) == (test_mode, is_bot)
    assert session.date == sqlite_rows(path, "SELECT date FROM sessions")[0][0]
    assert peer_facts(await account.peers.list()) == PYROGRAM_PEERS
    for peer in await account.peers.list():
        if peer.type is not PeerType.CHAT:
            assert view["peers"][peer.dialog_id].access_hash == peer.access_hash
    assert await account.updates.load_state() == STATE
    assert await account.updates.list_channels() == [ChannelState(1234, CHANNEL_PTS)]
    assert view["states"][0] == (STATE.pts, STATE.qts, STATE.date, STATE.seq)
    assert view["states"][-1000000001234][0] == CHANNEL_PTS
    second = await account.peers.get_by_username("Helper2")
    assert second is not None and (second.id, second.type, second.username) == (
        102,
        PeerType.BOT,
        "helper_bot",
    )


@pytest.mark.parametrize(
    ("version", "fork"),
    [
        (1, "kurigram"),
        (2, "kurigram"),
        (3, "kurigram"),
        (4, "kurigram"),
        (5, "kurigram"),
        (6, "kurigram"),
        (4, "pyrofork"),
    ],
)
async def test_older_pyrogram_schemas_import_as_the_clients_read_them(
    store: Store, tmp_path: Path, version: int, fork: str
) -> None:
    path = old_pyrogram_file(tmp_path / "old.session", version, fork=fork, dc_id=5)
    snapshot = read_session_file(path, "old")
    # Before Kurigram's schema 7 there is no address: from the DC table, as Kurigram's upgrade does.
    assert snapshot.filled_from_dc_table == ("server_address", "port")
    await import_session_file(store, path, "old")
    account = store.account("old")
    session = await account.session.load()
    assert session is not None
    assert (session.server_address, session.port) == ("91.108.56.130", 443)
    assert session.api_id == (API_ID if version >= 3 else None)
    if fork == "kurigram":  # Kurigram upgrades these lineages; its view must match ours
        view = await kurigram_view(path, MARKED)
        assert {k: v for k, v in stored_view(session).items() if k != "api_id"} == {
            k: view[k] for k in stored_view(session) if k != "api_id"
        }
        for peer in await account.peers.list():
            if peer.type is not PeerType.CHAT:
                assert view["peers"][peer.dialog_id].access_hash == peer.access_hash
        assert len(view["peers"]) == (0 if version == 1 else len(OLD_PYROGRAM_PEERS))
    expected = [] if version == 1 else OLD_PYROGRAM_PEERS
    if version < 4 and fork == "kurigram":  # no usernames table yet: only the peers.username column
        expected = [(i, t, h, n[:1], p) for i, t, h, n, p in expected]
    assert peer_facts(await account.peers.list()) == expected
    has_state = fork == "pyrofork" or version >= 5
    assert await account.updates.load_state() == (STATE if has_state else None)
    assert await account.updates.list_channels() == ([ChannelState(1234, CHANNEL_PTS)] if has_state else [])


async def test_null_update_state_fields_count_as_zero_and_pts_less_channels_are_skipped(
    store: Store, tmp_path: Path
) -> None:
    path = await make_pyrogram_file(tmp_path, state=None, channels=())
    edit(
        path,
        "INSERT INTO update_state VALUES (0, 10, NULL, NULL, NULL)",
        "INSERT INTO update_state VALUES (-1000000001235, NULL, 3, NULL, NULL)",
        "INSERT INTO update_state VALUES (77, 1, 1, 1, 1)",
    )
    snapshot = read_session_file(path, "n")
    assert snapshot.update_state is not None and snapshot.update_state.pts == 10
    assert snapshot.update_state.date == 0 and snapshot.channels == ()
    assert snapshot.notes == (
        "update_state row -1000000001235 ignored: it holds no pts",
        "update_state row 77 ignored: neither the account nor a channel",
    )


# -- refusals leave the target database unchanged ------------------------------------------------------


async def _existing(store: Store) -> None:
    account = store.account("kuri")
    await account.session.save(Session(name="kuri", dc_id=1, auth_key=bytes(256), user_id=7))
    await account.peers.save(Peer(9, PeerType.USER, 99, username="kept"))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (["UPDATE peers SET access_hash = NULL WHERE id = 101"], "peers row 101: access hash is NULL"),
        (
            ["UPDATE peers SET access_hash = NULL WHERE id = -1000000001236"],
            "access hash is NULL, which a forum",
        ),
        (["UPDATE peers SET type = 'secret' WHERE id = 101"], "peers row 101: unknown peer type 'secret'"),
        (["UPDATE peers SET type = 'user' WHERE id = -55"], "peers row -55: a user id cannot be a chat id"),
        (["UPDATE peers SET id = 0 WHERE id = 101"], "peers row 0: peer_id"),
        (["INSERT INTO usernames VALUES (101, 'bad name')"], "peers row 101: usernames"),
        (["UPDATE peers SET phone_number = 'call me' WHERE id = 101"], "phone_number"),
        (["UPDATE sessions SET auth_key = NULL"], "not logged in"),
        (["UPDATE sessions SET user_id = NULL"], "not logged in"),
        (["DELETE FROM sessions"], "the sessions table is empty"),
        (["UPDATE sessions SET server_address = NULL, dc_id = 7"], "dc_id: 7 is not a known production DC"),
        (["UPDATE update_state SET pts = -1 WHERE id = 0"], "update_state row 0: pts"),
        (["ALTER TABLE usernames RENAME COLUMN username TO name"], "usernames has columns id, name"),
        (["ALTER TABLE peers DROP COLUMN type"], "table 'peers' lacks type"),
    ],
)
async def test_a_bad_pyrogram_file_raises_and_changes_nothing(
    store: Store, tmp_path: Path, damage: list[str], problem: str
) -> None:
    await _existing(store)
    before = await contents(store)
    path = edit(await make_pyrogram_file(tmp_path), *damage)
    for name, replace in (("kuri", True), ("other", False)):
        with pytest.raises(UnsupportedSessionFile) as info:
            await import_session_file(store, path, name, replace=replace)
        assert problem in str(info.value)
    assert await contents(store) == before


async def test_a_null_access_hash_is_fine_for_a_group(store: Store, tmp_path: Path) -> None:
    path = edit(await make_pyrogram_file(tmp_path), "UPDATE peers SET access_hash = NULL WHERE id = -55")
    await import_session_file(store, path, "g")
    group = await store.account("g").peers.get(-55)
    assert group is not None and (group.type, group.access_hash) == (PeerType.CHAT, None)


async def test_a_fresh_kurigram_file_is_not_logged_in(store: Store, tmp_path: Path) -> None:
    storage = SQLiteStorage("fresh", workdir=tmp_path)
    await storage.open()
    await storage.close()
    with pytest.raises(UnsupportedSessionFile, match="not logged in"):
        await import_session_file(store, tmp_path / "fresh.session", "fresh")
    assert await store.list_sessions() == []


async def test_an_existing_session_is_replaced_only_when_asked(store: Store, tmp_path: Path) -> None:
    await _existing(store)
    before = await contents(store)
    path = await make_pyrogram_file(tmp_path)
    with pytest.raises(SessionExists):
        await import_session_file(store, path, "kuri")
    assert await contents(store) == before
    assert (await import_session_file(store, path, "kuri", replace=True)).replaced is True
    assert peer_facts(await store.account("kuri").peers.list()) == PYROGRAM_PEERS
