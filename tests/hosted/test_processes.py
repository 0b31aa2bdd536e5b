"""Three processes through a transaction-pooling PgBouncer (`?pgbouncer=true`), each with its own store:
durable queue, session leases with renewals, peers (COPY batches past 2,000 rows) and dedup keys.

Every call is counted; a failed one is recorded with its error. The failure count must be 0, and the
results exact: every update handled once, one `remember` True per key, the peers as written.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, TypeVar

import tgpersist
from tests.hosted.conftest import PooledDatabases
from tests.test_contention import run_workers
from tgpersist import DurableUpdate, Peer, PeerType, Session

T = TypeVar("T")
PROCESSES = 3
QUEUE = "queue"
SHARED = "shared"
UPDATES_PER_PROCESS = 60
KEYS = 150
BIG_BATCH = 2_500  # past the 2,000 rows from which peers go through COPY


class Calls:
    """Counts calls and keeps the first few failures (type and message) of one worker."""

    def __init__(self) -> None:
        self.count = 0
        self.failures: list[str] = []

    async def __call__(self, call: Awaitable[T]) -> T | None:
        self.count += 1
        try:
            return await call
        except Exception as error:
            self.failures.append(f"{type(error).__name__}: {error}"[:300])
            if len(self.failures) == 1:
                self.failures.append(traceback.format_exc()[-1500:])
            return None


async def workload(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    calls = Calls()
    store = await calls(tgpersist.open_store(url))
    if store is None:
        return {"calls": calls.count, "failures": calls.failures}
    await asyncio.to_thread(barrier.wait)
    try:
        own = store.account(f"worker-{index}")
        lease = await calls(own.session.acquire(owner=f"p{index}", ttl=3, heartbeat=0.2))
        first_expiry = lease.expires_at if lease else None
        queue = store.account(QUEUE)
        for start in range(0, UPDATES_PER_PROCESS, 10):
            batch = [DurableUpdate(f"{index}".encode(), id=f"u{index}-{n}") for n in range(start, start + 10)]
            await calls(queue.updates.enqueue_many(batch))

        handled: list[str] = []

        async def consume() -> None:
            idle = 0
            while idle < 3:
                claimed = await calls(queue.updates.claim(5, owner=f"p{index}", lease=30))
                if not claimed:
                    idle += 1
                    await asyncio.sleep(0.05)
                    continue
                idle = 0
                for update in claimed:
                    if await calls(queue.updates.ack(update.id)):
                        handled.append(update.id)

        async def peers() -> None:
            base = (index + 1) * 10_000_000
            for round_ in range(3):
                size = BIG_BATCH if round_ == 1 else 50
                batch = [
                    Peer(base + n, PeerType.USER, access_hash=round_, username=f"w{index}_{n}")
                    for n in range(size)
                ]
                await calls(own.peers.save_many(batch))
                await calls(own.peers.save(Peer(base + 1, PeerType.USER, access_hash=round_)))
            for n in range(0, BIG_BATCH, 250):
                peer = await calls(own.peers.get(base + n))
                assert peer is not None and peer.access_hash == (2 if n < 50 else 1), (n, peer)

        async def remember() -> list[str]:
            firsts = []
            for n in range(KEYS):
                await calls(own.updates.remember(f"k{n}"))
                if await calls(store.account(SHARED).updates.remember(f"msg:{n}")) is True:
                    firsts.append(f"msg:{n}")
            return firsts

        async def renew() -> int:
            renewed = 0
            for _ in range(10):
                if lease is not None and await calls(lease.renew()) is not None:
                    renewed += 1
                await asyncio.sleep(0.05)
            return renewed

        *_, firsts, renewed = await asyncio.gather(consume(), peers(), remember(), renew())
        await consume()  # whatever the others enqueued after this worker ran dry
        shared_acct = store.account(SHARED)
        shared = await calls(shared_acct.session.acquire(owner=f"p{index}", ttl=5, wait=True, timeout=60))
        token = shared.token if shared else None
        if shared is not None:
            await calls(shared_acct.session.save(Session(SHARED, dc_id=index + 1)))
            await calls(shared.release())
        lost = bool(lease and lease.lost)
        extended = bool(lease and first_expiry and lease.expires_at > first_expiry)
        if lease is not None:
            await calls(lease.release())
        return {
            "calls": calls.count,
            "failures": calls.failures,
            "handled": handled,
            "firsts": firsts,
            "renewed": renewed,
            "lost": lost,
            "extended": extended,
            "token": token,
        }
    finally:
        await store.close()


async def test_three_processes_through_transaction_pooling_see_no_failure(
    pooled_url: str, tmp_path: Path
) -> None:
    async with await tgpersist.open_store(pooled_url) as store:
        await store.account(QUEUE).session.save(Session(QUEUE))
        await store.account(SHARED).session.save(Session(SHARED))
    results = await run_workers(tmp_path, PROCESSES, workload, pooled_url)
    failures = [f for r in results for f in r["failures"]]
    assert failures == [], "\n".join(failures)
    assert all(r["calls"] > 300 for r in results), [r["calls"] for r in results]
    handled = sorted(h for r in results for h in r["handled"])
    expected = sorted(f"u{i}-{n}" for i in range(PROCESSES) for n in range(UPDATES_PER_PROCESS))
    assert handled == expected  # each update acked exactly once, by whichever process claimed it
    firsts = sorted(k for r in results for k in r["firsts"])
    assert firsts == sorted(f"msg:{n}" for n in range(KEYS))  # one True per key across processes
    assert [(r["renewed"], r["lost"], r["extended"]) for r in results] == [(10, False, True)] * PROCESSES
    tokens = [r["token"] for r in results]
    assert None not in tokens and len(set(tokens)) == PROCESSES  # each took the shared lease in turn
    async with await tgpersist.open_store(pooled_url) as store:
        assert await store.account(QUEUE).updates.claim(100) == []
        for index in range(PROCESSES):
            assert len(await store.account(f"worker-{index}").peers.list()) == BIG_BATCH


async def _open_and_count(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    await asyncio.to_thread(barrier.wait)
    async with await tgpersist.open_store(url) as store:
        await store.account(f"a{index}").session.save(Session(f"a{index}"))
        return {"sessions": await store.list_sessions()}


async def test_concurrent_open_store_migrates_once_through_the_pooler(
    pooled: PooledDatabases, tmp_path: Path
) -> None:
    url = await pooled.new()
    results = await run_workers(tmp_path, PROCESSES, _open_and_count, url)
    assert all(len(r["sessions"]) >= 1 for r in results)
    async with await tgpersist.open_store(url) as store:
        assert await store.list_sessions() == ["a0", "a1", "a2"]
