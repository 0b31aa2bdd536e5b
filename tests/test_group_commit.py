"""Group commit: concurrent small writes of one store share a transaction, each keeping its own answer,
its own failure and its durability; fences and host transactions keep their meaning."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import tgpersist
from tests.test_contention import run_workers
from tgpersist import ChannelState, Conversation, DurableUpdate, LeaseLost, UpdateState
from tgpersist.errors import ConstraintViolation

KEYS = 16


async def test_concurrent_remembers_share_batches_and_one_caller_per_key_wins(
    store: tgpersist.Store,
) -> None:
    updates = store.account("bot").updates
    keys = [f"k{i % KEYS}" for i in range(64)]
    before = store.writer.stats.batches
    answers = await asyncio.gather(*(updates.remember(k) for k in keys))
    wins = Counter(k for k, new in zip(keys, answers, strict=True) if new)
    assert wins == Counter({f"k{i}": 1 for i in range(KEYS)})
    # The first caller found nothing in flight and committed alone; the other 63 gathered meanwhile,
    # into one batch per lane (PostgreSQL's two lanes commit halves of them at once).
    lanes = len(store.writer._lanes)
    assert store.writer.stats.batches - before == 1 + lanes
    assert store.writer.stats.largest == -(-63 // lanes)
    assert await asyncio.gather(*(updates.remember(f"k{i}") for i in range(KEYS))) == [False] * KEYS


async def _remember_all(index: int, barrier: Barrier, url: str) -> dict[str, Any]:
    """After the barrier, 4 rounds of 32 concurrent remembers of the same keys as every process,
    each process in an order of its own."""
    async with await tgpersist.open_store(url) as store:
        updates = store.account("bot").updates
        await asyncio.to_thread(barrier.wait, 60)
        won = []
        for round_ in range(4):
            keys = [f"r{round_}:{i}" for i in range(32)]
            random.Random(index * 10 + round_).shuffle(keys)
            answers = await asyncio.gather(*(updates.remember(k) for k in keys))
            won += [k for k, new in zip(keys, answers, strict=True) if new]
        return {"won": won, "largest": store.writer.stats.largest}


async def test_exactly_one_true_per_key_across_processes(backend: str, db_url: str, tmp_path: Path) -> None:
    async with await tgpersist.open_store(db_url) as store:
        await store.account("bot").updates.remember("warm-up")
    results = await run_workers(tmp_path, 3, _remember_all, db_url)
    wins = Counter(k for r in results for k in r["won"])
    assert wins == Counter({f"r{r}:{i}": 1 for r in range(4) for i in range(32)})
    assert max(r["largest"] for r in results) > 1  # each process did coalesce
    if backend == "postgresql":
        # Batches insert in key order, so overlapping batches of other processes never deadlock.
        assert sum(r["retries"] for r in results) == 0


async def _poison(store: tgpersist.Store) -> None:
    """A real database fault for one key: a trigger that aborts the insert of 'poison'."""
    table = f"{store.placement.prefix}dedup_keys"
    async with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            await conn.execute(
                text(
                    f"CREATE TRIGGER poison BEFORE INSERT ON {table} WHEN NEW.key = 'poison' "
                    "BEGIN SELECT RAISE(ABORT, 'poisoned key'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poisoned key'; END IF; RETURN NEW; END $$"
                )
            )
            await conn.execute(
                text(f"CREATE TRIGGER poison BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION poison()")
            )


async def test_a_bad_call_fails_alone_and_its_batch_neighbours_commit(store: tgpersist.Store) -> None:
    await _poison(store)
    updates = store.account("bot").updates
    answers = await asyncio.gather(
        updates.remember("a"),
        updates.remember("poison"),
        updates.enqueue(DurableUpdate(b"x", id="u1")),
        updates.remember("b"),
        return_exceptions=True,
    )
    assert answers[0] is True and answers[2] is True and answers[3] is True
    bad = answers[1]
    if isinstance(bad, ConstraintViolation):  # SQLite's RAISE(ABORT) is a constraint error: typed
        assert "poisoned" not in str(bad)
        bad = bad.driver_error.value
    assert isinstance(bad, DBAPIError) and "poisoned key" in str(bad.orig)
    assert store.writer.stats.isolated == 1
    async with await tgpersist.open_store(store.engine.url) as other:
        mine = other.account("bot").updates
        assert [await mine.seen(k) for k in ("a", "poison", "b")] == [True, False, True]
        assert (await mine.get("u1")) is not None


async def test_every_small_write_kind_in_one_batch(store: tgpersist.Store, db_url: str) -> None:
    acct = store.account("bot")
    updates, conversations = acct.updates, acct.conversations
    await updates.enqueue_many([DurableUpdate(b"p", id=f"q{i}") for i in range(4)])
    [first, second, *_] = await updates.claim(4, owner="w")
    await conversations.save(Conversation(1, 1, name="old"))
    before = store.writer.stats.batches
    answers = await asyncio.gather(
        updates.remember("lead"),  # commits alone, while the rest gather into one batch
        updates.remember("m"),
        updates.forget("absent"),
        updates.enqueue(DurableUpdate(b"n", id="new")),
        updates.enqueue(DurableUpdate(b"n", id="new")),  # the same id twice: new once
        updates.ack("q2"),
        updates.ack_many(["q2", "q3"]),  # q2 went to the first ack of the batch
        updates.fail(first.id, "boom", owner="w"),
        updates.extend_lease(second.id, owner="w", lease=600),
        updates.extend_lease(second.id, owner="someone else"),
        updates.save_state(UpdateState(1, 2, 3, 4)),
        updates.save_channels([ChannelState(7, 70), ChannelState(8, 80)]),
        conversations.save(Conversation(2, 2, name="flow")),
        conversations.delete(1, 1),
        conversations.delete(1, 1),
    )
    assert store.writer.stats.batches - before == 2 and store.writer.stats.largest == 14
    assert answers == [True, True, False, True, False, True, ["q3"], True, True, False] + [None] * 3 + [
        True,
        False,
    ]
    async with await tgpersist.open_store(db_url) as other:
        theirs = other.account("bot")
        assert await theirs.updates.load_state() == UpdateState(1, 2, 3, 4)
        assert await theirs.updates.list_channels() == [ChannelState(7, 70), ChannelState(8, 80)]
        assert (await theirs.conversations.load(2, 2)).name == "flow"  # type: ignore[union-attr]
        assert await theirs.conversations.load(1, 1) is None
        failed = await theirs.updates.get(first.id)
        assert failed is not None and failed.last_error == "boom" and failed.lease_owner is None
        extended = await theirs.updates.get(second.id)
        assert extended is not None and extended.lease_expires_at is not None
        assert extended.lease_expires_at - extended.updated_at == timedelta(seconds=600)
        assert {u.id for u in await theirs.updates.pending()} == {first.id, second.id, "new"}


async def test_returned_means_durable_for_another_store(store: tgpersist.Store, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as other:
        mine, theirs = store.account("bot").updates, other.account("bot").updates
        for i in range(5):
            answers = await asyncio.gather(*(mine.remember(f"d{i}:{j}") for j in range(8)))
            assert answers == [True] * 8
            # The moment the calls returned, another store's connection sees every key.
            assert [await theirs.seen(f"d{i}:{j}") for j in range(8)] == [True] * 8
            assert await theirs.remember(f"d{i}:0") is False


async def test_a_stale_fence_is_refused_inside_a_batch(store: tgpersist.Store) -> None:
    acct = store.account("bot")
    async with acct.session.lease(owner="me", heartbeat=0) as lease:
        answers = await asyncio.gather(
            acct.updates.save_state(UpdateState(5, 5, 5, 5), token=lease.token - 1),
            acct.updates.remember("fenced batch"),
            acct.updates.save_channel(ChannelState(9, 90)),  # fenced with the held lease's token
            return_exceptions=True,
        )
        assert isinstance(answers[0], LeaseLost) and answers[0].token == lease.token - 1
        assert answers[1:] == [True, None]
    async with await tgpersist.open_store(store.engine.url) as other:
        assert await other.account("bot").updates.load_state() is None
        assert await other.account("bot").updates.list_channels() == [ChannelState(9, 90)]


async def test_a_host_transaction_is_never_coalesced(store: tgpersist.Store) -> None:
    calls = store.writer.stats.calls
    async with AsyncSession(store.engine) as session:
        hosted = store.account("hosted", session=session).updates
        assert await hosted.remember("inside") is True
        await hosted.enqueue(DurableUpdate(b"h", id="h1"))
        await session.rollback()
    assert store.writer.stats.calls == calls  # none of it went through the writer
    own = store.account("hosted").updates
    assert await own.seen("inside") is False and await own.get("h1") is None  # rolled back with the host


async def test_a_lone_caller_starts_its_transaction_at_once(store: tgpersist.Store) -> None:
    updates = store.account("bot").updates
    await updates.remember("warm-up")
    assert not store.writer.in_flight
    before = store.writer.stats.batches
    call = asyncio.ensure_future(updates.remember("alone"))
    await asyncio.sleep(0)  # the call ran: no timer, nothing gathering, its transaction is under way
    assert store.writer.in_flight and store.writer.gathering == 0
    assert await call is True
    assert store.writer.stats.batches == before + 1 and not store.writer.in_flight


async def test_calls_arriving_during_a_commit_form_the_next_batch(store: tgpersist.Store) -> None:
    updates = store.account("bot").updates
    await updates.remember("warm-up")
    before = store.writer.stats.batches
    first = asyncio.ensure_future(updates.remember("first"))
    await asyncio.sleep(0)
    assert store.writer.in_flight
    rest = [asyncio.ensure_future(updates.remember(f"next{i}")) for i in range(10)]
    await asyncio.sleep(0)
    assert store.writer.gathering == 10
    assert await first is True and await asyncio.gather(*rest) == [True] * 10
    assert store.writer.stats.batches == before + 1 + len(store.writer._lanes)


@pytest.mark.parametrize("kind", ["remember", "ack"])
async def test_a_cancelled_caller_leaves_the_others_alone(store: tgpersist.Store, kind: str) -> None:
    updates = store.account("bot").updates
    await updates.enqueue_many([DurableUpdate(b"c", id=f"c{i}") for i in range(3)])
    first = asyncio.ensure_future(updates.remember("busy"))
    await asyncio.sleep(0)
    calls = [
        asyncio.ensure_future(updates.remember(f"c{i}") if kind == "remember" else updates.ack(f"c{i}"))
        for i in range(3)
    ]
    await asyncio.sleep(0)
    calls[1].cancel()
    assert await first is True
    assert [await calls[0], await calls[2]] == [True, True]
    assert calls[1].cancelled()


async def test_a_session_deleted_elsewhere_is_created_again_by_the_next_batch(
    store: tgpersist.Store, db_url: str
) -> None:
    updates = store.account("bot").updates
    assert await updates.remember("before") is True  # the session row is known to exist now
    async with await tgpersist.open_store(db_url) as other:
        assert await other.account("bot").session.delete() is True
    answers = await asyncio.gather(updates.remember("after"), updates.enqueue(DurableUpdate(b"a", id="a1")))
    assert answers == [True, True]
    assert await store.list_sessions() == ["bot"]  # re-created (the rows reference it)
    assert await updates.seen("after") is True and await updates.seen("before") is False


async def _statements_of(store: tgpersist.Store, backend: str, run: Any) -> list[str]:
    """The SQL statements the writer sent while `run()` ran on the connection it holds (traced by
    sqlite3 itself, or by asyncpg's query logger)."""
    sent: list[str] = []
    held = store.writer._held
    assert held is not None
    driver = held._pinned.driver or await held._pinned.open()
    if backend == "sqlite":
        await driver.set_trace_callback(sent.append)
        try:
            await run()
        finally:
            await driver.set_trace_callback(None)
    else:

        def record(query: Any) -> None:
            sent.append(query.query)

        driver.add_query_logger(record)
        try:
            await run()
        finally:
            driver.remove_query_logger(record)
    return sent


async def test_the_kinds_of_a_batch_run_in_one_order_whatever_order_they_came_in(
    store: tgpersist.Store, backend: str
) -> None:
    """One global order across tables: batches of concurrent processes cannot lock them crosswise."""
    acct = store.account("kind-order")
    updates, conversations = acct.updates, acct.conversations
    await updates.enqueue_many([DurableUpdate(b"p", id=f"o{i}") for i in range(4)])
    await updates.remember("warm")  # the session row exists, the writer's connection is open
    writes = [
        lambda i: updates.remember(f"r{i}"),
        lambda i: updates.ack(f"o{i}"),
        lambda i: conversations.save(Conversation(i, i, name="flow")),
        lambda i: updates.save_state(UpdateState(i, i, i, i)),
    ]
    tables = ("dedup_keys", "durable_updates", "conversations", "update_state")

    def order_of(sent: list[str]) -> list[str]:
        found = []
        for statement in sent:
            table = next((t for t in tables if f"tgpersist_{t}" in statement), None)
            if table is not None and table not in found:
                found.append(table)
        return found

    orders = []
    for i, calls in enumerate((writes, writes[::-1])):

        async def batch(i: int = i, calls: list[Any] = calls) -> None:
            # The lead commits alone; the four kinds gather meanwhile into one batch.
            await asyncio.gather(updates.remember(f"lead{i}"), *(call(i) for call in calls))

        before = store.writer.stats.batches
        sent = await _statements_of(store, backend, batch)
        assert store.writer.stats.batches - before == 2
        orders.append(order_of(sent))
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == sorted(tables)
