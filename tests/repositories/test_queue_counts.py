"""`counts()` by state, `store.stats()`, `requeue_many`/`requeue_dead`/`purge`, and the dead letter a
claim makes when a lease expires once too often — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

import pytest

import tgpersist
from tgpersist import DurableUpdate, QueueCounts, QueuePolicy


async def test_each_state_is_counted_once(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, queue_policy=QueuePolicy(max_attempts=3)) as store:
        queue = store.account("alice").updates
        assert await queue.counts() == QueueCounts()
        await queue.enqueue_many(DurableUpdate(b"x", id=f"a{i}") for i in range(3))
        await queue.enqueue(DurableUpdate(b"x", id="later"), delay=3600)  # delayed: waiting
        [held] = await queue.claim(1, owner="w1", lease=600)  # in flight
        [short] = await queue.claim(1, owner="w2", lease=0.05)  # its lease runs out: available again
        await asyncio.sleep(0.1)
        counts = await queue.counts()
        assert (counts.available, counts.in_flight, counts.retry_wait, counts.dead) == (2, 1, 1, 0)
        assert counts.pending == 4 and counts["pending"] == 4 and counts["dead"] == 0
        assert counts.oldest_age is not None and 0 <= counts.oldest_age < 60
        assert await queue.fail(short.id, "boom", owner="w2") is False  # w2's lease is gone
        assert await queue.fail(held.id, "boom", owner="w1", retry_in=3600)
        counts = await queue.counts()
        assert (counts.available, counts.in_flight, counts.retry_wait) == (2, 0, 2)

        await store.account("bob").session.save(tgpersist.Session("bob"))
        stats = await store.stats()
        assert sorted(stats) == ["alice", "bob"] and stats["bob"] == QueueCounts()
        assert stats["alice"].as_dict() | {"oldest_age": 0} == counts.as_dict() | {"oldest_age": 0}
        assert store.last_stats == stats


async def test_a_lease_that_expires_once_too_often_is_a_logged_dead_letter(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tgpersist.queue")
    async with await tgpersist.open_store(db_url, queue_policy=QueuePolicy(max_attempts=1)) as store:
        queue = store.account("alice").updates
        await queue.enqueue(DurableUpdate(b"secret payload", id="u1"))
        assert [u.id for u in await queue.claim(1, owner="w1", lease=0.05)] == ["u1"]
        await asyncio.sleep(0.1)
        assert await queue.claim(1, owner="w2") == []  # its one attempt is spent: dead, not handed out
        assert (await queue.counts()).dead == 1
    [record] = caplog.records
    assert (record.session, record.id, record.attempts) == ("alice", "u1", 1)  # type: ignore[attr-defined]
    assert record.last_error == "lease of w1 expired unsettled"  # type: ignore[attr-defined]
    assert "secret payload" not in str(vars(record))


async def test_requeue_and_purge(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, queue_policy=QueuePolicy(max_attempts=1)) as store:
        queue = store.account("alice").updates
        await queue.enqueue_many(DurableUpdate(b"x", id=f"u{i}") for i in range(4))
        for update in await queue.claim(3, owner="w"):
            assert await queue.fail(update.id, "boom", owner="w")  # each one dead at once
        await queue.claim(1, owner="w3", lease=600)  # u3 in flight
        assert (await queue.counts()).dead == 3
        assert await queue.requeue_many(["u0", "u3", "missing"]) == ["u0"]  # u3 is leased: left alone
        assert await queue.requeue_many([]) == []
        with pytest.raises(tgpersist.InvalidArgument):
            await queue.requeue_many([""])
        assert await queue.requeue_dead() == 2
        counts = await queue.counts()
        assert (counts.available, counts.in_flight, counts.dead) == (3, 1, 0)
        for update in await queue.claim(3, owner="w"):
            await queue.fail(update.id, "boom", owner="w")
        assert await queue.purge() == 3
        assert (await queue.counts()).pending == 1
        assert await queue.purge(dead_only=False) == 1
        assert await queue.counts() == QueueCounts()
