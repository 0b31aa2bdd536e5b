"""A scripted store for the CLI tests: alice (auth key, user, peers, a queue in every state, a held
lease) and bob (a bare session)."""

from __future__ import annotations

import tgpersist
from tgpersist import DurableUpdate, Peer, PeerType, QueuePolicy, Session

KEY = bytes(range(256))
POLICY = QueuePolicy(max_attempts=2)


async def populate(url: str) -> None:
    """alice: queue with 2 available (u3, u4), 1 in flight (u2, owner w2), 1 waiting (u1), 1 dead (d);
    3 peers; lease held by bot-1 for 600 s. bob: DC 4 and nothing else."""
    async with await tgpersist.open_store(url, queue_policy=POLICY) as store:
        alice = store.account("alice")
        await alice.session.save(
            Session("alice", dc_id=2, auth_key=KEY, user_id=777, username="alice_bot", api_hash="a" * 32)
        )
        await store.account("bob").session.save(Session("bob", dc_id=4))
        await alice.peers.save_many([Peer(100 + i, PeerType.USER, access_hash=i) for i in range(3)])
        queue = alice.updates
        await queue.enqueue(DurableUpdate(b"dead", id="d"))
        for _ in range(2):
            [claimed] = await queue.claim(1, owner="w0")
            await queue.fail(claimed.id, "ValueError: bad payload", owner="w0", retry_in=0)
        await queue.enqueue_many(DurableUpdate(b"u", id=f"u{i}") for i in range(1, 5))
        [first] = await queue.claim(1, owner="w1")
        await queue.fail(first.id, "TimeoutError: later", owner="w1", retry_in=3600)
        await queue.claim(1, owner="w2", lease=600)
    # A worker that took the lease and vanished without releasing it: held for 600 s more.
    worker = await tgpersist.open_store(url)
    await worker.account("alice").session.acquire(owner="bot-1", ttl=600, heartbeat=0)
    await worker.engine.dispose()
