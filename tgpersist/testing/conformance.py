"""The store conformance suite: what every tgpersist backend must do, as reusable pytest tests.

Subclass `StoreConformance` in a test module and provide an async `store` fixture that yields a
`tgpersist.Store` (or anything with the same interface) on an empty, migrated database::

    from tgpersist.testing import StoreConformance

    class TestMyBackend(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with await open_my_store() as store:
                yield store

Tests only use the public API, and each uses fresh account names, so one store may serve them all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tgpersist import (
    ChannelState,
    Conversation,
    DcAuth,
    DurableUpdate,
    InvalidArgument,
    Peer,
    PeerType,
    SentFile,
    Session,
    Store,
    UpdateState,
    UpdateStatus,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
KEY_A = bytes(range(256))
KEY_B = bytes(reversed(range(256)))


def fresh_name(label: str = "acct") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def full_session(name: str) -> Session:
    return Session(
        name=name,
        dc_id=4,
        api_id=2**31 - 1,
        api_hash="0123456789abcdef0123456789ABCDEF",
        test_mode=False,
        auth_key=KEY_A,
        server_address="2001:67c:4e8:f004::a",
        port=443,
        user_id=INT64_MAX,
        is_bot=False,
        first_name="Ünïcode ✓ 'quotes' \"double\"",
        last_name="",
        username="Alice_1",
        date=1_700_000_000,
        server_salt=INT64_MIN,
        takeout_id=INT64_MAX,
        state=b"\x00\xff" * 100,
    )


@pytest.mark.asyncio
class StoreConformance:
    """Behaviour every store must have. Provide a `store` fixture (see the module docstring)."""

    # -- sessions ---------------------------------------------------------------------------
    async def test_session_round_trips_every_field(self, store: Store) -> None:
        name = fresh_name()
        session = full_session(name)
        await store.account(name).session.save(session)
        loaded = await store.account(name).session.load()
        assert loaded == session
        assert loaded is not None and loaded.auth_key == KEY_A
        assert loaded.created_at is not None and loaded.created_at.tzinfo is not None
        assert loaded.updated_at is not None and loaded.updated_at >= loaded.created_at

    async def test_session_with_only_a_name_round_trips_nones(self, store: Store) -> None:
        name = fresh_name()
        await store.account(name).session.save(Session(name))
        assert await store.account(name).session.load() == Session(name)

    async def test_session_extremes(self, store: Store) -> None:
        name = fresh_name()
        session = Session(
            name, dc_id=1, port=1, user_id=1, server_salt=INT64_MAX, takeout_id=INT64_MIN, date=0
        )
        await store.account(name).session.save(session)
        assert await store.account(name).session.load() == session
        session = replace(session, dc_id=5, port=65535, server_address="127.0.0.1", state=b"")
        await store.account(name).session.save(session)
        assert await store.account(name).session.load() == session

    async def test_session_save_replaces_but_keeps_created_at(self, store: Store) -> None:
        name = fresh_name()
        acct = store.account(name)
        await acct.session.save(full_session(name))
        first = await acct.session.load()
        await acct.session.save(Session(name, dc_id=2, auth_key=KEY_B))
        second = await acct.session.load()
        assert second == Session(name, dc_id=2, auth_key=KEY_B)
        assert first is not None and second is not None
        assert second.created_at == first.created_at
        assert second.updated_at is not None and first.updated_at is not None
        assert second.updated_at >= first.updated_at

    async def test_missing_session_is_none(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.session.load() is None
        assert await acct.session.delete() is False

    async def test_session_name_must_match_account(self, store: Store) -> None:
        name = fresh_name()
        with pytest.raises(InvalidArgument) as info:
            await store.account(name).session.save(Session(fresh_name()))
        assert info.value.field == "name"
        assert await store.account(name).session.load() is None

    async def test_list_sessions(self, store: Store) -> None:
        names = sorted(fresh_name("list") for _ in range(3))
        for name in names:
            await store.account(name).session.save(Session(name))
        listed = await store.list_sessions()
        assert [n for n in listed if n in names] == names
        assert listed == sorted(listed)

    async def test_writing_scoped_rows_creates_the_session(self, store: Store) -> None:
        name = fresh_name()
        await store.account(name).peers.save(Peer(1, PeerType.USER, 1))
        assert name in await store.list_sessions()
        assert await store.account(name).session.load() == Session(name)

    async def test_deleting_a_session_deletes_every_scoped_row(self, store: Store) -> None:
        name, other = fresh_name(), fresh_name()
        for who in (name, other):
            acct = store.account(who)
            await acct.session.save(full_session(who))
            await acct.peers.save_many(
                [Peer(1, PeerType.USER, 5, username=f"u{who[-6:]}"), Peer(2, PeerType.CHANNEL, 6)]
            )
            await acct.conversations.save(Conversation(1, 1, name="flow"))
            await acct.dc_auth.save(DcAuth(2, auth_key=KEY_B))
            await acct.updates.save_state(UpdateState(1, 2, 3, 4))
            await acct.updates.save_channel(ChannelState(7, 8))
            await acct.updates.remember("k")
            await acct.updates.enqueue(DurableUpdate(b"x", id="u1"))
        acct = store.account(name)
        assert await acct.session.delete() is True
        assert await acct.session.load() is None
        assert await acct.peers.list() == []
        assert await acct.peers.get_by_username(f"u{name[-6:]}") is None
        assert await acct.conversations.load(1, 1) is None
        assert await acct.dc_auth.list() == []
        assert await acct.updates.load_state() is None
        assert await acct.updates.list_channels() == []
        assert await acct.updates.seen("k") is False
        assert await acct.updates.get("u1") is None
        assert name not in await store.list_sessions()
        kept = store.account(other)
        assert len(await kept.peers.list()) == 2
        assert await kept.updates.load_state() == UpdateState(1, 2, 3, 4)
        assert await kept.updates.get("u1") is not None
        # The same account object keeps working after its session was deleted.
        await acct.peers.save(Peer(3, PeerType.USER, 1))
        assert [p.id for p in await acct.peers.list()] == [3]

    async def test_accounts_never_see_each_others_rows(self, store: Store) -> None:
        a, b = store.account(fresh_name()), store.account(fresh_name())
        await a.peers.save(Peer(10, PeerType.USER, 111, username="shared_name", phone_number="+1 555"))
        await b.peers.save(Peer(10, PeerType.USER, 222, username="shared_name", phone_number="1555"))
        await a.conversations.save(Conversation(1, 2, step="a"))
        await a.updates.save_state(UpdateState(pts=5))
        await a.updates.save_channel(ChannelState(1, 5))
        await a.dc_auth.save(DcAuth(1, auth_key=KEY_A))
        assert await a.updates.remember("same") is True
        assert await b.updates.remember("same") is True
        await a.updates.enqueue(DurableUpdate(b"a", id="same"))
        peer_a = await a.peers.get(10)
        peer_b = await b.peers.get_by_username("SHARED_NAME")
        assert peer_a is not None and peer_a.access_hash == 111
        assert peer_b is not None and peer_b.access_hash == 222
        assert (await b.peers.get_by_phone("+1555")).access_hash == 222  # type: ignore[union-attr]
        assert await b.conversations.load(1, 2) is None
        assert await b.updates.load_state() is None
        assert await b.updates.list_channels() == []
        assert await b.dc_auth.list() == []
        assert await b.updates.claim(10, owner="w") == []

    # -- peers ----------------------------------------------------------------------------------
    async def test_peer_round_trips_every_field(self, store: Store) -> None:
        acct = store.account(fresh_name())
        peer = Peer(
            id=INT64_MAX,
            type=PeerType.USER,
            access_hash=INT64_MIN,
            username="Primary",
            usernames=("Primary", "collectible_1", "x"),
            first_name="Иван 🚀",
            last_name="'; DROP TABLE peers; --",
            title=None,
            phone_number="+44 7700 900123",
            is_bot=False,
            photo_id=INT64_MAX,
            language="en-GB",
        )
        await acct.peers.save(peer)
        assert await acct.peers.get(INT64_MAX) == peer
        channel = Peer(id=2**40, type=PeerType.FORUM, access_hash=0, title="T" * 1024)
        await acct.peers.save(channel)
        assert await acct.peers.get(channel.dialog_id) == channel
        assert await acct.peers.get(2**40, PeerType.CHANNEL) == channel

    async def test_every_peer_type_round_trips(self, store: Store) -> None:
        acct = store.account(fresh_name())
        peers = [Peer(100 + i, t, access_hash=i) for i, t in enumerate(PeerType)]
        await acct.peers.save_many(peers)
        for peer in peers:
            assert await acct.peers.get(peer.dialog_id) == peer
        assert sorted(await acct.peers.list(), key=lambda p: p.dialog_id) == sorted(
            peers, key=lambda p: p.dialog_id
        )

    async def test_same_bare_id_in_different_id_spaces(self, store: Store) -> None:
        acct = store.account(fresh_name())
        user, chat, channel = (
            Peer(42, PeerType.USER, 1),
            Peer(42, PeerType.CHAT),
            Peer(42, PeerType.CHANNEL, 3),
        )
        await acct.peers.save_many([user, chat, channel])
        assert await acct.peers.get(42) == user
        assert await acct.peers.get(-42) == chat
        assert await acct.peers.get(-1_000_000_000_042) == channel
        assert await acct.peers.count() == 3

    async def test_missing_peers_are_none(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.peers.get(1) is None
        assert await acct.peers.get_by_username("nobody") is None
        assert await acct.peers.get_by_phone("123") is None
        assert await acct.peers.delete(1) is False
        assert await acct.peers.list() == []

    async def test_usernames_are_case_insensitive(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save(Peer(1, PeerType.USER, 9, username="MixedCase"))
        for query in ("mixedcase", "MIXEDCASE", "@MixedCase"):
            found = await acct.peers.get_by_username(query)
            assert found is not None and found.username == "MixedCase"

    async def test_username_moves_to_its_new_owner(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="taken", usernames=("other",)))
        await acct.peers.save(Peer(2, PeerType.USER, 2, username="TAKEN"))
        assert (await acct.peers.get_by_username("taken")).id == 2  # type: ignore[union-attr]
        old = await acct.peers.get(1)
        assert old is not None and old.username is None and old.usernames == ("other",)
        await acct.peers.save(Peer(3, PeerType.CHANNEL, 3, usernames=("Other",)))
        old = await acct.peers.get(1)
        assert old is not None and old.usernames == ()
        assert (await acct.peers.get_by_username("other")).id == 3  # type: ignore[union-attr]

    async def test_usernames_keep_their_order_around_the_primary(self, store: Store) -> None:
        acct = store.account(fresh_name())
        peers = [
            Peer(1, PeerType.USER, 1, username="Middle", usernames=("first", "Middle", "last")),
            Peer(2, PeerType.USER, 2, username="End", usernames=("a", "b", "End")),
            Peer(3, PeerType.CHANNEL, 3, usernames=("only_x", "only_y")),  # collectibles, no primary
            Peer(4, PeerType.BOT, 4, username="Spelled", usernames=("spelled",)),
        ]
        await acct.peers.save_many(peers)
        for peer in peers[:3]:
            assert await acct.peers.get(peer.dialog_id) == peer
        stored = await acct.peers.get(4)
        assert stored is not None and (stored.username, stored.usernames) == ("spelled", ("spelled",))
        for name, owner in (("FIRST", 1), ("middle", 1), ("last", 1), ("a", 2), ("end", 2), ("only_y", 3)):
            found = await acct.peers.get_by_username(name)
            assert found is not None and found.id == owner, name
        listed = {p.id: p.usernames for p in await acct.peers.list()}
        assert [listed[p.id] for p in peers[:3]] == [p.usernames for p in peers[:3]]

    async def test_usernames_swap_between_peers_in_one_batch(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save_many(
            [
                Peer(1, PeerType.USER, 1, username="x", usernames=("x", "x2")),
                Peer(2, PeerType.USER, 2, username="y", usernames=("y2", "y")),
            ]
        )
        await acct.peers.save_many(
            [
                Peer(1, PeerType.USER, 1, username="Y", usernames=("y2", "Y")),
                Peer(2, PeerType.USER, 2, username="X", usernames=("X", "x2")),
            ]
        )
        one, two = await acct.peers.get(1), await acct.peers.get(2)
        assert one is not None and (one.username, one.usernames) == ("Y", ("y2", "Y"))
        assert two is not None and (two.username, two.usernames) == ("X", ("X", "x2"))
        for name, owner in (("x", 2), ("x2", 2), ("y", 1), ("y2", 1)):
            assert (await acct.peers.get_by_username(name)).id == owner, name  # type: ignore[union-attr]

    async def test_a_collectible_takes_a_primary_and_gives_it_back(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="name"))
        await acct.peers.save(Peer(2, PeerType.CHANNEL, 2, username="chan", usernames=("chan", "NAME")))
        one = await acct.peers.get(1)
        assert one is not None and (one.username, one.usernames) == (None, ())
        assert (await acct.peers.get_by_username("name")).id == 2  # type: ignore[union-attr]
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="name"))
        two = await acct.peers.get(-1_000_000_000_002)
        assert two is not None and (two.username, two.usernames) == ("chan", ("chan",))
        assert (await acct.peers.get_by_username("NAME")).id == 1  # type: ignore[union-attr]

    async def test_large_batches_of_mixed_rows_round_trip_and_rename(self, store: Store) -> None:
        """Rows with many different sets of empty fields, over several statements per kind of row;
        then the same batch again with some usernames and phones changed or moved between peers."""
        acct = store.account(fresh_name())

        def peer(i: int, generation: int) -> Peer:
            name = f"u{i}" if generation == 0 or i % 7 else f"renamed{i}"
            if generation == 1 and i % 50 == 3:
                name = f"u{i - 1}"  # taken from the previous peer, which is renamed below
            return Peer(
                i,
                (PeerType.USER, PeerType.BOT, PeerType.USER)[i % 3],
                access_hash=None if i % 4 == 0 else i * 31 - generation,
                username=name if i % 5 else None,
                first_name=None if i % 2 else f"F{i}",
                last_name=None if i % 3 else "L",
                phone_number=f"+{1000 + i + generation * (i % 11 == 0)}" if i % 6 == 0 else None,
                is_bot=None if i % 9 == 0 else bool(i % 3 == 1),
                photo_id=i if i % 8 == 0 else None,
                language="en" if i % 10 == 0 else None,
            )

        count = 450
        for generation in (0, 1):
            peers = [peer(i, generation) for i in range(1, count + 1)]
            if generation == 1:
                for i in range(2, count + 1, 50):  # the peers whose names were taken get new ones
                    old = peers[i - 1]
                    peers[i - 1] = Peer(i, old.type, old.access_hash, username=f"moved{i}")
            await acct.peers.save_many(peers)
            assert await acct.peers.list() == sorted(peers, key=lambda p: p.id)
        assert await acct.peers.get_by_username("u7") is None
        assert (await acct.peers.get_by_username("renamed7")).id == 7  # type: ignore[union-attr]
        assert (await acct.peers.get_by_username("u2")).id == 3  # type: ignore[union-attr]
        assert (await acct.peers.get_by_username("moved2")).id == 2  # type: ignore[union-attr]
        assert (await acct.peers.get_by_phone("+1060")).id == 60  # type: ignore[union-attr]
        assert await acct.peers.get_by_phone("+1132") is None  # moved to +1133
        assert (await acct.peers.get_by_phone("1133")).id == 132  # type: ignore[union-attr]

    async def test_saving_a_peer_replaces_its_usernames(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="old_one", usernames=("old_two",)))
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="new_one"))
        assert await acct.peers.get_by_username("old_one") is None
        assert await acct.peers.get_by_username("old_two") is None
        assert (await acct.peers.get(1)).usernames == ("new_one",)  # type: ignore[union-attr]

    async def test_save_many_last_duplicate_wins(self, store: Store) -> None:
        acct = store.account(fresh_name())
        count = await acct.peers.save_many(
            [
                Peer(1, PeerType.USER, 1, username="dup"),
                Peer(2, PeerType.USER, 2, username="dup"),
                Peer(1, PeerType.USER, 3),
            ]
        )
        assert count == 2
        assert (await acct.peers.get(1)).access_hash == 3  # type: ignore[union-attr]
        assert (await acct.peers.get_by_username("dup")).id == 2  # type: ignore[union-attr]

    async def test_save_many_large_batch(self, store: Store) -> None:
        acct = store.account(fresh_name())
        peers = [
            Peer(i, PeerType.USER, -i, username=f"user{i}", phone_number=f"+{i}") for i in range(1, 5001)
        ]
        assert await acct.peers.save_many(peers) == 5000
        assert await acct.peers.count() == 5000
        assert await acct.peers.get_by_username("USER4999") == peers[4998]
        assert await acct.peers.get_by_phone("2500") == peers[2499]
        assert await acct.peers.save_many([]) == 0

    async def test_phone_lookup_ignores_plus_and_spaces(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save(Peer(5, PeerType.USER, 5, phone_number="+1 202 555 0100"))
        for query in ("12025550100", "+12025550100", "1 202 555 0100", "+1 202 5550100"):
            found = await acct.peers.get_by_phone(query)
            assert found is not None and found.phone_number == "+1 202 555 0100"

    async def test_delete_peer(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.peers.save_many([Peer(1, PeerType.USER, 1, username="gone"), Peer(1, PeerType.CHAT)])
        assert await acct.peers.delete(1) is True
        assert await acct.peers.get(1) is None
        assert await acct.peers.get_by_username("gone") is None
        assert await acct.peers.get(-1) is not None
        assert await acct.peers.delete(1, PeerType.CHAT) is True

    # -- conversations ----------------------------------------------------------------------------
    async def test_conversation_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        future = datetime.now(UTC) + timedelta(hours=1)
        values: list[Any] = [
            {"nested": [1, 2.5, None, True, "ü"], "n": INT64_MAX},
            b"\x00raw\xff",
            None,
            "text",
            [1, 2],
        ]
        for i, data in enumerate(values):
            conv = Conversation(
                INT64_MIN,
                INT64_MAX,
                thread_id=i + 1,
                name="order",
                step="address",
                data=data,
                expires_at=future,
            )
            await acct.conversations.save(conv)
            assert await acct.conversations.load(INT64_MIN, INT64_MAX, i + 1) == conv

    async def test_conversation_keys_are_distinct(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.conversations.save(Conversation(1, 2, step="plain"))
        await acct.conversations.save(Conversation(1, 2, thread_id=5, step="thread"))
        await acct.conversations.save(Conversation(1, 2, namespace="business:x", step="ns"))
        assert (await acct.conversations.load(1, 2)).step == "plain"  # type: ignore[union-attr]
        assert (await acct.conversations.load(1, 2, 5)).step == "thread"  # type: ignore[union-attr]
        assert (await acct.conversations.load(1, 2, namespace="business:x")).step == "ns"  # type: ignore[union-attr]
        assert await acct.conversations.load(2, 1) is None
        assert len(await acct.conversations.list()) == 3
        assert await acct.conversations.delete(1, 2, 5) is True
        assert await acct.conversations.load(1, 2, 5) is None
        assert await acct.conversations.delete(1, 2, 5) is False

    async def test_conversation_replace_keeps_created_at(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.conversations.save(Conversation(1, 1, step="one"))
        first = await acct.conversations.load(1, 1)
        await acct.conversations.save(Conversation(1, 1, step="two"))
        second = await acct.conversations.load(1, 1)
        assert first is not None and second is not None and second.step == "two"
        assert second.created_at == first.created_at

    async def test_expired_conversations_are_not_returned_and_are_pruned(self, store: Store) -> None:
        acct = store.account(fresh_name())
        past = datetime.now(UTC) - timedelta(seconds=1)
        await acct.conversations.save(Conversation(1, 1, step="old", expires_at=past))
        await acct.conversations.save(Conversation(2, 2, step="live"))
        assert await acct.conversations.load(1, 1) is None
        assert [c.step for c in await acct.conversations.list()] == ["live"]
        assert await acct.conversations.prune() == 1
        assert await acct.conversations.prune() == 0

    # -- DC auth ------------------------------------------------------------------------------------
    async def test_dc_auth_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        main = DcAuth(
            2,
            auth_key=KEY_A,
            server_salt=INT64_MIN,
            ipv4="149.154.167.51",
            ipv6="2001:67c:4e8:f002::a",
            port=443,
        )
        media = DcAuth(2, auth_key=KEY_B, media_only=True, port=80)
        other = DcAuth(5)
        for entry in (main, media, other):
            await acct.dc_auth.save(entry)
        assert await acct.dc_auth.load(2) == main
        assert await acct.dc_auth.load(2, media_only=True) == media
        assert await acct.dc_auth.load(3) is None
        assert await acct.dc_auth.list() == [main, media, other]
        await acct.dc_auth.save(replace(main, auth_key=KEY_B))
        assert (await acct.dc_auth.load(2)).auth_key == KEY_B  # type: ignore[union-attr]
        assert await acct.dc_auth.delete(5) is True
        assert await acct.dc_auth.delete(5) is False

    # -- update state ---------------------------------------------------------------------------------
    async def test_update_state_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.load_state() is None
        await acct.updates.save_state(UpdateState(pts=1, qts=2, date=3, seq=4))
        await acct.updates.save_state(UpdateState(pts=2**32 - 1, qts=0, date=2**31, seq=7))
        assert await acct.updates.load_state() == UpdateState(pts=2**32 - 1, qts=0, date=2**31, seq=7)

    async def test_delete_update_state(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.delete_state() is False
        await acct.updates.save_state(UpdateState(pts=9))
        await acct.updates.save_channel(ChannelState(5, 1))
        assert await acct.updates.delete_state() is True
        assert await acct.updates.load_state() is None
        assert await acct.updates.list_channels() == [ChannelState(5, 1)]

    async def test_channel_state(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.load_channel(5) is None
        await acct.updates.save_channel(ChannelState(5, 100))
        await acct.updates.save_channels([ChannelState(2**40, 1), ChannelState(5, 101)])
        assert await acct.updates.load_channel(5) == ChannelState(5, 101)
        assert await acct.updates.list_channels() == [ChannelState(5, 101), ChannelState(2**40, 1)]
        assert await acct.updates.delete_channel(5) is True
        assert await acct.updates.load_channel(5) is None

    # -- dedup keys -------------------------------------------------------------------------------------
    async def test_remember_is_true_once(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.seen("msg:1:2") is False
        assert await acct.updates.remember("msg:1:2") is True
        assert await acct.updates.remember("msg:1:2") is False
        assert await acct.updates.seen("msg:1:2") is True
        assert await acct.updates.forget("msg:1:2") is True
        assert await acct.updates.remember("msg:1:2") is True

    async def test_remember_after_expiry(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.remember("short", ttl=0.05) is True
        await asyncio.sleep(0.1)
        assert await acct.updates.seen("short") is False
        assert await acct.updates.prune() == 1
        assert await acct.updates.remember("short", ttl=60) is True
        assert await acct.updates.remember("short") is False

    async def test_concurrent_remember_of_one_key_is_true_exactly_once(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.session.save(Session(acct.name))
        results = await asyncio.gather(*(store.account(acct.name).updates.remember("race") for _ in range(8)))
        assert sorted(results) == [False] * 7 + [True]

    # -- durable queue ----------------------------------------------------------------------------------
    async def test_enqueue_is_idempotent_by_id(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.enqueue(DurableUpdate(b"first", id="u1")) is True
        assert await acct.updates.enqueue(DurableUpdate(b"second", id="u1")) is False
        assert (
            await acct.updates.enqueue_many(
                [DurableUpdate(b"a", id="u1"), DurableUpdate(b"b", id="u2"), b"c"]
            )
            == 2
        )
        stored = await acct.updates.get("u1")
        assert stored is not None and stored.payload == b"first" and stored.attempts == 0
        assert (await acct.updates.counts())["pending"] == 3

    async def test_claim_hands_out_oldest_first_and_leases(self, store: Store) -> None:
        acct = store.account(fresh_name())
        for i in range(5):
            await acct.updates.enqueue(DurableUpdate(f"p{i}".encode(), id=f"u{i}"))
        first = await acct.updates.claim(2, owner="w1")
        assert [u.id for u in first] == ["u0", "u1"]
        assert all(u.lease_owner == "w1" and u.attempts == 1 for u in first)
        second = await acct.updates.claim(10, owner="w2")
        assert [u.id for u in second] == ["u2", "u3", "u4"]
        assert await acct.updates.claim(10, owner="w3") == []
        assert await acct.updates.ack("u0") is True
        assert await acct.updates.ack("u0") is False
        assert await acct.updates.get("u0") is None

    async def test_expired_lease_makes_update_available_again(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"x", id="u"))
        assert [u.id for u in await acct.updates.claim(1, owner="dies", lease=0.05)] == ["u"]
        assert await acct.updates.claim(1, owner="other") == []
        await asyncio.sleep(0.1)
        again = await acct.updates.claim(1, owner="other")
        assert [(u.id, u.lease_owner, u.attempts) for u in again] == [("u", "other", 2)]

    async def test_fail_backs_off_then_dead_letters(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"x", id="u"))
        await acct.updates.claim(1, owner="w")
        assert await acct.updates.fail("u", ValueError("bad payload")) is True
        failed = await acct.updates.get("u")
        assert failed is not None and failed.last_error == "ValueError: bad payload"
        assert failed.status is UpdateStatus.PENDING and failed.lease_owner is None
        assert failed.available_at is not None and failed.available_at > datetime.now(UTC)
        assert await acct.updates.claim(1, owner="w") == []  # backing off
        max_attempts = acct.updates.policy.max_attempts
        for _ in range(max_attempts - 1):
            await acct.updates.fail("u", "again", retry_in=0)
            assert len(await acct.updates.claim(1, owner="w")) == 1
        await acct.updates.fail("u", "final", retry_in=0)
        dead = await acct.updates.dead_letters()
        assert [(u.id, u.status, u.attempts, u.last_error) for u in dead] == [
            ("u", UpdateStatus.DEAD, max_attempts, "final")
        ]
        assert await acct.updates.claim(1, owner="w") == []
        assert await acct.updates.requeue("u") is True
        again = await acct.updates.claim(1, owner="w")
        assert [(u.id, u.attempts) for u in again] == [("u", 1)]
        assert await acct.updates.fail("missing", "x") is False

    async def test_delayed_enqueue(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"later", id="later"), delay=60)
        await acct.updates.enqueue(DurableUpdate(b"now", id="now"))
        assert [u.id for u in await acct.updates.claim(5, owner="w")] == ["now"]

    async def test_concurrent_claims_never_share_an_update(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue_many(DurableUpdate(b"x", id=f"u{i:03}") for i in range(60))
        batches = await asyncio.gather(
            *(store.account(acct.name).updates.claim(7, owner=f"w{i}") for i in range(12))
        )
        ids = [u.id for batch in batches for u in batch]
        assert len(ids) == len(set(ids)) == 60

    # -- bad input ----------------------------------------------------------------------------------------
    async def test_invalid_input_raises_and_changes_nothing(self, store: Store) -> None:
        name = fresh_name()
        acct = store.account(name)
        await acct.session.save(full_session(name))
        await acct.peers.save(Peer(1, PeerType.USER, 1, username="keep"))
        before = (await acct.session.load(), await acct.peers.list())
        bad_calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("session", lambda: acct.session.save("not a session")),  # type: ignore[arg-type]
            ("peers", lambda: acct.peers.save_many([Peer(2, PeerType.USER, 2), "x"])),  # type: ignore[list-item]
            ("peer_id", lambda: acct.peers.get(0)),
            ("peer_id", lambda: acct.peers.get(2**63)),
            ("username", lambda: acct.peers.get_by_username("x" * 100)),
            ("phone", lambda: acct.peers.get_by_phone("call me")),
            ("state", lambda: acct.updates.save_state((1, 2, 3, 4))),  # type: ignore[arg-type]
            ("channel_id", lambda: acct.updates.load_channel(0)),
            ("key", lambda: acct.updates.remember("")),
            ("ttl", lambda: acct.updates.remember("k", ttl=-1)),
            ("limit", lambda: acct.updates.claim(0)),
            ("update", lambda: acct.updates.enqueue("text")),  # type: ignore[arg-type]
            ("chat_id", lambda: acct.conversations.load(2**64, 1)),
            ("entry", lambda: acct.dc_auth.save(None)),  # type: ignore[arg-type]
        ]
        for field, call in bad_calls:
            with pytest.raises(InvalidArgument) as info:
                await call()
            assert info.value.field == field, (field, info.value)
        assert (await acct.session.load(), await acct.peers.list()) == before

    async def test_invalid_account_names(self, store: Store) -> None:
        for bad in ("", "x" * 256, "nul\x00"):
            with pytest.raises(InvalidArgument) as info:
                store.account(bad)
            assert info.value.field == "name"

    # -- sent-file cache --------------------------------------------------------------------------------
    async def test_sent_file_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        digest = bytes(range(16))
        doc = SentFile(digest, INT64_MAX, 0, INT64_MIN, INT64_MAX)
        photo = SentFile(digest, INT64_MAX, 1, 7, -7)
        other = SentFile(b"\xff" * 16, 0, 0, 1, 2)
        assert await acct.files.get(digest, INT64_MAX, 0) is None
        await acct.files.save(doc)
        assert await acct.files.save_many([other, photo, SentFile(b"\xff" * 16, 0, 0, 3, 4)]) == 2
        assert await acct.files.get(digest, INT64_MAX, 0) == doc
        assert await acct.files.get(bytearray(digest), INT64_MAX, 1) == photo
        assert await acct.files.get(b"\xff" * 16, 0, 0) == SentFile(b"\xff" * 16, 0, 0, 3, 4)
        assert await acct.files.get(digest, INT64_MAX - 1, 0) is None
        assert await acct.files.list() == [doc, photo, SentFile(b"\xff" * 16, 0, 0, 3, 4)]
        await acct.files.save(SentFile(digest, INT64_MAX, 0, 5, 6))
        assert await acct.files.get(digest, INT64_MAX, 0) == SentFile(digest, INT64_MAX, 0, 5, 6)
        assert await acct.files.delete(digest, INT64_MAX, 0) is True
        assert await acct.files.delete(digest, INT64_MAX, 0) is False
        assert await acct.files.get(digest, INT64_MAX, 0) is None
        assert await acct.files.save_many([]) == 0

    async def test_sent_files_are_scoped_and_deleted_with_the_session(self, store: Store) -> None:
        a, b = store.account(fresh_name()), store.account(fresh_name())
        await a.files.save(SentFile(b"a" * 16, 10, 1, 1, 1))
        await b.files.save(SentFile(b"a" * 16, 10, 1, 2, 2))
        assert a.name in await store.list_sessions()
        assert (await b.files.get(b"a" * 16, 10, 1)).id == 2  # type: ignore[union-attr]
        assert await a.session.delete() is True
        assert await a.files.list() == []
        assert await b.files.list() == [SentFile(b"a" * 16, 10, 1, 2, 2)]

    async def test_sent_file_invalid_input(self, store: Store) -> None:
        acct = store.account(fresh_name())
        bad_calls: list[tuple[str, Callable[[], object]]] = [
            ("md5_digest", lambda: SentFile(b"short", 1, 0, 1, 1)),
            ("md5_digest", lambda: SentFile("0" * 16, 1, 0, 1, 1)),  # type: ignore[arg-type]
            ("file_size", lambda: SentFile(b"x" * 16, -1, 0, 1, 1)),
            ("type", lambda: SentFile(b"x" * 16, 1, -1, 1, 1)),
            ("id", lambda: SentFile(b"x" * 16, 1, 0, 2**63, 1)),
            ("access_hash", lambda: SentFile(b"x" * 16, 1, 0, 1, None)),  # type: ignore[arg-type]
        ]
        for field, call in bad_calls:
            with pytest.raises(InvalidArgument) as info:
                call()
            assert info.value.field == field
        bad_coroutines: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("file", lambda: acct.files.save((b"x" * 16, 1, 0, 1, 1))),  # type: ignore[arg-type]
            ("md5_digest", lambda: acct.files.get(b"x" * 15, 1, 0)),
            ("file_size", lambda: acct.files.delete(b"x" * 16, 1.5, 0)),  # type: ignore[arg-type]
        ]
        for field, coro in bad_coroutines:
            with pytest.raises(InvalidArgument) as info:
                await coro()
            assert info.value.field == field
        assert await acct.files.list() == []
