"""`Store.prune()`: expired dedup keys and conversations of every account are deleted and counted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import tgpersist
from tgpersist import Conversation
from tgpersist.maintenance import Pruned


async def test_prune_removes_what_expired_in_every_account_and_nothing_else(store: tgpersist.Store) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(hours=1)
    for name in ("alice", "bob"):
        acct = store.account(name)
        assert await acct.updates.remember("old", ttl=0.01) is True
        assert await acct.updates.remember("live") is True
        await acct.conversations.save(Conversation(1, 1, step="over", expires_at=past))
        await acct.conversations.save(Conversation(2, 2, step="later", expires_at=future))
        await acct.conversations.save(Conversation(3, 3, step="forever"))
    await asyncio.sleep(0.05)

    for name in ("alice", "bob"):  # expired rows are invisible before any pruning
        acct = store.account(name)
        assert await acct.conversations.load(1, 1) is None
        assert [c.step for c in await acct.conversations.list()] == ["later", "forever"]
        assert await acct.updates.seen("old") is False

    pruned = await store.prune()
    assert pruned == Pruned(dedup_keys=2, conversations=2) and pruned.total == 4
    assert await store.prune() == Pruned()
    for name in ("alice", "bob"):
        acct = store.account(name)
        assert await acct.updates.seen("live") is True
        assert await acct.updates.remember("old") is True  # new again
        assert [c.step for c in await acct.conversations.list()] == ["later", "forever"]
        assert await acct.updates.prune() == 0
        assert await acct.conversations.prune() == 0


async def test_a_conversation_disappears_when_it_expires(store: tgpersist.Store) -> None:
    acct = store.account("carol")
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    await acct.conversations.save(
        Conversation(5, 6, thread_id=7, name="signup", step="email", expires_at=soon)
    )
    live = await acct.conversations.load(5, 6, thread_id=7)
    assert live is not None and live.step == "email" and live.expires_at == soon
    await asyncio.sleep(0.4)
    assert await acct.conversations.load(5, 6, thread_id=7) is None
    assert await acct.conversations.list() == []
    assert await store.prune() == Pruned(dedup_keys=0, conversations=1)
    # Saving it again brings it back with a new expiry.
    await acct.conversations.save(
        Conversation(5, 6, thread_id=7, step="email", expires_at=soon + timedelta(hours=1))
    )
    assert (await acct.conversations.load(5, 6, thread_id=7)) is not None
