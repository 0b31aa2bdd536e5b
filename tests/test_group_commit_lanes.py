"""The writer's lanes: on PostgreSQL two batches of calls that commute (`remember`, `forget`, `ack`)
commit at once on two held connections, so the client's and the server's work overlap; a call that
does not commute (a fenced write, one with hot state to update) never commits beside another batch.
SQLite has one writer at a time, so one lane: the same tests hold there with one."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import tgpersist
from tgpersist import DurableUpdate, UpdateState
from tgpersist.sql import errors
from tgpersist.writes.group_commit import GroupCommit, _commutes


def expected_lanes(backend: str) -> int:
    return 2 if backend == "postgresql" else 1


def watch_batches(store: tgpersist.Store) -> list[tuple[bool, int]]:
    """(whether the batch commutes, how many other lanes were committing) as each batch starts."""
    seen: list[tuple[bool, int]] = []
    writer = store.writer
    commit = writer._commit

    async def watched(batch: list[Any], **options: Any) -> None:
        lane = options.get("lane", 0)
        others = sum(1 for busy in writer._busy if busy != lane)
        seen.append((all(_commutes(call) for call in batch), others))
        await commit(batch, **options)

    writer._commit = watched  # type: ignore[method-assign]
    return seen


async def test_remembers_commit_on_every_lane_and_one_caller_per_key_wins(
    backend: str, store: tgpersist.Store
) -> None:
    writer = store.writer
    assert len(writer._lanes) == expected_lanes(backend)
    seen = watch_batches(store)
    updates = store.account("bot").updates
    deadlocks = errors.RETRIED["40P01"]
    for round_ in range(8):
        keys = [f"r{round_}:{i % 24}" for i in range(96)]
        random.Random(round_).shuffle(keys)
        answers = await asyncio.gather(*(updates.remember(k) for k in keys))
        assert Counter(k for k, new in zip(keys, answers, strict=True) if new) == Counter(set(keys))
    assert errors.RETRIED["40P01"] == deadlocks  # keys in one order per batch: no lane waits in a cycle
    overlapped = sum(1 for _, others in seen if others)
    if backend == "postgresql":
        assert overlapped > 0  # batches did commit beside each other
        held = [lane.driver for lane in writer._lanes if lane is not None]
        assert len(held) == 2 and held[0].get_server_pid() != held[1].get_server_pid()
    else:
        assert overlapped == 0


async def test_a_call_that_does_not_commute_never_commits_beside_another_batch(
    backend: str, store: tgpersist.Store
) -> None:
    acct = store.account("bot")
    lease = await acct.session.acquire(owner="lanes", ttl=60, heartbeat=0)
    seen = watch_batches(store)
    updates = acct.updates

    async def caller(index: int) -> None:
        for step in range(6):
            await updates.remember(f"k{index}:{step}")
            if index % 8 == 0:  # fenced, with hot state to update after commit
                await updates.save_state(UpdateState(pts=index * 10 + step, qts=1, date=1, seq=1))
            await updates.enqueue(DurableUpdate(b"x", id=f"u{index}:{step}"))
            await updates.ack(f"u{index}:{step}")

    await asyncio.gather(*(caller(i) for i in range(48)))
    assert seen and all(others == 0 for commutes, others in seen if not commutes)
    assert any(not commutes for commutes, _ in seen)
    # The state in memory (under the lease) is the one the database kept.
    hot = await updates.load_state()
    await lease.release()
    assert await updates.load_state() == hot
    assert store.writer.gathering == 0 and not store.writer.in_flight


async def test_closing_waits_for_every_lane(backend: str, db_url: str) -> None:
    store = await tgpersist.open_store(db_url)
    writer: GroupCommit = store.writer
    updates = store.account("bot").updates
    calls = [asyncio.ensure_future(updates.remember(f"c{i}")) for i in range(64)]
    await asyncio.sleep(0)
    await store.close()
    assert all(call.done() for call in calls) and not writer.in_flight
    assert [call.result() for call in calls] == [True] * 64
    async with await tgpersist.open_store(db_url) as again:
        assert await again.account("bot").updates.seen("c63") is True
