"""The peer cache stays equal to the database through every write path of the same store; its size
cap, TTL and opt-out; two stores on one database with a TTL converge. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import tgpersist
from tgpersist import InvalidArgument, Peer, PeerType
from tgpersist.clock import utcnow
from tgpersist.peer_cache import PeerCache, PeerCaches
from tgpersist.repositories import peers as peer_repo
from tgpersist.sql.bulk import BulkUpsert
from tgpersist.validation import phone_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def plain(db_url: str, store: tgpersist.Store) -> AsyncIterator[tgpersist.Store]:
    """A second store on the same database with the cache off: what the database really holds."""
    async with await tgpersist.open_store(db_url, peer_cache_size=0) as other:
        yield other


def cache_of(store: tgpersist.Store, name: str = "a") -> PeerCache:
    cache = store.account(name).peers.cache
    assert cache is not None
    return cache


async def assert_consistent(store: tgpersist.Store, plain: tgpersist.Store, name: str = "a") -> None:
    """Every cached peer and index entry equals what the database answers (updated_at included)."""
    cache = cache_of(store, name)
    db = plain.account(name).peers
    for dialog_id, peer in cache.peers().items():
        stored = await db.get(dialog_id)
        assert stored == peer
        assert stored is not None and stored.updated_at == peer.updated_at
    for key, dialog_id in cache.usernames().items():
        owner = await db.get_by_username(key)
        assert owner is not None and owner.dialog_id == dialog_id
    for key, dialog_id in cache.phones().items():
        owner = await db.get_by_phone(key)
        assert owner is not None and owner.dialog_id == dialog_id


def user(n: int, **fields: object) -> Peer:
    values: dict[str, object] = {"access_hash": n * 11, "first_name": f"U{n}"}
    values.update(fields)
    return Peer(n, PeerType.USER, **values)  # type: ignore[arg-type]


# -- read-through and write-through ----------------------------------------------------------------
async def test_saved_peers_are_cached_exactly_as_stored(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    peers = store.account("a").peers
    bot = Peer(7, PeerType.USER, access_hash=-5, username="Robo", usernames=("robo", "extra"), is_bot=True)
    channel = Peer(99, PeerType.CHANNEL, access_hash=3, title="News", usernames=("news",))
    chat = Peer(42, PeerType.CHAT, title="Group")
    await peers.save_many([bot, channel, chat])
    cache = cache_of(store)
    assert set(cache.peers()) == {7, -1000000000099, -42}
    assert cache.peers()[7].type is PeerType.BOT and cache.peers()[7].is_bot is True
    assert cache.usernames() == {"robo": 7, "extra": 7, "news": -1000000000099}
    await assert_consistent(store, plain)
    assert await peers.get(7) is cache.peers()[7]
    assert await peers.get_by_username("@ROBO") is cache.peers()[7]
    assert await peers.get(99, PeerType.CHANNEL) is cache.peers()[-1000000000099]


async def test_reads_fill_the_cache_and_repeat_from_it(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    await plain.account("a").peers.save_many(
        [user(1, username="one", phone_number="+44 7700 900001"), user(2, username="two")]
    )
    peers = store.account("a").peers
    cache = cache_of(store)
    assert len(cache) == 0
    first = await peers.get(1)
    assert first is not None and first.username == "one"
    assert await peers.get(1) is first
    two = await peers.get_by_username("Two")
    assert two is not None and two.id == 2
    assert await peers.get(2) is two
    by_phone = await peers.get_by_phone("447700900001")  # phone lookups are cached once read
    assert by_phone == first
    assert await peers.get_by_phone("+44 7700 900001") is by_phone
    assert await peers.get(1) is by_phone
    assert cache.phones() == {"447700900001": 1}
    assert await peers.get(3) is None and await peers.get_by_username("nobody") is None
    assert len(cache) == 2
    await assert_consistent(store, plain)


async def test_invalid_lookups_still_raise_with_a_warm_cache(store: tgpersist.Store) -> None:
    peers = store.account("a").peers
    await peers.save(user(1, username="one"))
    assert await peers.get(1) is not None
    with pytest.raises(InvalidArgument):
        await peers.get(0)
    with pytest.raises(InvalidArgument):
        await peers.get(True)  # a bool is not an id, even though True == 1
    with pytest.raises(InvalidArgument):
        await peers.get_by_username(b"one")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        await peers.get_by_phone("not a phone")


async def test_username_stolen_from_a_cached_peer(store: tgpersist.Store, plain: tgpersist.Store) -> None:
    peers = store.account("a").peers
    await peers.save_many([user(1, username="shared", usernames=("shared", "keep")), user(2)])
    assert (await peers.get_by_username("shared")).id == 1  # type: ignore[union-attr]
    await peers.save(user(2, username="Shared"))
    assert (await peers.get_by_username("shared")).id == 2  # type: ignore[union-attr]
    old = await peers.get(1)
    assert old is not None and old.username is None and old.usernames == ("keep",)
    assert (await peers.get_by_username("keep")).id == 1  # type: ignore[union-attr]
    await assert_consistent(store, plain)


async def test_username_taken_within_one_batch(store: tgpersist.Store, plain: tgpersist.Store) -> None:
    peers = store.account("a").peers
    await peers.save_many([user(1, username="same"), user(2, username="same"), user(1, username="same")])
    # the last occurrence of peer 1 came last, so it owns the name; peer 2 lost it
    assert (await peers.get_by_username("same")).id == 1  # type: ignore[union-attr]
    two = await peers.get(2)
    assert two is not None and two.usernames == ()
    await peers.save_many([user(3, username="x"), user(4, username="x")])
    assert (await peers.get_by_username("x")).id == 4  # type: ignore[union-attr]
    assert (await peers.get(3)).usernames == ()  # type: ignore[union-attr]
    await assert_consistent(store, plain)


async def test_renamed_peer_frees_its_old_username(store: tgpersist.Store, plain: tgpersist.Store) -> None:
    peers = store.account("a").peers
    await peers.save(user(1, username="before"))
    assert await peers.get_by_username("before") is not None
    await peers.save(user(1, username="after", usernames=("after", "alias")))
    assert await peers.get_by_username("before") is None
    renamed = await peers.get_by_username("alias")
    assert renamed is not None and renamed.username == "after"
    await peers.save(user(1, username="alias", usernames=("after", "alias")))
    primary = await peers.get(1)
    assert primary is not None and primary.username == "alias" and primary.usernames == ("after", "alias")
    await assert_consistent(store, plain)


async def test_deleting_a_peer_drops_it_and_its_lookups(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    peers = store.account("a").peers
    await peers.save(user(1, username="gone", phone_number="+15550001"))
    await asyncio.sleep(0.002)  # distinct updated_at: peer 2 is the newest holder of the phone
    await peers.save(user(2, phone_number="15550001"))
    assert (await peers.get_by_phone("+1 5550001")).id == 2  # type: ignore[union-attr]
    assert await peers.delete(2) is True
    assert await peers.get(2) is None
    assert (await peers.get_by_phone("15550001")).id == 1  # type: ignore[union-attr]
    assert await peers.delete(1) is True
    assert await peers.get(1) is None
    assert await peers.get_by_username("gone") is None
    assert await peers.get_by_phone("15550001") is None
    assert await peers.delete(1) is False
    assert len(cache_of(store)) == 0
    await assert_consistent(store, plain)


async def test_phone_lookups_follow_the_newest_saved_peer(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    peers = store.account("a").peers
    await peers.save(user(1, phone_number="+100"))
    await asyncio.sleep(0.002)
    await peers.save(user(2, phone_number="+100"))
    assert (await peers.get_by_phone("100")).id == 2  # type: ignore[union-attr]
    await asyncio.sleep(0.002)
    await peers.save(user(1, phone_number="+100", first_name="again"))
    assert (await peers.get_by_phone("100")).id == 1  # type: ignore[union-attr]
    await peers.save(user(1, phone_number="+200"))  # peer 1 changes its number
    assert (await peers.get_by_phone("100")).id == 2  # type: ignore[union-attr]
    assert (await peers.get_by_phone("200")).id == 1  # type: ignore[union-attr]
    await assert_consistent(store, plain)


async def test_deleting_the_session_empties_the_cache(store: tgpersist.Store, plain: tgpersist.Store) -> None:
    acct = store.account("a")
    await acct.peers.save_many([user(1, username="one"), user(2)])
    assert len(cache_of(store)) == 2
    assert await acct.session.delete() is True
    assert len(cache_of(store)) == 0
    assert await acct.peers.get(1) is None
    assert await acct.peers.get_by_username("one") is None
    await acct.peers.save(user(3))
    assert (await plain.account("a").peers.get(3)) == await acct.peers.get(3)
    await assert_consistent(store, plain)


async def test_large_batches_refresh_only_cached_peers(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    peers = store.account("a").peers
    await peers.save(user(5, first_name="old"))
    size = peer_repo.WRITE_THROUGH_LIMIT + 10
    await peers.save_many([user(n, first_name="new") for n in range(1, size + 1)])
    cache = cache_of(store)
    assert list(cache.peers()) == [5]
    assert cache.peers()[5].first_name == "new"
    await assert_consistent(store, plain)
    assert (await peers.get(size)).first_name == "new"  # type: ignore[union-attr]


async def test_batches_past_the_copy_threshold_round_trip(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    """Large batches (COPY on PostgreSQL) write what small ones write, inside a host's transaction too."""
    peers = store.account("a").peers
    size = BulkUpsert.COPY_ROWS + 50
    first = [user(n, username=f"u{n}", phone_number=f"+1{n:06d}" if n % 3 else None) for n in range(1, size)]
    assert await peers.save_many(first) == size - 1
    second = [user(n, username=f"v{n}", first_name="second") for n in range(1, size)]
    second[-1] = user(size - 1, username="u1")  # takes peer 1's former name (peer 1 is now v1 anyway)
    async with AsyncSession(bind=store.engine) as session, session.begin():
        joined = store.account("a", session=session).peers
        await joined.save_many(second[: size // 2])
        await joined.save_many(second[size // 2 :])  # a second COPY batch in the same transaction
    stored = await plain.account("a").peers.list()
    assert stored == sorted(second, key=lambda p: p.id)
    assert (await peers.get_by_username("u1")).id == size - 1  # type: ignore[union-attr]
    assert await peers.get_by_username("u2") is None
    assert (await peers.get_by_username("V2")).first_name == "second"  # type: ignore[union-attr]
    await assert_consistent(store, plain)


async def test_writes_inside_a_host_transaction(store: tgpersist.Store, plain: tgpersist.Store) -> None:
    peers = store.account("a").peers
    await peers.save(user(1, first_name="committed", username="name"))
    assert (await peers.get(1)).first_name == "committed"  # type: ignore[union-attr]

    async with AsyncSession(bind=store.engine) as session:
        async with session.begin():
            joined = store.account("a", session=session).peers
            assert joined.cache is None
            await joined.save(user(1, first_name="inside", username="other"))
            assert (await joined.get(1)).first_name == "inside"  # type: ignore[union-attr]
        assert (await peers.get(1)).first_name == "inside"  # type: ignore[union-attr]
        assert await peers.get_by_username("name") is None
    await assert_consistent(store, plain)

    async with AsyncSession(bind=store.engine) as session, session.begin():
        joined = store.account("a", session=session).peers
        await joined.save(user(1, first_name="rolled back"))
        await joined.delete(1)
        await session.rollback()
    assert (await peers.get(1)).first_name == "inside"  # type: ignore[union-attr]

    async with AsyncSession(bind=store.engine) as session, session.begin():
        await store.account("a", session=session).session.delete()
    assert await peers.get(1) is None
    await assert_consistent(store, plain)


async def test_concurrent_reads_and_writes_leave_cache_equal_to_database(
    store: tgpersist.Store, plain: tgpersist.Store
) -> None:
    peers = store.account("a").peers
    rng = random.Random(7)
    names = ["n0", "n1", "n2", "n3"]

    async def writer(round_: int) -> None:
        for step in range(6):
            n = rng.randint(1, 6)
            if rng.random() < 0.2:
                await peers.delete(n)
            else:
                await peers.save(user(n, username=rng.choice(names), first_name=f"r{round_}s{step}"))

    async def reader() -> None:
        for _ in range(12):
            await peers.get(rng.randint(1, 6))
            await peers.get_by_username(rng.choice(names))

    for round_ in range(4):
        await asyncio.gather(writer(round_), writer(round_ + 100), reader(), reader())
        await assert_consistent(store, plain)
        for n in range(1, 7):
            assert await peers.get(n) == await plain.account("a").peers.get(n)
        for name in names:
            assert await peers.get_by_username(name) == await plain.account("a").peers.get_by_username(name)


# -- size, TTL, opt-out --------------------------------------------------------------------------------
async def test_cap_is_respected_least_recently_used_first(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, peer_cache_size=3) as store:
        peers = store.account("a").peers
        await peers.save_many([user(n, username=f"u{n}") for n in range(1, 6)])
        cache = cache_of(store)
        assert list(cache.peers()) == [3, 4, 5]
        assert set(cache.usernames()) == {"u3", "u4", "u5"}
        assert await peers.get(3) is not None  # 3 becomes the most recent
        assert await peers.get(1) is not None  # read through: evicts 4
        assert list(cache.peers()) == [5, 3, 1]
        assert set(cache.usernames()) == {"u5", "u3", "u1"}
        for n in range(1, 6):
            assert await peers.get_by_username(f"u{n}") is not None
            assert len(cache) <= 3


async def test_ttl_expires_entries(db_url: str) -> None:
    clock = FakeClock()
    async with await tgpersist.open_store(db_url, peer_cache_ttl=30) as store:
        store._db.peer_caches = PeerCaches(100, 30, clock=clock)
        peers = store.account("a").peers
        await peers.save(user(1, username="one"))
        cached = await peers.get(1)
        clock.now += 29
        assert await peers.get(1) is cached
        clock.now += 2
        fresh = await peers.get_by_username("one")
        assert fresh == cached and fresh is not cached
        assert await peers.get(1) is fresh


async def test_two_stores_with_a_ttl_converge(db_url: str) -> None:
    clock = FakeClock()
    async with (
        await tgpersist.open_store(db_url) as writer,
        await tgpersist.open_store(db_url, peer_cache_ttl=timedelta(seconds=5)) as reader,
    ):
        reader._db.peer_caches = PeerCaches(100, 5, clock=clock)
        await writer.account("a").peers.save(user(1, first_name="v1", username="name"))
        assert (await reader.account("a").peers.get(1)).first_name == "v1"  # type: ignore[union-attr]
        await writer.account("a").peers.save(user(1, first_name="v2", username="renamed"))
        # the reader's cache cannot know yet: it serves the old entry until the TTL runs out
        assert (await reader.account("a").peers.get(1)).first_name == "v1"  # type: ignore[union-attr]
        clock.now += 6
        assert (await reader.account("a").peers.get(1)).first_name == "v2"  # type: ignore[union-attr]
        assert await reader.account("a").peers.get_by_username("name") is None
        assert (await reader.account("a").peers.get_by_username("renamed")).id == 1  # type: ignore[union-attr]


async def test_opting_out_reads_the_database_every_time(db_url: str) -> None:
    async with (
        await tgpersist.open_store(db_url) as writer,
        await tgpersist.open_store(db_url, peer_cache_size=0) as reader,
    ):
        peers = reader.account("a").peers
        assert peers.cache is None
        await writer.account("a").peers.save(user(1, first_name="v1"))
        assert (await peers.get(1)).first_name == "v1"  # type: ignore[union-attr]
        await writer.account("a").peers.save(user(1, first_name="v2"))
        assert (await peers.get(1)).first_name == "v2"  # type: ignore[union-attr]
        assert await peers.get(1) is not await peers.get(1)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"peer_cache_size": -1}, "peer_cache_size"),
        ({"peer_cache_size": True}, "peer_cache_size"),
        ({"peer_cache_size": 1.5}, "peer_cache_size"),
        ({"peer_cache_ttl": 0}, "peer_cache_ttl"),
        ({"peer_cache_ttl": -2.0}, "peer_cache_ttl"),
        ({"peer_cache_ttl": "60"}, "peer_cache_ttl"),
    ],
)
async def test_invalid_cache_options(db_url: str, options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        await tgpersist.open_store(db_url, **options)  # type: ignore[arg-type]
    assert error.value.field == field


async def test_in_memory_sqlite_reads_through_its_single_connection() -> None:
    """SQLite only by nature (not parametrized by backend): an in-memory database."""
    async with await tgpersist.open_store("sqlite+aiosqlite:///:memory:", peer_cache_size=0) as store:
        peers = store.account("a").peers
        await peers.save(user(1, username="mem", is_bot=True))
        found = await peers.get_by_username("mem")
        assert found is not None and found.type is PeerType.BOT and found.is_bot is True
        assert found.updated_at is not None and found.updated_at.tzinfo is not None


async def test_reads_reopen_the_read_connection_after_close(
    store: tgpersist.Store, plain: tgpersist.Store, backend: str
) -> None:
    peers = plain.account("a").peers
    await peers.save(user(1))
    assert await peers.get(1) is not None
    await plain._db.close()  # as Store.close() does
    assert (await peers.get(1)).id == 1  # type: ignore[union-attr]
    if backend == "sqlite":  # the held connection closed behind the reader's back: it reconnects
        reader = plain._db._reader
        await reader._pinned.driver.close()  # type: ignore[union-attr]
        assert (await peers.get(1)).id == 1  # type: ignore[union-attr]


async def test_read_errors_surface_as_sqlalchemy_errors(db_url: str, plain: tgpersist.Store) -> None:
    async with plain.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE tgpersist_usernames")
    with pytest.raises(DBAPIError):
        await plain.account("a").peers.get(1)


# -- the cache itself --------------------------------------------------------------------------------
def test_a_read_that_overlapped_a_write_is_not_cached() -> None:
    cache = PeerCache(10)
    peer = user(1)
    token = cache.token()
    write = cache.begin_write([1])
    cache.fill(token, 1, peer)
    assert len(cache) == 0
    assert cache.token() is None  # reads during a write do not fill
    cache.end_write(write, [(1, peer)])
    assert cache.peers() == {1: peer}
    cache.fill(token, 1, replace(peer, first_name="stale"))  # the token predates the write
    assert cache.peers()[1].first_name == "U1"


def test_overlapping_writes_leave_their_peers_to_the_next_read() -> None:
    cache = PeerCache(10)
    first = cache.begin_write([1])
    second = cache.begin_write([2])
    cache.end_write(second, [(2, user(2))])
    cache.end_write(first, [(1, user(1))])
    assert len(cache) == 0
    token = cache.token()
    cache.fill(token, 1, user(1))
    assert list(cache.peers()) == [1]


def test_phone_index_entries_go_with_their_peer() -> None:
    cache = PeerCache(1)
    cache.fill(cache.token(), 1, user(1, phone_number="+1 555"), phone_key("+1 555"))
    assert cache.phones() == {"1555": 1}
    cache.fill(cache.token(), 2, user(2))
    assert cache.phones() == {} and list(cache.peers()) == [2]


def test_trusted_peers_equal_validated_ones() -> None:
    now = utcnow()
    values = (5, PeerType.USER, 9, "Bob", ("Bob", "b2"), "B", None, None, "+1 555", False, 77, "en", now)
    fast = peer_repo.trusted_peer(*values)
    checked = Peer(*values)
    assert fast == checked and hash(fast) == hash(checked) and repr(fast) == repr(checked)


@given(st.from_regex(r"\+?[0-9][0-9 ]{0,31}", fullmatch=True))
def test_bulk_phone_keys_equal_the_validated_ones(phone: str) -> None:
    assert peer_repo.phone_digits(phone) == phone_key(phone)
