"""Session leases in one process: acquire/renew/release, waiting, fencing, heartbeat, database clock.

A second `Store` on the same database stands for another client; the multi-process cases are in
tests/test_lease_processes.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import tgpersist
import tgpersist.clock
from tgpersist import (
    ChannelState,
    DcAuth,
    InvalidArgument,
    LeaseInfo,
    LeaseLost,
    Peer,
    PeerType,
    Session,
    SessionBusy,
    SessionLease,
    UpdateState,
)
from tgpersist.sql.statements import db_epoch

NAME = "alice"
KEY = bytes(range(256))
#: Far enough off that any use of the client's clock for expiry would show.
SKEW = 365 * 86400.0
#: `datetime.fromtimestamp` keeps microseconds; compare database epochs with this much slack.
EPS = 1e-3


@pytest.fixture
async def other(db_url: str, store: tgpersist.Store) -> AsyncIterator[tgpersist.Store]:
    """A second client of the same database, with its own engine."""
    async with await tgpersist.open_store(db_url) as second:
        yield second


async def db_now(store: tgpersist.Store) -> float:
    async with store.engine.connect() as conn:
        return float((await conn.execute(select(db_epoch(store.dialect)))).scalar_one())


async def take_over(store: tgpersist.Store, name: str, owner: str = "thief") -> None:
    """What another process's acquire does to the row, done behind the holder's back."""
    t = store.models.table(store.models.Session)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(t)
            .where(t.c.name == name)
            .values(
                lease_owner=owner,
                lease_token=t.c.lease_token + 1,
                lease_expires=db_epoch(store.dialect) + 600,
            )
        )


def full_session(**changes: Any) -> Session:
    values: dict[str, Any] = {
        "dc_id": 2,
        "api_id": 12345,
        "api_hash": "0123456789abcdef0123456789abcdef",
        "auth_key": KEY,
        "server_address": "149.154.167.51",
        "port": 443,
        "user_id": 777,
        "is_bot": True,
        "first_name": "Alice",
        "username": "alice_bot",
        "date": 1700000000,
        "server_salt": 99,
        "takeout_id": 5,
        "state": b"opaque",
    }
    values.update(changes)
    return Session(NAME, **values)


# -- acquire / holder / busy ----------------------------------------------------------------------
async def test_acquire_makes_one_owner_and_others_get_busy(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    lease = await store.account(NAME).session.acquire(owner="worker-1", ttl=30, heartbeat=0)
    try:
        assert isinstance(lease, SessionLease)
        assert (lease.owner, lease.token, lease.lost, lease.released) == ("worker-1", 1, False, False)
        assert lease.expires_at.tzinfo is UTC
        expected = LeaseInfo("worker-1", 1, lease.expires_at)
        assert await store.account(NAME).session.holder() == expected
        assert await other.account(NAME).session.holder() == expected
        with pytest.raises(SessionBusy) as caught:
            await other.account(NAME).session.acquire(owner="worker-2", ttl=30)
        assert (caught.value.name, caught.value.owner, caught.value.expires_at) == (
            NAME,
            "worker-1",
            lease.expires_at,
        )
        assert "worker-1" in str(caught.value)
        # Owner names do not matter: a held lease is busy even for the same owner and account object.
        with pytest.raises(SessionBusy):
            await store.account(NAME).session.acquire(owner="worker-1", ttl=30)
    finally:
        assert await lease.release() is True
    assert await other.account(NAME).session.holder() is None


async def test_expiry_is_database_now_plus_ttl(store: tgpersist.Store) -> None:
    before = await db_now(store)
    lease = await store.account(NAME).session.acquire(owner="w", ttl=7.5, heartbeat=0)
    after = await db_now(store)
    assert before + 7.5 - EPS <= lease.expires_at.timestamp() <= after + 7.5 + EPS
    previous = lease.expires_at
    renewed = await lease.renew()
    assert renewed == lease.expires_at >= previous
    assert (await store.account(NAME).session.holder()) == LeaseInfo("w", 1, renewed)
    await lease.release()


async def test_acquire_creates_a_missing_session_row_with_a_default_owner(store: tgpersist.Store) -> None:
    async with store.account(NAME).session.lease(ttl=30) as lease:
        assert lease.token == 1
        assert lease.owner.endswith(f":{os.getpid()}")  # host:pid
        assert await store.list_sessions() == [NAME]
        loaded = await store.account(NAME).session.load()
        assert loaded is not None and loaded.auth_key is None and loaded.dc_id is None


async def test_lease_columns_are_the_only_thing_acquire_and_release_touch(store: tgpersist.Store) -> None:
    acct = store.account(NAME)
    await acct.session.save(full_session())
    before = await acct.session.load()
    lease = await acct.session.acquire(owner="w", ttl=30)
    assert await acct.session.load() == before
    await lease.renew()
    await lease.release()
    assert await acct.session.load() == before


async def test_release_frees_at_once_and_tokens_strictly_increase(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    tokens = []
    for _ in range(3):
        for client, owner in ((store, "a"), (other, "b")):
            lease = await client.account(NAME).session.acquire(owner=owner, ttl=30)
            tokens.append(lease.token)
            assert await lease.release() is True
            assert await lease.release() is False  # releasing twice is harmless
            assert await client.account(NAME).session.holder() is None
    assert tokens == [1, 2, 3, 4, 5, 6]


async def test_context_managers_release_even_when_the_body_fails(store: tgpersist.Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.account(NAME).session.lease(owner="w", ttl=30, heartbeat=0) as lease:
            assert (await store.account(NAME).session.holder()) == LeaseInfo("w", 1, lease.expires_at)
            raise RuntimeError("boom")
    assert lease.released
    assert await store.account(NAME).session.holder() is None
    # A lease object is an async context manager too.
    async with await store.account(NAME).session.acquire(owner="w", ttl=30) as lease:
        assert lease.token == 2
    assert lease.released and await store.account(NAME).session.holder() is None


async def test_store_close_releases_held_leases(db_url: str, store: tgpersist.Store) -> None:
    first = await tgpersist.open_store(db_url)
    lease = await first.account(NAME).session.acquire(owner="w", ttl=30)
    await first.close()
    assert lease.released
    assert await store.account(NAME).session.holder() is None


# -- waiting ---------------------------------------------------------------------------------------
async def test_wait_times_out_with_busy_or_acquires_as_soon_as_the_holder_releases(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    first = await store.account(NAME).session.acquire(owner="a", ttl=30)
    with pytest.raises(SessionBusy) as caught:
        await other.account(NAME).session.acquire(owner="b", ttl=30, wait=True, timeout=0.3)
    assert caught.value.owner == "a"
    waiting = asyncio.create_task(
        other.account(NAME).session.acquire(owner="b", ttl=30, wait=True, timeout=30)
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await first.release()
    second = await asyncio.wait_for(waiting, 10)
    assert (second.owner, second.token) == ("b", 2)
    await second.release()


async def test_an_unrenewed_lease_expires_and_its_holder_is_fenced_off(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    acct = store.account(NAME)
    stale = await acct.session.acquire(owner="a", ttl=0.5, heartbeat=0)
    await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
    fresh = await other.account(NAME).session.acquire(owner="b", ttl=30, wait=True, timeout=10)
    assert fresh.token == stale.token + 1
    with pytest.raises(LeaseLost) as caught:
        await stale.renew()
    assert (caught.value.name, caught.value.token) == (NAME, stale.token)
    assert stale.lost
    with pytest.raises(LeaseLost):
        await acct.updates.save_state(UpdateState(pts=2, qts=2, date=2, seq=2))
    assert await acct.updates.load_state() == UpdateState(pts=1, qts=1, date=1, seq=1)
    assert await stale.release() is False
    await fresh.release()


# -- fencing ---------------------------------------------------------------------------------------
async def test_writes_under_a_taken_over_lease_raise_lease_lost_and_write_nothing(
    store: tgpersist.Store,
) -> None:
    acct = store.account(NAME)
    lease = await acct.session.acquire(owner="a", ttl=30, heartbeat=0)
    # While held, fenced writes go through.
    await acct.session.save(full_session())
    await acct.dc_auth.save(DcAuth(dc_id=4, auth_key=KEY, ipv4="149.154.167.91", port=443))
    await acct.updates.save_state(UpdateState(pts=10, qts=1, date=2, seq=3))
    await acct.updates.save_channel(ChannelState(channel_id=5, pts=50))
    await acct.updates.save_channels([ChannelState(channel_id=6, pts=60)])
    before = (
        await acct.session.load(),
        await acct.dc_auth.list(),
        await acct.updates.load_state(),
        await acct.updates.list_channels(),
    )

    await take_over(store, NAME)
    attempts = [
        acct.session.save(full_session(dc_id=1, user_id=999)),
        acct.dc_auth.save(DcAuth(dc_id=4, auth_key=bytes(256), ipv4="10.0.0.1", port=80)),
        acct.dc_auth.save(DcAuth(dc_id=5, auth_key=KEY, ipv4="149.154.171.5", port=443)),
        acct.updates.save_state(UpdateState(pts=11, qts=1, date=2, seq=3)),
        acct.updates.save_channel(ChannelState(channel_id=5, pts=51)),
        acct.updates.save_channels([ChannelState(channel_id=6, pts=61), ChannelState(channel_id=7, pts=70)]),
    ]
    for attempt in attempts:
        with pytest.raises(LeaseLost) as caught:
            await attempt
        assert caught.value.token == lease.token
    after = (
        await acct.session.load(),
        await acct.dc_auth.list(),
        await acct.updates.load_state(),
        await acct.updates.list_channels(),
    )
    assert after == before
    # Unfenced data (the peer cache) is still written.
    await acct.peers.save(Peer(101, PeerType.USER, access_hash=1))
    assert (await acct.peers.get(101)) is not None
    # Releasing a lost lease does not lift the fence: the new owner owns this state now.
    assert await lease.release() is False
    assert lease.lost
    with pytest.raises(LeaseLost):
        await acct.updates.save_state(UpdateState(pts=12, qts=1, date=2, seq=3))


async def test_writes_are_unfenced_again_after_a_clean_release(store: tgpersist.Store) -> None:
    acct = store.account(NAME)
    async with acct.session.lease(owner="a", ttl=30):
        await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
    await take_over(store, NAME)  # someone else holds it now, but this account holds no lease
    await acct.updates.save_state(UpdateState(pts=2, qts=2, date=2, seq=2))
    assert await acct.updates.load_state() == UpdateState(pts=2, qts=2, date=2, seq=2)


async def test_explicit_tokens_fence_writes_for_callers_that_manage_them(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    manager = await other.account(NAME).session.acquire(owner="manager", ttl=30)
    acct = store.account(NAME)  # holds no lease itself: passes the manager's token
    token = manager.token
    await acct.session.save(full_session(), token=token)
    await acct.dc_auth.save(DcAuth(dc_id=2, auth_key=KEY, ipv4="149.154.167.51", port=443), token=token)
    await acct.updates.save_state(UpdateState(pts=1, qts=2, date=3, seq=4), token=token)
    await acct.updates.save_channel(ChannelState(channel_id=9, pts=90), token=token)

    for wrong in (token + 1, token - 1):
        with pytest.raises(LeaseLost) as caught:
            await acct.updates.save_state(UpdateState(pts=5, qts=5, date=5, seq=5), token=wrong)
        assert caught.value.token == wrong
    await manager.release()
    successor = await other.account(NAME).session.acquire(owner="successor", ttl=30)
    with pytest.raises(LeaseLost):
        await acct.session.save(full_session(user_id=1), token=token)
    with pytest.raises(LeaseLost):
        await acct.dc_auth.save(DcAuth(dc_id=3, auth_key=KEY, ipv4="149.154.175.100", port=443), token=token)
    with pytest.raises(LeaseLost):
        await acct.updates.save_channels([ChannelState(channel_id=9, pts=91)], token=token)
    assert (await acct.session.load()) == (await other.account(NAME).session.load())
    assert (await acct.session.load()).user_id == 777  # type: ignore[union-attr]
    assert [e.dc_id for e in await acct.dc_auth.list()] == [2]
    assert await acct.updates.load_state() == UpdateState(pts=1, qts=2, date=3, seq=4)
    assert await acct.updates.list_channels() == [ChannelState(channel_id=9, pts=90)]
    await acct.updates.save_state(UpdateState(pts=6, qts=6, date=6, seq=6), token=successor.token)
    await successor.release()
    # A token for a session that does not exist matches nothing.
    with pytest.raises(LeaseLost):
        await store.account("nobody").updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1), token=1)
    assert await store.list_sessions() == [NAME]


# -- heartbeat -------------------------------------------------------------------------------------
async def test_heartbeat_keeps_the_lease_past_its_ttl(store: tgpersist.Store, other: tgpersist.Store) -> None:
    # A TTL of 3 s: the release at the end gets what is left of it (at least ~2.7 s), enough for a
    # loaded CI machine's SQLite file (a 1.5 s TTL once left it 1.1 s, and that was too little).
    lease = await store.account(NAME).session.acquire(owner="a", ttl=3, heartbeat=0.25)
    first_expiry = lease.expires_at
    await asyncio.sleep(3.5)  # longer than the TTL: only renewals keep it
    assert not lease.lost
    assert lease.expires_at > first_expiry
    with pytest.raises(SessionBusy):
        await other.account(NAME).session.acquire(owner="b", ttl=1)
    seen = await other.account(NAME).session.holder()
    assert seen is not None and (seen.owner, seen.token) == ("a", 1)
    assert await lease.release() is True


async def test_heartbeat_reports_a_takeover_to_on_lost(store: tgpersist.Store) -> None:
    told: list[tuple[str, SessionLease]] = []

    def sync_callback(lease: SessionLease) -> None:
        told.append(("sync", lease))

    async def async_callback(lease: SessionLease) -> None:
        await asyncio.sleep(0)
        told.append(("async", lease))

    def failing_callback(lease: SessionLease) -> None:
        told.append(("failing", lease))
        raise RuntimeError("a bug in the callback")  # logged; the lease is still marked lost

    callbacks = {"sync": sync_callback, "async": async_callback, "failing": failing_callback}
    leases = {
        name: await store.account(name).session.acquire(owner="a", ttl=30, heartbeat=0.1, on_lost=callback)
        for name, callback in callbacks.items()
    }
    for name in callbacks:
        await take_over(store, name)
    for _ in range(1000):
        if len(told) == 3:
            break
        await asyncio.sleep(0.01)
    assert sorted(told, key=lambda item: item[0]) == sorted(leases.items())
    for lease in leases.values():
        assert lease.lost and not lease.released
        assert await lease.release() is False


# -- the database clock decides ------------------------------------------------------------------
def skew_client_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make this process's wall clock (time.time and tgpersist's utcnow) wrong by `seconds`."""
    monkeypatch.undo()
    real_time, real_time_ns = time.time, time.time_ns

    class SkewedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(time, "time", lambda: real_time() + seconds)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + int(seconds * 1e9))
    monkeypatch.setattr(tgpersist.clock, "datetime", SkewedDatetime)


@pytest.mark.parametrize("holder_skew", [SKEW, -SKEW])
async def test_expiry_is_decided_by_the_database_clock_not_the_clients(
    store: tgpersist.Store, other: tgpersist.Store, monkeypatch: pytest.MonkeyPatch, holder_skew: float
) -> None:
    ttl = 0.5
    try:
        # The holder's clock is a year off: its lease still lasts ttl seconds of database time.
        skew_client_clock(monkeypatch, holder_skew)
        assert abs(time.time() - datetime.now(UTC).timestamp() - holder_skew) < 5
        before = await db_now(store)
        lease = await store.account(NAME).session.acquire(owner="skewed", ttl=ttl, heartbeat=0)
        after = await db_now(store)
        assert before + ttl - EPS <= lease.expires_at.timestamp() <= after + ttl + EPS

        # A rival whose clock is a year off the other way neither steals it early nor sees it ending late.
        skew_client_clock(monkeypatch, -holder_skew)
        assert await other.account(NAME).session.holder() == LeaseInfo("skewed", 1, lease.expires_at)
        with pytest.raises(SessionBusy) as caught:
            await other.account(NAME).session.acquire(owner="rival", ttl=ttl)
        assert caught.value.expires_at == lease.expires_at
        rival = await other.account(NAME).session.acquire(owner="rival", ttl=ttl, wait=True, timeout=10)
        assert rival.token == 2
        # It got the lease only once the database's clock had passed the holder's expiry.
        assert rival.expires_at.timestamp() >= lease.expires_at.timestamp() + ttl - EPS
        assert rival.expires_at.timestamp() <= await db_now(store) + ttl + EPS
        await rival.release()
        await lease.release()
    finally:
        monkeypatch.undo()


# -- arguments -------------------------------------------------------------------------------------
BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"ttl": 0}, "ttl"),
    ({"ttl": -1}, "ttl"),
    ({"ttl": "30"}, "ttl"),
    ({"ttl": True}, "ttl"),
    ({"ttl": float("inf")}, "ttl"),
    ({"ttl": 3, "heartbeat": 3}, "heartbeat"),
    ({"heartbeat": -1}, "heartbeat"),
    ({"owner": ""}, "owner"),
    ({"owner": "x" * 256}, "owner"),
    ({"owner": 5}, "owner"),
    ({"timeout": -1, "wait": True}, "timeout"),
    ({"on_lost": "not callable"}, "on_lost"),
]


async def test_bad_arguments_name_the_field_and_write_nothing(store: tgpersist.Store) -> None:
    for kwargs, field in BAD_ARGUMENTS:
        with pytest.raises(InvalidArgument) as caught:
            await store.account(NAME).session.acquire(**kwargs)
        assert caught.value.field == field, kwargs
    with pytest.raises(InvalidArgument) as caught:
        state = UpdateState(pts=1, qts=1, date=1, seq=1)
        await store.account(NAME).updates.save_state(state, token="1")  # type: ignore[arg-type]
    assert caught.value.field == "token"
    async with AsyncSession(store.engine) as host:
        with pytest.raises(InvalidArgument) as caught:
            await store.account(NAME, session=host).session.acquire(owner="w", ttl=30)
    assert caught.value.field == "session"
    assert await store.list_sessions() == []
