"""Four processes whose `save_many` batches keep moving usernames between shared peers.

On PostgreSQL the takeover locks (`tgpersist.repositories.peers.takeover`) must leave no deadlock to
retry (SQLSTATE 40P01, counted by `Database.run`'s retry loop); SQLite serialises writers. Either
way the final state must be one that the batches' commit order explains: each username held by at
most one peer, by the peer that the last batch writing it gave it to.
"""

from __future__ import annotations

import asyncio
import random
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import tgpersist
from tests.test_contention import ACCOUNT, prepare, run_workers
from tgpersist import Peer, PeerType
from tgpersist.repositories.peers import takeover
from tgpersist.sql import errors

PROCESSES = 4
ROUNDS = 30
SHARED_PEERS = 60
NAMES = 60
BATCH = 30


def churn_batch(index: int, round_: int) -> tuple[str, list[Peer]]:
    """Process `index`'s batch for `round_`: random shared peers given random usernames, so that
    every batch takes usernames from peers that other processes (and earlier rounds) gave them to."""
    rng = random.Random(index * 10_000 + round_)
    tag = f"p{index}r{round_}"
    ids = rng.sample(range(1, SHARED_PEERS + 1), BATCH)
    names = rng.sample(range(NAMES), BATCH)
    return tag, [
        Peer(peer_id, PeerType.USER, access_hash=index * 1000 + round_, username=f"n{name}", first_name=tag)
        for peer_id, name in zip(ids, names, strict=True)
    ]


async def churn(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    """Save every round's batch; report when each ran and the deadlocks the retry loop met."""
    timings: dict[str, tuple[float, float]] = {}
    async with await tgpersist.open_store(url) as store:
        peers = store.account(ACCOUNT).peers
        batches = [churn_batch(index, r) for r in range(ROUNDS)]
        await asyncio.to_thread(barrier.wait, 60)
        for tag, batch in batches:
            started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of this machine
            assert await peers.save_many(batch) == BATCH
            timings[tag] = (started, time.monotonic())
    return {"timings": timings, "deadlocks": errors.RETRIED["40P01"], "retried": dict(errors.RETRIED)}


async def churn_escalating(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    """`churn`, but odd-numbered processes lock the whole account for every batch after their first
    (as after a contended one: `takeover.CONTENDED_SECONDS`), so that both lock protocols meet."""
    if index % 2:
        takeover.CONTENDED_SECONDS = -1.0
    result = await churn(index, barrier, url)
    result["escalated"] = index % 2 == 1
    return result


async def test_four_processes_moving_usernames_meet_no_deadlock_and_end_consistent(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    await prepare(db_url)
    await check_churn(backend, db_url, await run_workers(tmp_path, PROCESSES, churn, db_url))


async def test_item_locks_and_whole_account_locks_together_meet_no_deadlock(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    await prepare(db_url)
    results = await run_workers(tmp_path, PROCESSES, churn_escalating, db_url)
    assert [r["escalated"] for r in results] == [False, True, False, True]
    await check_churn(backend, db_url, results)


async def check_churn(backend: str, db_url: str, results: list[dict[str, Any]]) -> None:
    """No deadlock retried (PostgreSQL), and a final state that the batches' commit order explains."""
    if backend == "postgresql":
        assert [r["deadlocks"] for r in results] == [0] * PROCESSES, [r["retried"] for r in results]
    timings = {tag: tuple(span) for r in results for tag, span in r["timings"].items()}
    assert len(timings) == PROCESSES * ROUNDS
    given: dict[str, dict[str, int]] = {}  # username -> batch tag -> peer it was given to
    for index in range(PROCESSES):
        for round_ in range(ROUNDS):
            tag, batch = churn_batch(index, round_)
            for peer in batch:
                given.setdefault(peer.usernames[0].lower(), {})[tag] = peer.id

    async with await tgpersist.open_store(db_url) as store:
        peers = store.account(ACCOUNT).peers
        stored = await peers.list()
        assert sorted(p.id for p in stored) == list(range(1, SHARED_PEERS + 1))
        holders: dict[str, int] = {}
        for peer in stored:
            assert peer.first_name is not None
            index, round_ = map(int, peer.first_name[1:].split("r"))
            assert peer.access_hash == index * 1000 + round_  # every field from one and the same write
            for name in peer.usernames:
                key = name.lower()
                assert key not in holders, f"{name} held by {holders[key]} and {peer.id}"
                holders[key] = peer.id
                # The batch that wrote this row gave it this username ...
                assert given[key][peer.first_name] == peer.id
                # ... and no batch that wrote the same username began after that batch had committed.
                finished = timings[peer.first_name][1]
                later = [tag for tag in given[key] if timings[tag][0] > finished]
                assert later == [], f"{name}: {peer.first_name} is not the last writer, {later} came after"
        assert len(holders) > NAMES // 3
        for key, peer_id in holders.items():
            found = await peers.get_by_username(key)
            assert found is not None and found.id == peer_id
