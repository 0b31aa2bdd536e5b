"""Peers: fields, id spaces, usernames moving between peers, batches large and small."""

from __future__ import annotations

from tgpersist import Peer, PeerType, Store
from tgpersist.testing.conformance.support import INT64_MAX, INT64_MIN, fresh_name


class PeerConformance:
    """Peers: fields, id spaces, usernames moving between peers, batches large and small."""

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
