"""`TelethonSession` against Telethon's own sessions, a real `TelegramClient`, leases and a stuck database.

The differential tests run one script of session calls on Telethon's `SQLiteSession` (and, where its
answers are deterministic, `MemorySession`) and on our adapter, compare everything observable, then
reopen the store from the database and compare again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient, types
from telethon.crypto import AuthKey
from telethon.sessions import MemorySession, SQLiteSession

import tgpersist
from tests.adapters.support import stalled_writes, steal_lease
from tgpersist import InvalidArgument, LeaseLost, PeerType, SentFile, SessionBusy
from tgpersist.adapters.telethon import TelethonSession, entity_row
from tgpersist.testing import fresh_name

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
KEY = bytes(range(256))
WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
MD5_A, MD5_B = b"a" * 16, b"b" * 16
CHANNEL = -1_000_000_000_000


def user(id: int, access_hash: int | None, **fields: Any) -> Any:
    return types.User(id=id, access_hash=access_hash, **fields)


def chat(id: int, title: str) -> Any:
    return types.Chat(id, title, types.ChatPhotoEmpty(), 3, None, 1)


def channel(id: int, access_hash: int, title: str, **fields: Any) -> Any:
    return types.Channel(id, title, types.ChatPhotoEmpty(), None, access_hash=access_hash, **fields)


def resolved(users: list[Any] = (), chats: list[Any] = ()) -> Any:  # type: ignore[assignment]
    return types.contacts.ResolvedPeer(None, list(chats), list(users))


def state(pts: int, qts: int, date: dt.datetime, seq: int) -> Any:
    return types.updates.State(pts, qts, date, seq, unread_count=0)


ANN = user(1001, 11, first_name="Ann", last_name="Lee", username="AnnL", phone="15550001")
BOB = user(1002, 12, first_name="Bob", bot=True, username="bob_bot")
LAST_ONLY = user(1003, 13, last_name="Solo", phone="15550003")
NO_HASH = user(1004, None, first_name="Ghost")
MIN_USER = user(1007, 17, first_name="Min", min=True)
GROUP = chat(2001, "Group")
GONE = types.ChatForbidden(2002, "Gone")
NEWS = channel(3001, 31, "News", username="NewsCh", broadcast=True)
TALK = channel(3002, 32, "Talk", username="talk", megagroup=True)
FORUM = channel(3004, 34, "Forum", megagroup=True, forum=True)
PRIVATE = types.ChannelForbidden(3003, 33, "Private", megagroup=True)

KEYS: list[Any] = [
    *(1001, 1002, 1003, 1004, 1007, 2001, -2001, 2002, -2002, 3001, CHANNEL - 3001, 3002, 3003, 3004),
    *(0, 4000, -4000, CHANNEL - 4000, 1005, 1006, 999_999, -999_999),
    *("annl", "ann_new", "AnnL", "@bob_bot", "BOB_BOT", "t.me/bob_bot", "newsch", "talk", "moving"),
    *("+1 555 0001", "15550003", "1 555 0003", "Ann Lee", "Solo", "Group", "News", "Private", "nobody"),
    *(types.PeerUser(1002), types.PeerChannel(3001), types.PeerChat(2001), types.PeerUser(31337)),
    *(types.InputPeerUser(5, 6), types.InputPeerSelf()),
]
FILE_KEYS = [
    (MD5_A, 1000, types.InputDocument),
    (MD5_A, 1000, types.InputPhoto),
    (MD5_B, 5, types.InputDocument),
    (MD5_B, 5, types.InputPhoto),
    (MD5_A, 999, types.InputDocument),
    (MD5_A, 1000, types.InputPeerUser),
]


def run_basic(session: Any) -> None:
    """Calls whose answers do not depend on which of several equal rows a session happens to pick."""
    session.set_dc(4, "149.154.167.91", 443)
    session.auth_key = AuthKey(KEY)
    session.takeout_id = 77
    session.process_entities(
        resolved(users=[ANN, BOB, LAST_ONLY, NO_HASH, MIN_USER], chats=[GROUP, GONE, NEWS, TALK, PRIVATE])
    )
    session.process_entities([FORUM])
    session.process_entities(types.contacts.ResolvedPeer(None, [types.InputPeerUser(0, 1001)], []))
    session.set_update_state(0, state(100, 200, WHEN, 7))
    session.set_update_state(3001, state(55, 0, dt.datetime.now(), 0))
    session.set_update_state(3002, state(9, 0, dt.datetime.now(), 0))
    session.set_update_state(0, state(101, 201, WHEN + dt.timedelta(hours=1), 8))
    session.cache_file(MD5_A, 1000, types.InputDocument(1, 2, b""))
    session.cache_file(MD5_A, 1000, types.InputPhoto(3, 4, b""))
    session.cache_file(MD5_B, 5, types.InputDocument(5, 6, b"ref"))
    with pytest.raises(TypeError):
        session.cache_file(MD5_B, 5, types.InputPeerUser(1, 2))
    session.save()


def run_full(session: Any) -> None:
    """`run_basic`, then replaced entities, one bare id in three id spaces, and a username that moves."""
    run_basic(session)
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(bytes(reversed(KEY)))
    session.takeout_id = None
    session.process_entities(resolved(users=[user(1001, 111, first_name="Ann", username="ann_new")]))
    session.process_entities(
        resolved(users=[user(4000, 40)], chats=[chat(4000, "Same id"), channel(4000, 41, "Same id")])
    )
    session.process_entities(resolved(users=[user(1005, 15, username="moving")]))
    session.process_entities(resolved(users=[user(1006, 16, username="moving")]))
    session.cache_file(MD5_A, 1000, types.InputDocument(7, 8, b""))
    session.save()


def outcome(call: Any) -> Any:
    """A call's result as plain data, or its exception as (type name, repr of its arguments)."""
    try:
        result = call()
    except Exception as error:
        return type(error).__name__, repr(error.args)
    return result.to_dict() if hasattr(result, "to_dict") else result


def state_data(entity_id: int, value: Any) -> Any:
    """A `State` as data; channel dates are not compared (Telethon reads only a channel's pts)."""
    if value is None:
        return None
    data = (value.pts, value.qts, value.seq, value.unread_count)
    return data if entity_id != 0 else (*data, value.date)


def observe(session: Any) -> dict[str, Any]:
    """Everything Telethon can read back from a session."""
    return {
        "dc": (session.dc_id, session.server_address, session.port),
        "auth_key": session.auth_key.key if session.auth_key else None,
        "takeout_id": session.takeout_id,
        "entities": [outcome(lambda key=key: session.get_input_entity(key)) for key in KEYS],
        "state": [(i, state_data(i, session.get_update_state(i))) for i in (0, 3001, 3002, 3003)],
        "states": [(i, state_data(i, s)) for i, s in session.get_update_states()],
        "files": [outcome(lambda k=k: session.get_file(*k)) for k in FILE_KEYS],
    }


def sqlite_tables(path: Path) -> dict[str, list[Any]]:
    """The entities and sent files an `SQLiteSession` file holds (phones as text)."""
    with sqlite3.connect(path) as conn:
        entities = conn.execute("SELECT id, hash, username, phone, name FROM entities ORDER BY id")
        files = conn.execute("SELECT md5_digest, file_size, type, id, hash FROM sent_files ORDER BY 1, 2, 3")
        return {
            "entities": [(i, h, u, None if p is None else str(p), n) for i, h, u, p, n in entities],
            "files": [tuple(row) for row in files],
        }


async def stored_tables(store: tgpersist.Store, name: str) -> dict[str, list[Any]]:
    """The same, as our database holds it (Telethon's own user id is its entity 0)."""
    acct = store.account(name)
    session = await acct.session.load()
    entities = [entity_row(peer) for peer in await acct.peers.list()]
    if session is not None and session.user_id is not None:
        entities.append((0, session.user_id, None, None, None))
    files = [(f.md5_digest, f.file_size, f.type, f.id, f.access_hash) for f in await acct.files.list()]
    return {"entities": sorted(entities), "files": files}


async def open_session(store: tgpersist.Store, name: str, **options: Any) -> TelethonSession:
    return await TelethonSession.open(store, name, **options)


# -- differential ------------------------------------------------------------------------------------------
async def test_same_results_as_sqlite_session_then_after_reopening(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "reference.session"
    reference = SQLiteSession(str(path))
    expected_fresh = observe(reference)
    run_full(reference)
    expected = observe(reference)
    reference.close()
    expected_tables = sqlite_tables(path)

    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        assert observe(session) == expected_fresh
        run_full(session)
        assert observe(session) == expected
        await session.aclose()
        assert session.pending_writes == 0
        assert await stored_tables(store, name) == expected_tables

    reopened_reference = SQLiteSession(str(path))
    assert observe(reopened_reference) == expected
    reopened_reference.close()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        assert observe(session) == expected
        await session.aclose()


async def test_same_results_as_memory_session_then_after_reopening(db_url: str) -> None:
    reference = MemorySession()
    run_basic(reference)
    expected = observe(reference)
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        run_basic(session)
        assert observe(session) == expected
        assert session._files == reference._files
        await session.aclose()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        assert observe(session) == expected
        assert session._files == reference._files
        await session.aclose()


async def test_entities_keep_their_kind_and_names(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name)
    run_basic(session)
    await session.aclose()
    peers = {p.dialog_id: p for p in await store.account(name).peers.list()}
    assert {i: p.type for i, p in peers.items()} == {
        1001: PeerType.USER,
        1002: PeerType.BOT,
        1003: PeerType.USER,
        -2001: PeerType.CHAT,
        -2002: PeerType.CHAT,
        CHANNEL - 3001: PeerType.CHANNEL,
        CHANNEL - 3002: PeerType.SUPERGROUP,
        CHANNEL - 3003: PeerType.SUPERGROUP,
        CHANNEL - 3004: PeerType.FORUM,
    }
    ann = peers[1001]
    assert (ann.first_name, ann.last_name, ann.username, ann.phone_number, ann.access_hash) == (
        "Ann",
        "Lee",
        "AnnL",
        "15550001",
        11,
    )
    assert (peers[CHANNEL - 3001].title, peers[CHANNEL - 3001].access_hash) == ("News", 31)
    assert peers[-2001].access_hash is None
    stored = await store.account(name).session.load()
    assert stored is not None
    assert (stored.dc_id, stored.server_address, stored.port, stored.takeout_id, stored.user_id) == (
        4,
        "149.154.167.91",
        443,
        77,
        1001,
    )
    assert stored.auth_key == KEY
    assert await store.account(name).files.list() == [
        SentFile(MD5_A, 1000, 0, 1, 2),
        SentFile(MD5_A, 1000, 1, 3, 4),
        SentFile(MD5_B, 5, 0, 5, 6),
    ]


async def test_latest_username_owner_wins_and_reloads(db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        # A higher id first, then a lower one: the one processed last owns the username.
        session.process_entities(resolved(users=[user(20, 2, username="shared")]))
        session.process_entities(resolved(users=[user(10, 1, username="Shared")]))
        assert session.get_input_entity("shared") == types.InputPeerUser(10, 1)
        assert session.get_entity_rows_by_id(20) == (20, 2)
        await session.aclose()
        assert (await store.account(name).peers.get(20)).username is None  # type: ignore[union-attr]
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        assert session.get_input_entity("shared") == types.InputPeerUser(10, 1)
        await session.aclose()


# -- a real client ----------------------------------------------------------------------------------------
async def test_telegram_client_resolves_cached_peers_without_network(db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        run_basic(session)
        client = TelegramClient(session, API_ID, API_HASH)
        assert client.session is session
        assert await client.get_input_entity("annl") == types.InputPeerUser(1001, 11)
        assert await client.get_input_entity("@NewsCh") == types.InputPeerChannel(3001, 31)
        assert await client.get_input_entity(CHANNEL - 3002) == types.InputPeerChannel(3002, 32)
        assert await client.get_input_entity(types.PeerChat(2001)) == types.InputPeerChat(2001)
        assert await client.get_input_entity("+1 555 0003") == types.InputPeerUser(1003, 13)
        assert await client.get_input_entity("me") == types.InputPeerSelf()
        # Telethon's disconnect() stores the update state and calls the synchronous close().
        await client.disconnect()
        await session.aclose()
        assert session.pending_writes == 0
        assert await store.account(name).session.holder() is None

    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        client = TelegramClient(session, API_ID, API_HASH)
        assert await client.get_input_entity(1001) == types.InputPeerUser(1001, 11)
        assert await client.get_input_entity("bob_bot") == types.InputPeerUser(1002, 12)
        # disconnect() saved the (empty) message box state over ours, exactly as with SQLiteSession.
        assert state_data(0, session.get_update_state(0)) == (0, 0, 0, 0, EPOCH_PLUS_ONE)
        await session.aclose()


EPOCH_PLUS_ONE = dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)


# -- never blocking the event loop --------------------------------------------------------------------------
TICKS = 50


async def test_event_loop_keeps_running_while_the_database_is_stuck(backend: str, db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        async with stalled_writes(backend, db_url) as blocker:
            session.process_entities(resolved(users=[user(i, i) for i in range(1, 201)]))
            await blocker.wait_until_stalled(lambda: session._writer.writing)
            ticks = 0
            for i in range(TICKS):
                await asyncio.sleep(0.001)
                ticks += 1
                # Telethon's synchronous calls are answered at once from memory while the write waits.
                session.process_entities(resolved(users=[user(1000 + i, i + 1)]))
                assert session.get_input_entity(1000 + i) == types.InputPeerUser(1000 + i, i + 1)
            assert ticks == TICKS
            assert session.pending_writes == 1 + TICKS
            assert session._writer.writing
            if backend == "postgresql":
                assert await blocker.stalled_writers() == 1
        await session.flush()
        assert session.pending_writes == 0
        assert await store.account(name).peers.count() == 200 + TICKS
        await session.aclose()


# -- leases ------------------------------------------------------------------------------------------------
async def test_open_takes_the_lease_and_aclose_releases_it(db_url: str) -> None:
    name = fresh_name()
    async with (
        await tgpersist.open_store(db_url) as store,
        await tgpersist.open_store(db_url) as other,
    ):
        session = await open_session(store, name, owner="first")
        assert session.lease is not None and not session.lease.lost
        holder = await store.account(name).session.holder()
        assert holder is not None and (holder.owner, holder.token) == ("first", session.lease.token)
        with pytest.raises(SessionBusy) as info:
            await open_session(other, name, owner="second")
        assert info.value.owner == "first"
        session.takeout_id = 5
        await session.aclose()
        assert session.lease is None
        assert await store.account(name).session.holder() is None
        second = await open_session(other, name, owner="second")
        assert second.takeout_id == 5
        await second.aclose()


async def test_lease_false_takes_no_lease(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name, lease=False)
    session.takeout_id = 1
    await session.aclose()
    assert session.lease is None
    assert await store.account(name).session.holder() is None
    assert (await store.account(name).session.load()).takeout_id == 1  # type: ignore[union-attr]


async def test_writes_stop_when_the_lease_is_taken_over(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name, owner="first")
    session.takeout_id = 1
    await session.flush()
    await steal_lease(store, name)
    session.takeout_id = 2
    with pytest.raises(LeaseLost):
        await session.flush()
    with pytest.raises(LeaseLost):
        await session.aclose()
    assert session.pending_writes == 1
    assert (await store.account(name).session.load()).takeout_id == 1  # type: ignore[union-attr]


async def test_a_lease_found_lost_by_its_heartbeat_stops_every_write(store: tgpersist.Store) -> None:
    name = fresh_name()
    lost: list[Any] = []
    session = await open_session(store, name, owner="first", ttl=0.3, on_lost=lost.append)
    await steal_lease(store, name)
    for _ in range(500):  # the heartbeat renews every ttl/3
        if lost:
            break
        await asyncio.sleep(0.01)
    assert lost == [session.lease] and session.lease is not None and session.lease.lost
    session.process_entities(resolved(users=[ANN]))  # peers are not fenced: the adapter stops them
    with pytest.raises(LeaseLost):
        await session.flush()
    assert await store.account(name).peers.list() == []


# -- failures, deletion, odds and ends ----------------------------------------------------------------------
async def test_a_failed_write_is_retried_in_order(store: tgpersist.Store, monkeypatch: Any) -> None:
    name = fresh_name()
    session = await open_session(store, name)
    peers = store.account(name).peers
    real_save_many = peers.save_many
    failures = []

    async def flaky(batch: Any) -> int:
        if not failures:
            failures.append(1)
            raise ConnectionError("the database went away")
        return await real_save_many(batch)

    monkeypatch.setattr(peers, "save_many", flaky)
    session.process_entities(resolved(users=[ANN]))
    session.set_update_state(0, state(1, 2, WHEN, 3))
    with pytest.raises(ConnectionError):
        await session.flush()
    assert session.pending_writes == 2
    await session.flush()
    assert session.pending_writes == 0
    assert (await peers.get(1001)).access_hash == 11  # type: ignore[union-attr]
    assert (await store.account(name).updates.load_state()) == tgpersist.UpdateState(
        1, 2, int(WHEN.timestamp()), 3
    )
    await session.aclose()


async def test_delete_forgets_everything(db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name)
        run_basic(session)
        fresh = observe(MemorySession())
        assert session.delete() is True
        assert observe(session) == fresh
        await session.aclose()
        assert await store.account(name).session.load() is None
        assert await store.account(name).peers.list() == []
        assert await store.account(name).files.list() == []
        assert name not in await store.list_sessions()
    async with await tgpersist.open_store(db_url) as store:
        session = await open_session(store, name, lease=False)
        assert observe(session) == fresh
        await session.aclose()


async def test_close_schedules_the_final_flush(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name)
    session.takeout_id = 3
    assert session.close() is None  # Telethon calls it without awaiting
    assert session._closing is not None
    await session._closing
    assert session.pending_writes == 0 and session.lease is None
    await session.aclose()  # again: harmless
    assert (await store.account(name).session.load()).takeout_id == 3  # type: ignore[union-attr]


async def test_bad_values_raise_and_change_nothing(store: tgpersist.Store) -> None:
    session = await open_session(store, fresh_name())
    session.set_dc(2, "149.154.167.51", 443)
    with pytest.raises(InvalidArgument) as info:
        session.set_dc(9, "149.154.167.51", 443)
    assert info.value.field == "dc_id"
    with pytest.raises(InvalidArgument):
        session.set_dc(2, "not an address", 443)
    with pytest.raises(InvalidArgument):
        session.auth_key = AuthKey(b"short")
    with pytest.raises(InvalidArgument) as info:
        session.set_update_state(-5, state(1, 0, WHEN, 0))
    assert info.value.field == "entity_id"
    assert (session.dc_id, session.server_address, session.auth_key) == (2, "149.154.167.51", None)
    assert session.get_update_states() == []
    await session.aclose()


async def test_values_tgpersist_rejects_are_dropped_but_the_entity_is_kept(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name)
    odd = user(1010, 5, first_name="Odd", username="bad-name", phone="12ab")
    session.process_entities(resolved(users=[odd]))
    assert session.get_input_entity(1010) == types.InputPeerUser(1010, 5)
    assert session.get_entity_rows_by_id(1010) == (1010, 5)
    assert session._entities.row(1010) == (1010, 5, None, None, "Odd")
    await session.aclose()
    peer = await store.account(name).peers.get(1010)
    assert peer is not None and (peer.username, peer.phone_number, peer.first_name) == (None, None, "Odd")


async def test_save_entities_false_and_clone(store: tgpersist.Store) -> None:
    name = fresh_name()
    session = await open_session(store, name, save_entities=False)
    session.process_entities(resolved(users=[ANN]))
    with pytest.raises(ValueError):
        session.get_input_entity(1001)
    clone = session.clone()
    assert type(clone) is MemorySession
    assert await TelethonSession.list_sessions(store) == [n for n in await store.list_sessions()]
    assert name in await TelethonSession.list_sessions(store)
    await session.aclose()
    assert await store.account(name).peers.list() == []
