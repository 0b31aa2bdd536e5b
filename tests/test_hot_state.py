"""Hot state: while this process holds an account's lease, update state and channel pts come from
memory (nobody else may write them); without the lease, every read goes to the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import tgpersist
from tgpersist import ChannelState, UpdateState


@pytest.fixture
async def other(db_url: str, store: tgpersist.Store) -> AsyncIterator[tgpersist.Store]:
    """A second store (its own engine and connections) on the same database: another process."""
    async with await tgpersist.open_store(db_url) as second:
        yield second


async def test_without_the_lease_every_read_sees_the_database(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    mine, theirs = store.account("bot").updates, other.account("bot").updates
    await mine.save_state(UpdateState(1, 1, 1, 1))
    await mine.save_channel(ChannelState(5, 50))
    assert await mine.load_state() == UpdateState(1, 1, 1, 1)
    await theirs.save_state(UpdateState(2, 2, 2, 2))
    await theirs.save_channels([ChannelState(5, 51), ChannelState(6, 60)])
    assert await mine.load_state() == UpdateState(2, 2, 2, 2)
    assert await mine.load_channel(5) == ChannelState(5, 51)
    assert await mine.list_channels() == [ChannelState(5, 51), ChannelState(6, 60)]


async def test_under_the_lease_reads_come_from_memory_until_it_is_released(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    acct, theirs = store.account("bot"), other.account("bot").updates
    await acct.updates.save_state(UpdateState(1, 1, 1, 1))
    await acct.updates.save_channels([ChannelState(5, 50), ChannelState(6, 60)])
    async with acct.session.lease(owner="me", heartbeat=0):
        assert await acct.updates.load_state() == UpdateState(1, 1, 1, 1)  # read once, kept
        assert await acct.updates.list_channels() == [ChannelState(5, 50), ChannelState(6, 60)]
        # Another store writes without the lease (unfenced): the holder's memory is what it answers.
        await theirs.save_state(UpdateState(9, 9, 9, 9))
        await theirs.save_channels([ChannelState(5, 99), ChannelState(7, 70)])
        assert await acct.updates.load_state() == UpdateState(1, 1, 1, 1)
        assert await acct.updates.load_channel(5) == ChannelState(5, 50)
        assert await acct.updates.load_channel(7) is None  # the whole list is known: 7 is not in it
        assert await acct.updates.list_channels() == [ChannelState(5, 50), ChannelState(6, 60)]
    # Released: the database again.
    assert await acct.updates.load_state() == UpdateState(9, 9, 9, 9)
    assert await acct.updates.load_channel(7) == ChannelState(7, 70)
    assert await acct.updates.list_channels() == [
        ChannelState(5, 99),
        ChannelState(6, 60),
        ChannelState(7, 70),
    ]


async def test_writes_under_the_lease_go_through_to_memory(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    acct, theirs = store.account("bot"), other.account("bot").updates
    async with acct.session.lease(owner="me", heartbeat=0):
        assert await acct.updates.load_state() is None
        assert await acct.updates.load_channel(3) is None
        await asyncio.gather(
            acct.updates.save_state(UpdateState(4, 4, 4, 4)),
            acct.updates.save_channel(ChannelState(3, 30)),
        )
        await theirs.save_state(UpdateState(8, 8, 8, 8))  # overwritten in the database behind our back
        await theirs.save_channel(ChannelState(3, 80))
        assert await acct.updates.load_state() == UpdateState(4, 4, 4, 4)  # what we wrote, from memory
        assert await acct.updates.load_channel(3) == ChannelState(3, 30)
        assert await acct.updates.delete_channel(3) is True
        assert await acct.updates.load_channel(3) is None
    assert await theirs.load_state() == UpdateState(8, 8, 8, 8)


async def test_a_lost_lease_drops_the_memory(store: tgpersist.Store, other: tgpersist.Store) -> None:
    acct, rival = store.account("bot"), other.account("bot")
    await acct.updates.save_state(UpdateState(1, 1, 1, 1))
    lease = await acct.session.acquire(owner="me", ttl=0.5, heartbeat=0)
    assert await acct.updates.load_state() == UpdateState(1, 1, 1, 1)
    await asyncio.sleep(0.6)  # expired unrenewed: the rival takes over and writes
    async with rival.session.lease(owner="rival", heartbeat=0):
        await rival.updates.save_state(UpdateState(2, 2, 2, 2))
        with pytest.raises(tgpersist.LeaseLost):
            await lease.renew()
        assert lease.lost
        assert await acct.updates.load_state() == UpdateState(2, 2, 2, 2)
        with pytest.raises(tgpersist.LeaseLost):
            await acct.updates.save_state(UpdateState(3, 3, 3, 3))
        assert await acct.updates.load_state() == UpdateState(2, 2, 2, 2)
    await lease.release()


async def test_a_new_lease_does_not_trust_memory_from_the_last_one(
    store: tgpersist.Store, other: tgpersist.Store
) -> None:
    acct, theirs = store.account("bot"), other.account("bot").updates
    async with acct.session.lease(owner="me", heartbeat=0):
        await acct.updates.save_state(UpdateState(1, 1, 1, 1))
    await theirs.save_state(UpdateState(5, 5, 5, 5))  # written while nobody held the lease
    async with acct.session.lease(owner="me", heartbeat=0):
        assert await acct.updates.load_state() == UpdateState(5, 5, 5, 5)


async def test_deleting_the_session_under_the_lease_drops_the_memory(store: tgpersist.Store) -> None:
    acct = store.account("bot")
    async with acct.session.lease(owner="me", heartbeat=0):
        await acct.updates.save_state(UpdateState(1, 1, 1, 1))
        await acct.updates.save_channel(ChannelState(2, 2))
        assert await acct.updates.list_channels() == [ChannelState(2, 2)]
        assert await acct.session.delete() is True
        assert await acct.updates.load_state() is None
        assert await acct.updates.list_channels() == []
