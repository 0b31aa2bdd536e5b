"""Update state, channel pts and dedup keys."""

from __future__ import annotations

import asyncio

from tgpersist import ChannelState, Session, Store, UpdateState
from tgpersist.testing.conformance.support import fresh_name


class UpdateConformance:
    """Update state, channel pts and dedup keys."""

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
