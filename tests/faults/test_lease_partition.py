"""A lease holder cut off from PostgreSQL (route reset, or frozen) knows it lost the lease before anyone
else can take it, calls `on_lost` exactly once, and none of its writes is stored after the takeover."""

from __future__ import annotations

import asyncio

import pytest

import tgpersist
from tgpersist import DatabaseUnavailable, LeaseLost, SessionLease, UpdateState
from tgpersist.testing.faults import FaultProxy

NAME = "bot"
TTL = 2.0


@pytest.mark.parametrize("fault", ["cut", "pause"])
async def test_a_cut_off_holder_reports_lost_before_the_second_acquire_succeeds(
    pg_url: str, proxy: FaultProxy, fault: str
) -> None:
    async with (
        await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=1) as holder,
        await tgpersist.open_store(pg_url) as rival,
    ):
        told: list[bool] = []

        def on_lost(lease: SessionLease) -> None:
            told.append(lease.lost)

        acct = holder.account(NAME)
        lease = await acct.session.acquire(owner="a", ttl=TTL, on_lost=on_lost)
        await acct.updates.save_state(UpdateState(pts=1, qts=1, date=1, seq=1))
        await lease.renew()
        assert not lease.lost
        proxy.cut() if fault == "cut" else proxy.pause()

        taken = await asyncio.wait_for(
            rival.account(NAME).session.acquire(owner="b", ttl=30, wait=True, timeout=TTL * 4), TTL * 5
        )
        # The instant the rival holds the lease, the old holder already knows, and was told once.
        assert (lease.lost, told) == (True, [True])
        assert taken.token == lease.token + 1
        await rival.account(NAME).updates.save_state(UpdateState(pts=100, qts=1, date=1, seq=1))

        proxy.restore()
        with pytest.raises(LeaseLost):
            await lease.renew()
        with pytest.raises(LeaseLost):  # the database's fence refuses the old holder's write
            await acct.updates.save_state(UpdateState(pts=5, qts=1, date=1, seq=1))
        assert await rival.account(NAME).updates.load_state() == UpdateState(pts=100, qts=1, date=1, seq=1)
        await asyncio.sleep(TTL / 3 * 2)  # two more heartbeats' worth: still told exactly once
        assert told == [True] and lease.lost
        assert await lease.release() is False
        await taken.release()


async def test_a_renewal_over_a_frozen_route_is_cut_at_the_deadline_and_logged(
    pg_url: str, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    async with await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=1) as holder:
        lease = await holder.account(NAME).session.acquire(owner="a", ttl=TTL, heartbeat=0)
        proxy.pause()
        with pytest.raises(DatabaseUnavailable) as caught:
            await asyncio.wait_for(lease.renew(), TTL * 3)  # bounded by what is left of the lease
        assert (caught.value.host, caught.value.port) == ("127.0.0.1", proxy.port)
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert lease.lost
        hang = [r for r in caplog.records if r.name == "tgpersist.lease" and "renewing" in r.getMessage()]
        assert hang and hang[0].levelname == "WARNING"
        assert NAME in hang[0].getMessage() and f"127.0.0.1:{proxy.port}" in hang[0].getMessage()
        assert (hang[0].session, hang[0].owner, hang[0].token) == (NAME, "a", lease.token)  # type: ignore[attr-defined]
        lost = [r for r in caplog.records if r.name == "tgpersist.lease" and " lost" in r.getMessage()]
        assert len(lost) == 1
        proxy.restore()
