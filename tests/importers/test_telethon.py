"""Importing `.session` files written by Telethon itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from telethon.sessions import SQLiteSession
from telethon.tl import types as tl

from tests.importers.clients import (
    AUTH_KEY,
    CHANNEL_PTS,
    OTHER_KEY,
    SENT_FILES,
    STATE,
    TELETHON_PEERS,
    USER_ID,
    contents,
    edit,
    make_telethon_file,
    peer_facts,
    telethon_at_schema,
)
from tgpersist import ChannelState, Peer, PeerType, Session, Store, UnsupportedSessionFile
from tgpersist.importers import ImportResult, SessionExists, import_session_file, read_session_file, writer
from tgpersist.repositories.updates import UpdateRepository


def telethon_view(path: Path) -> tuple[object, ...]:
    """What Telethon itself reads from the file (on a copy: Telethon upgrades old schemas in place)."""
    copy = path.with_name("telethon-view.session")
    shutil.copy(path, copy)
    session = SQLiteSession(str(copy))
    try:
        key = session.auth_key.key if session.auth_key else None
        try:
            self_id = session.get_input_entity(0).access_hash
        except ValueError:
            self_id = None
        states = {
            entity_id: (s.pts, s.qts, int(s.date.timestamp()), s.seq)
            for entity_id, s in session.get_update_states()
        }
        return session.dc_id, session.server_address, session.port, key, self_id, states.get(0)
    finally:
        session.close()
        copy.unlink()


@pytest.mark.parametrize(
    ("address", "port", "test_mode"),
    [("149.154.167.91", 443, False), ("2001:67c:4e8:f004::a", 443, False), ("149.154.167.40", 80, True)],
)
async def test_a_telethon_file_imports_with_identical_values(
    store: Store, tmp_path: Path, address: str, port: int, test_mode: bool
) -> None:
    path = make_telethon_file(tmp_path / "alice", address=address, port=port)
    result = await import_session_file(store, path, "alice")
    assert result == ImportResult(
        name="alice",
        source="telethon file (schema 8)",
        peers=6,
        channels=1,
        update_state=True,
        replaced=False,
        filled_from_dc_table=("test_mode",) if test_mode else (),
        sent_files=2,
    )
    account = store.account("alice")
    session = await account.session.load()
    assert session is not None
    stored = (session.dc_id, session.server_address, session.port, session.auth_key, session.user_id)
    assert stored == (4, address, port, AUTH_KEY, USER_ID)
    assert session.test_mode is test_mode
    assert telethon_view(path) == (*stored, (STATE.pts, STATE.qts, STATE.date, STATE.seq))
    assert peer_facts(await account.peers.list()) == TELETHON_PEERS
    assert await account.updates.load_state() == STATE
    assert await account.updates.list_channels() == [ChannelState(1234, CHANNEL_PTS)]
    assert await account.files.list() == SENT_FILES
    by_name = await account.peers.get_by_username("@NewsChan")
    by_phone = await account.peers.get_by_phone("+1 555 0101")
    assert by_name is not None and (by_name.id, by_name.type, by_name.title) == (
        1234,
        PeerType.CHANNEL,
        "News",
    )
    assert by_phone is not None and (by_phone.id, by_phone.first_name) == (101, "Alice Smith")


async def test_the_newest_of_two_entities_claiming_a_username_keeps_it(store: Store, tmp_path: Path) -> None:
    entities = [tl.User(301, access_hash=1, username="dup"), tl.User(302, access_hash=2, username="dup")]
    path = make_telethon_file(tmp_path / "dup", entities=entities)
    edit(
        path,
        "update entities set date = 2000 where id = 301",
        "update entities set date = 1000 where id = 302",
    )
    telethon = SQLiteSession(str(path))
    assert telethon.get_input_entity("dup").user_id == 301  # Telethon's own rule
    telethon.close()
    await import_session_file(store, path, "dup")
    owner = await store.account("dup").peers.get_by_username("dup")
    assert owner is not None and owner.id == 301
    assert {p.id: p.usernames for p in await store.account("dup").peers.list()} == {301: ("dup",), 302: ()}


@pytest.mark.parametrize(
    ("version", "peers", "state"), [(7, True, True), (6, True, True), (5, False, True), (3, False, False)]
)
async def test_older_telethon_schemas_import_as_telethon_reads_them(
    store: Store, tmp_path: Path, version: int, peers: bool, state: bool
) -> None:
    path = telethon_at_schema(make_telethon_file(tmp_path / "old"), version)
    snapshot = read_session_file(path, "old")
    assert snapshot.source == f"telethon file (schema {version})"
    await import_session_file(store, path, "old")
    account = store.account("old")
    session = await account.session.load()
    assert session is not None
    view = telethon_view(path)  # Telethon upgrades (and, below schema 6, empties its entities)
    # Below schema 6 the self entity goes too: neither Telethon nor we know the user id then.
    assert (session.dc_id, session.server_address, session.port, session.auth_key, session.user_id) == view[
        :5
    ]
    assert peer_facts(await account.peers.list()) == (TELETHON_PEERS if peers else [])
    assert (await account.updates.load_state() == STATE) is state
    assert view[5] == ((STATE.pts, STATE.qts, STATE.date, STATE.seq) if state else None)


async def test_many_peers_import_in_batches_with_progress(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "BATCH", 1000)
    entities = [
        tl.User(10_000 + i, access_hash=i, username=f"user_{i}", phone=f"4470000{i:05d}") for i in range(2500)
    ]
    path = make_telethon_file(tmp_path / "many", entities=entities, channels=())
    seen: list[tuple[int, int]] = []
    result = await import_session_file(
        store, path, "many", progress=lambda done, total: seen.append((done, total))
    )
    assert result.peers == 2500
    assert seen == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    account = store.account("many")
    assert await account.peers.count() == 2500
    found = await account.peers.get_by_username("USER_2499")
    assert found is not None and (found.id, found.access_hash, found.phone_number) == (
        12_499,
        2499,
        "447000002499",
    )


# -- refusals leave the target database unchanged ------------------------------------------------------


async def _existing(store: Store) -> None:
    """Something already stored: the session "alice" with one peer."""
    account = store.account("alice")
    await account.session.save(Session(name="alice", dc_id=2, auth_key=OTHER_KEY, user_id=42))
    await account.peers.save(Peer(9, PeerType.USER, 99, username="kept"))


def _nullable_entities(path: Path) -> Path:
    """Telethon's schema forbids a NULL hash; a foreign tool's copy of it might not."""
    return edit(
        path,
        "create table e2 (id integer primary key, hash integer, username text, phone integer,"
        " name text, date integer)",
        "insert into e2 select * from entities",
        "drop table entities",
        "alter table e2 rename to entities",
    )


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (["update entities set hash = NULL where id = 101"], "entities row 101: access hash is NULL"),
        (
            ["update entities set hash = NULL where id = -1000000001234"],
            "entities row -1000000001234: access hash is NULL",
        ),
        (["update entities set username = 'not valid!' where id = 101"], "entities row 101: username"),
        (["update entities set hash = 'abc' where id = 102"], "entities row 102: access_hash"),
        (["insert into update_state values (-5, 1, 0, 0, 0)"], "update_state row -5"),
        (["delete from sessions"], "the sessions table is empty"),
        (["update sessions set auth_key = x''"], "no auth key"),
        (["update sessions set auth_key = x'0102'"], "auth_key: must be exactly 256 bytes"),
        (["update sessions set server_address = 'example.org'"], "server_address"),
        (["update sessions set dc_id = 9"], "dc_id"),
        (["alter table entities drop column phone"], "table 'entities' lacks phone"),
        (["delete from version"], "no schema version"),
        (["update sent_files set md5_digest = x'00'"], "sent_files row 1: md5_digest"),
    ],
)
async def test_a_bad_telethon_file_raises_and_changes_nothing(
    store: Store, tmp_path: Path, damage: list[str], problem: str
) -> None:
    await _existing(store)
    before = await contents(store)
    path = edit(_nullable_entities(make_telethon_file(tmp_path / "bad")), *damage)
    for name, replace in (("alice", True), ("bob", False)):
        with pytest.raises(UnsupportedSessionFile) as info:
            await import_session_file(store, path, name, replace=replace)
        assert problem in str(info.value)
        assert AUTH_KEY.hex() not in str(info.value)
    assert await contents(store) == before


async def test_a_null_hash_is_fine_for_a_basic_chat(store: Store, tmp_path: Path) -> None:
    path = edit(
        _nullable_entities(make_telethon_file(tmp_path / "chat")),
        "update entities set hash = NULL where id = -55",
    )
    await import_session_file(store, path, "chat")
    chat = await store.account("chat").peers.get(-55)
    assert chat is not None and (chat.type, chat.access_hash, chat.title) == (
        PeerType.CHAT,
        None,
        "Old group",
    )


async def test_a_file_that_never_logged_in_is_refused(store: Store, tmp_path: Path) -> None:
    fresh = SQLiteSession(str(tmp_path / "fresh"))
    fresh.close()
    with pytest.raises(UnsupportedSessionFile, match="no auth key"):
        await import_session_file(store, tmp_path / "fresh.session", "fresh")
    assert await store.list_sessions() == []


async def test_an_existing_session_is_replaced_only_when_asked(store: Store, tmp_path: Path) -> None:
    await _existing(store)
    before = await contents(store)
    path = make_telethon_file(tmp_path / "alice")
    with pytest.raises(SessionExists, match="'alice' already exists"):
        await import_session_file(store, path, "alice")
    assert await contents(store) == before
    result = await import_session_file(store, path, "alice", replace=True)
    assert result.replaced is True
    account = store.account("alice")
    session = await account.session.load()
    assert session is not None and (session.auth_key, session.user_id) == (AUTH_KEY, USER_ID)
    assert peer_facts(await account.peers.list()) == TELETHON_PEERS  # the old peer went with the old session
    assert await account.peers.get_by_username("kept") is None
    assert await account.peers.get(9) is None  # not even from a peer cache


async def test_a_failure_while_writing_rolls_the_whole_import_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _existing(store)
    before = await contents(store)

    async def fail(self: UpdateRepository, state: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writer, "BATCH", 2)  # several peer batches are written before the failure
    monkeypatch.setattr(UpdateRepository, "save_state", fail)
    path = make_telethon_file(tmp_path / "alice")
    for name, replace in (("alice", True), ("bob", False)):
        with pytest.raises(RuntimeError, match="disk on fire"):
            await import_session_file(store, path, name, replace=replace)
    assert await contents(store) == before
