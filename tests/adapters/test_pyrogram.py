"""`PyrogramStorage` against Kurigram's own `SQLiteStorage`, a real Kurigram `Client`, and leases.

The differential test runs one script of storage calls on `SQLiteStorage` (in a temporary directory)
and on our adapter, compares every result and every `KeyError`, then reopens both from disk/database
and compares again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pyrogram import Client, raw
from pyrogram.storage import SQLiteStorage, UpdateState

import tgpersist
from tests.adapters.support import steal_lease
from tgpersist import InvalidArgument, LeaseLost, PeerType, SessionBusy
from tgpersist.adapters.pyrogram import PyrogramStorage
from tgpersist.testing import fresh_name

API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"
KEY = bytes(range(256))
CHANNEL = -1_000_000_000_000
CH1, CH2, CH3 = CHANNEL - 11, CHANNEL - 12, CHANNEL - 99
SAVED_AT = 1_700_000_000
FIELDS = ("dc_id", "server_address", "port", "api_id", "test_mode", "auth_key", "date", "user_id", "is_bot")

PEERS = [
    (42, 1, "user", "15550042"),
    (43, 2, "bot", None),
    (44, 3, "user", "15550044"),
    (-11, 0, "group", None),
    (CHANNEL - 11, 4, "channel", None),
    (CHANNEL - 12, 5, "supergroup", None),
    (CHANNEL - 13, 6, "forum", None),
    (CHANNEL - 14, 7, "direct", None),
    (CHANNEL - 15, 8, "community", None),
    (45, 9, "user", "15550042"),  # shares 42's phone number: the lower id is found
]
IDS = [42, 43, 44, 45, -11, *(CHANNEL - i for i in range(11, 16)), 11, -42, 999, CHANNEL - 16]
USERNAMES = ["alice", "alice_old", "ALICE", "newsch", "bobby", "orphan", "carol", "nobody", ""]
PHONES = ["15550042", "+15550042", "15550044", "555", ""]
STATE_QUERIES: list[Any] = [None, 0, CH1, CH2, [CH1, 0, CH3], [], (CH1, CH1)]


async def run_script(storage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Kurigram's client does to a new storage, plus every kind of peer and update state."""
    await storage.open()
    # Client.load_session() on a new authorization:
    await storage.api_id(API_ID)
    await storage.dc_id(2)
    await storage.server_address("149.154.167.51")
    await storage.port(443)
    await storage.date(0)
    await storage.test_mode(False)
    await storage.auth_key(KEY)
    await storage.user_id(None)
    await storage.is_bot(None)
    # ... then sign_in():
    await storage.user_id(42)
    await storage.is_bot(False)
    await storage.update_peers(PEERS)
    await storage.update_usernames(
        [(42, ["alice", "alice_old"]), (CHANNEL - 11, ["newsch"]), (77777, ["orphan"]), (44, ["carol"])]
    )
    await storage.update_peers([(42, 4242, "user", "15550042")])  # replaced: keeps its usernames
    await storage.update_usernames([(43, [None, "bobby"]), (44, [])])
    await storage.set_update_state(UpdateState(0, 1, 2, 3, 4))
    await storage.set_update_state(
        [UpdateState(CH1, 10, None, None, None), UpdateState(CH2, 20, None, None, None)]
    )
    await storage.set_update_state(UpdateState(0, None, None, 5, 6))
    await storage.set_update_state(UpdateState(CH1, 11, None, None, None))
    await storage.set_update_state(UpdateState(CH3, 30, None, None, None))
    await storage.delete_update_state(CH3)
    await storage.delete_update_state([])
    await storage.delete_update_state([CHANNEL - 98])
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: float(SAVED_AT))
        await storage.save()


async def outcome(call: Any) -> Any:
    try:
        return await call()
    except Exception as error:
        return type(error).__name__, error.args


async def observe(storage: Any) -> dict[str, Any]:
    """Everything Kurigram's client can read back from a storage."""
    return {
        "fields": [await getattr(storage, name)() for name in FIELDS],
        "by_id": [await outcome(lambda i=i: storage.get_peer_by_id(i)) for i in IDS],
        "by_username": [await outcome(lambda u=u: storage.get_peer_by_username(u)) for u in USERNAMES],
        "by_phone": [await outcome(lambda p=p: storage.get_peer_by_phone_number(p)) for p in PHONES],
        "states": [await storage.get_update_states(q) for q in STATE_QUERIES],
        "session_string": await outcome(storage.export_session_string),
    }


# -- differential ------------------------------------------------------------------------------------------
async def test_same_results_as_sqlite_storage_then_after_reopening(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = SQLiteStorage("reference", workdir=tmp_path)
    await reference.open()
    fresh = await observe(reference)
    await reference.close()
    reference = SQLiteStorage("reference", workdir=tmp_path)
    await run_script(reference, monkeypatch)
    expected = await observe(reference)
    await reference.close()
    assert expected["fields"] == [2, "149.154.167.51", 443, API_ID, 0, KEY, SAVED_AT, 42, 0]

    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert await observe(storage) == fresh
        await storage.close()
        storage = PyrogramStorage(store, name)
        await run_script(storage, monkeypatch)
        assert await observe(storage) == expected
        await storage.close()
        assert storage.pending_writes == 0

    reference = SQLiteStorage("reference", workdir=tmp_path)
    await reference.open()
    assert await observe(reference) == expected
    await reference.close()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert await observe(storage) == expected
        await storage.close()


async def test_expired_usernames_raise_like_sqlite_storage(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = SQLiteStorage("reference", workdir=tmp_path)
    await run_script(reference, monkeypatch)
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await run_script(storage, monkeypatch)
        for engine in (reference, storage):
            monkeypatch.setattr(engine, "USERNAME_TTL", -1)
        assert await outcome(lambda: storage.get_peer_by_username("alice")) == (
            "KeyError",
            ("Username expired: alice",),
        )
        assert await outcome(lambda: reference.get_peer_by_username("alice")) == (
            "KeyError",
            ("Username expired: alice",),
        )
        await storage.close()
        await reference.close()
        # After reopening, the lifetime counts from when the peer was stored.
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert await storage.get_peer_by_username("alice") == raw.types.InputPeerUser(
            user_id=42, access_hash=4242
        )
        monkeypatch.setattr(storage, "USERNAME_TTL", -1)
        with pytest.raises(KeyError, match="Username expired: alice"):
            await storage.get_peer_by_username("alice")
        await storage.close()


async def test_peers_are_stored_with_our_types(store: tgpersist.Store) -> None:
    name = fresh_name()
    storage = PyrogramStorage(store, name)
    await storage.open()
    await storage.update_peers(PEERS)
    await storage.update_usernames([(42, ["alice", "alice_old"])])
    await storage.close()
    peers = {p.dialog_id: p for p in await store.account(name).peers.list()}
    assert {i: p.type for i, p in peers.items()} == {
        42: PeerType.USER,
        43: PeerType.BOT,
        44: PeerType.USER,
        45: PeerType.USER,
        -11: PeerType.CHAT,
        CHANNEL - 11: PeerType.CHANNEL,
        CHANNEL - 12: PeerType.SUPERGROUP,
        CHANNEL - 13: PeerType.FORUM,
        CHANNEL - 14: PeerType.DIRECT,
        CHANNEL - 15: PeerType.COMMUNITY,
    }
    alice = peers[42]
    assert (alice.access_hash, alice.phone_number, alice.username, alice.usernames) == (
        1,
        "15550042",
        "alice",
        ("alice", "alice_old"),
    )


async def test_a_username_moves_to_the_peer_that_claims_it_last(db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        await storage.update_peers([(1, 10, "user", None), (2, 20, "user", None)])
        await storage.update_usernames([(2, ["shared", "other"])])
        await storage.update_usernames([(1, ["shared"])])
        assert await storage.get_peer_by_username("shared") == raw.types.InputPeerUser(
            user_id=1, access_hash=10
        )
        await storage.close()
        assert (await store.account(name).peers.get(2)).usernames == ("other",)  # type: ignore[union-attr]
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert await storage.get_peer_by_username("shared") == raw.types.InputPeerUser(
            user_id=1, access_hash=10
        )
        assert await storage.get_peer_by_username("other") == raw.types.InputPeerUser(
            user_id=2, access_hash=20
        )
        await storage.close()


async def test_values_tgpersist_rejects_are_dropped_but_the_peer_is_kept(store: tgpersist.Store) -> None:
    name = fresh_name()
    storage = PyrogramStorage(store, name)
    await storage.open()
    await storage.update_peers([(42, 1, "user", "12ab")])
    await storage.update_usernames([(42, ["bad name!", "good", "GOOD", None])])
    assert await storage.get_peer_by_id(42) == raw.types.InputPeerUser(user_id=42, access_hash=1)
    assert await storage.get_peer_by_username("good") == raw.types.InputPeerUser(user_id=42, access_hash=1)
    with pytest.raises(KeyError, match="Phone number not found: 12ab"):
        await storage.get_peer_by_phone_number("12ab")
    await storage.close()
    peer = await store.account(name).peers.get(42)
    assert peer is not None and (peer.phone_number, peer.usernames) == (None, ("good",))


# -- a real client ----------------------------------------------------------------------------------------
async def test_kurigram_client_loads_the_session_and_resolves_cached_peers(db_url: str) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        for field, value in (("api_id", API_ID), ("dc_id", 4), ("server_address", "149.154.167.91")):
            await getattr(storage, field)(value)
        for field, value in (("port", 443), ("test_mode", False), ("auth_key", KEY), ("user_id", 42)):
            await getattr(storage, field)(value)
        await storage.is_bot(False)
        await storage.update_peers(PEERS)
        await storage.update_usernames([(42, ["alice"])])
        await storage.close()

    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        client = Client(name, api_id=API_ID, api_hash=API_HASH, storage_engine=storage)
        assert client.storage is storage
        await client.load_session()  # opens the storage; the session is complete, so no network
        assert storage.lease is not None
        assert await client.storage.get_peer_by_id(42) == raw.types.InputPeerUser(user_id=42, access_hash=1)
        assert await client.storage.get_peer_by_username("alice") == raw.types.InputPeerUser(
            user_id=42, access_hash=1
        )
        assert await client.storage.get_peer_by_id(CHANNEL - 13) == raw.types.InputPeerChannel(
            channel_id=13, access_hash=6
        )
        assert await client.storage.get_peer_by_id(-11) == raw.types.InputPeerChat(chat_id=11)
        with pytest.raises(KeyError, match="ID not found: 7"):
            await client.storage.get_peer_by_id(7)
        reference = SQLiteStorage(name, workdir=Path("."), in_memory=True)
        await reference.open()
        for field in FIELDS:
            await getattr(reference, field)(await getattr(storage, field)())
        assert await client.export_session_string() == await reference.export_session_string()
        await reference.close()
        await client.storage.close()
        assert await store.account(name).session.holder() is None


# -- leases ------------------------------------------------------------------------------------------------
async def test_open_takes_the_lease_and_close_releases_it(db_url: str) -> None:
    name = fresh_name()
    async with (
        await tgpersist.open_store(db_url) as store,
        await tgpersist.open_store(db_url) as other,
    ):
        first = PyrogramStorage(store, name, owner="first")
        await first.open()
        assert first.lease is not None
        with pytest.raises(SessionBusy) as info:
            await PyrogramStorage(other, name, owner="second").open()
        assert info.value.owner == "first"
        await first.api_id(7)
        await first.close()
        assert first.lease is None
        second = PyrogramStorage(other, name, owner="second")
        await second.open()
        assert await second.api_id() == 7
        await second.close()
        unleased = PyrogramStorage(store, name, lease=False)
        await unleased.open()
        assert unleased.lease is None
        assert await store.account(name).session.holder() is None
        await unleased.close()


async def test_writes_stop_when_the_lease_is_taken_over(store: tgpersist.Store) -> None:
    name = fresh_name()
    storage = PyrogramStorage(store, name, owner="first")
    await storage.open()
    await storage.api_id(1)
    await steal_lease(store, name)
    with pytest.raises(LeaseLost):
        await storage.api_id(2)
    with pytest.raises(LeaseLost):
        await storage.close()
    assert (await store.account(name).session.load()).api_id == 1  # type: ignore[union-attr]


# -- odds and ends ----------------------------------------------------------------------------------------
async def test_delete_forgets_everything(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        fresh = await observe(storage)
        await run_script(storage, monkeypatch)
        await storage.delete()
        assert await observe(storage) == fresh
        assert await store.account(name).session.load() is None
        assert await store.account(name).peers.list() == []
        assert await store.account(name).updates.list_channels() == []
        await storage.close()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name, lease=False)
        await storage.open()
        assert await observe(storage) == fresh
        await storage.close()


async def test_account_state_deletion_is_durable(db_url: str) -> None:
    """Deleting state 0 and a channel's state is written through, as Kurigram's SQLiteStorage does."""
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        await storage.set_update_state([UpdateState(0, 1, 2, 3, 4), UpdateState(CH1, 5, None, None, None)])
        await storage.delete_update_state([0, CH1])
        assert await storage.get_update_states() == []
        await storage.close()
        assert await store.account(name).updates.list_channels() == []
    async with await tgpersist.open_store(db_url) as store:
        assert await store.account(name).updates.load_state() is None
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert await storage.get_update_states() == []
        await storage.close()


async def test_deleting_a_valid_and_an_invalid_state_id_changes_nothing(db_url: str) -> None:
    """`delete_update_state([valid, invalid])` checks the whole list first: memory and database keep both."""
    name = fresh_name()
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        await storage.set_update_state([UpdateState(0, 1, 2, 3, 4), UpdateState(CH1, 5, None, None, None)])
        with pytest.raises(InvalidArgument) as info:
            await storage.delete_update_state([CH1, 0, 42])
        assert info.value.field == "id"
        assert [s.id for s in await storage.get_update_states()] == [CH1, 0]
        await storage.close()
        assert [c.channel_id for c in await store.account(name).updates.list_channels()] == [11]
        assert await store.account(name).updates.load_state() == tgpersist.UpdateState(1, 2, 3, 4)
    async with await tgpersist.open_store(db_url) as store:
        storage = PyrogramStorage(store, name)
        await storage.open()
        assert [s.id for s in await storage.get_update_states()] == [CH1, 0]
        await storage.close()


async def test_bad_values_raise_and_change_nothing(store: tgpersist.Store) -> None:
    name = fresh_name()
    storage = PyrogramStorage(store, name)
    await storage.open()
    cases: list[tuple[str, Any]] = [
        ("type", lambda: storage.update_peers([(1, 1, "user", None), (2, 2, "martian", None)])),
        ("id", lambda: storage.update_peers([(-5, 1, "user", None)])),
        ("id", lambda: storage.set_update_state(UpdateState(42, 1, None, None, None))),
        ("dc_id", lambda: storage.dc_id(203)),
        ("auth_key", lambda: storage.auth_key(b"short")),
    ]
    for field, call in cases:
        with pytest.raises(InvalidArgument) as info:
            await call()
        assert info.value.field == field
    assert await storage.get_update_states() == []
    assert (await storage.dc_id(), await storage.auth_key()) == (2, None)
    with pytest.raises(KeyError):
        await storage.get_peer_by_id(1)
    await storage.close()
    assert await store.account(name).peers.list() == []
    assert await store.account(name).updates.list_channels() == []
