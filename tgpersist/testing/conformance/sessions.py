"""Sessions: every field round trips, saves replace, deletes cascade, accounts stay apart."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tgpersist import (
    ChannelState,
    Conversation,
    DcAuth,
    DurableUpdate,
    InvalidArgument,
    Peer,
    PeerType,
    Session,
    Store,
    UpdateState,
)
from tgpersist.testing.conformance.support import INT64_MAX, INT64_MIN, KEY_A, KEY_B, fresh_name, full_session


class SessionConformance:
    """Sessions: every field round trips, saves replace, deletes cascade, accounts stay apart."""

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
