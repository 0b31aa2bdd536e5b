"""Waiting claims (`claim(limit, wait=...)`): woken by enqueues — from this store directly, from other
processes by PostgreSQL's LISTEN/NOTIFY — and polling where nothing can wake them.

The waits are 30 s (or a 60 s poll interval) against a test bound of a few seconds: a claim that
returns within the bound was woken, it did not sit out its timeout.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tests.conftest import Databases, selected_backends
from tgpersist import DurableUpdate, InvalidArgument, QueuePolicy, migrate
from tgpersist.repositories import waiting
from tgpersist.sql import engines

SPAWN = multiprocessing.get_context("spawn")
LONG = 30.0
BOUND = 3.0  # well under LONG and under the listening poll interval (waiting.LISTENING_POLL)
NO_POLLING = QueuePolicy(poll_interval=60.0)


def _enqueue_when_told(url: str, ready: Event, go: Event) -> None:
    """Another process: open a store, say so, enqueue one update when told."""

    async def body() -> None:
        async with await tgpersist.open_store(url) as store:
            ready.set()
            await asyncio.to_thread(go.wait, 60)
            await store.account("bot").updates.enqueue(DurableUpdate(b"from afar", id="far"))

    asyncio.run(body())


async def _waiting(
    store: tgpersist.Store, limit: int = 10, **claim: Any
) -> asyncio.Task[list[DurableUpdate]]:
    """A claim that waits `LONG` seconds, started and given time to reach its wait."""
    task = asyncio.create_task(store.account("bot").updates.claim(limit, wait=LONG, **claim))
    await asyncio.sleep(0.3)
    assert not task.done()
    return task


@pytest.fixture
async def pg_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, for what only PostgreSQL has (LISTEN/NOTIFY, the pooler marker)."""
    if "postgresql" not in selected_backends(request.config):
        pytest.skip("--backend excludes PostgreSQL")
    dbs = Databases("postgresql", tmp_path, request)
    yield await dbs.new()
    await dbs.drop_all()


async def _until_listening(store: tgpersist.Store) -> None:
    """Wait (up to 10 s) for the store's listener: the first waiter opens it after its first look, and
    on a loaded machine that connection can take longer than `_waiting`'s pause."""
    for _ in range(200):
        if store._db.wakeups.listening:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the listener did not come up within 10 s")


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))


async def test_a_waiting_claim_returns_soon_after_another_process_enqueues(backend: str, db_url: str) -> None:
    policy = NO_POLLING if backend == "postgresql" else None  # SQLite can only poll
    async with await tgpersist.open_store(db_url, queue_policy=policy) as store:
        ready, go = SPAWN.Event(), SPAWN.Event()
        process = SPAWN.Process(target=_enqueue_when_told, args=(db_url, ready, go))
        process.start()
        try:
            assert await asyncio.to_thread(ready.wait, 60)
            task = await _waiting(store)
            if backend == "postgresql":
                await _until_listening(store)
            started = time.monotonic()
            go.set()
            claimed = await asyncio.wait_for(task, LONG + 5)
            elapsed = time.monotonic() - started
        finally:
            await asyncio.to_thread(process.join, 30)
        assert [(u.id, u.payload, u.attempts) for u in claimed] == [("far", b"from afar", 1)]
        assert elapsed < BOUND, f"woke after {elapsed:.1f}s"


async def test_an_enqueue_through_the_same_store_wakes_waiters_at_once(db_url: str) -> None:
    async with await tgpersist.open_store(db_url, queue_policy=NO_POLLING) as store:
        first, second = await _waiting(store, 1, owner="a"), await _waiting(store, 1, owner="b")
        started = time.monotonic()
        assert await store.account("bot").updates.enqueue_many([b"1", b"2"]) == 2
        results = await asyncio.wait_for(asyncio.gather(first, second), LONG + 5)
        assert time.monotonic() - started < BOUND
        assert sorted(u.payload for batch in results for u in batch) == [b"1", b"2"]


async def test_a_waiting_claim_returns_what_is_there_and_gives_up_empty(db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        updates = store.account("bot").updates
        await updates.enqueue(DurableUpdate(b"x", id="there"))
        assert [u.id for u in await updates.claim(5, wait=LONG)] == ["there"]
        started = time.monotonic()
        assert await updates.claim(5, wait=0.4) == []
        assert time.monotonic() - started >= 0.4
        assert await updates.claim(5, wait=0) == []  # no wait: one look, as without the keyword
        with pytest.raises(InvalidArgument, match="wait"):
            await updates.claim(5, wait=-1)


async def test_a_delayed_update_is_claimed_when_it_becomes_available_not_at_the_next_poll(
    db_url: str,
) -> None:
    async with await tgpersist.open_store(db_url, queue_policy=NO_POLLING) as store:
        updates = store.account("bot").updates
        await updates.enqueue(DurableUpdate(b"later", id="later"), delay=0.8)
        started = time.monotonic()
        claimed = await asyncio.wait_for(updates.claim(5, wait=LONG), LONG + 5)
        elapsed = time.monotonic() - started
        assert [u.id for u in claimed] == ["later"]
        assert 0.5 < elapsed < BOUND


async def test_a_killed_listener_falls_back_to_polling_then_listens_again(pg_url: str) -> None:
    fast = QueuePolicy(poll_interval=0.2)
    async with (
        await tgpersist.open_store(pg_url, queue_policy=fast) as waiter,
        await tgpersist.open_store(pg_url) as producer,
    ):
        wakeups = waiter._db.wakeups
        task = await _waiting(waiter)
        await _until_listening(waiter)
        pid = wakeups.listener_pid
        assert pid is not None
        admin = await _admin(pg_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(50):
                if not wakeups.listening:
                    break
                await asyncio.sleep(0.02)
            await producer.account("bot").updates.enqueue(DurableUpdate(b"1", id="one"))
            started = time.monotonic()
            assert [u.id for u in await asyncio.wait_for(task, LONG + 5)] == ["one"]
            assert time.monotonic() - started < BOUND
            # The listener comes back on a later wait, on a new connection, and wakes waiters again.
            await waiter.account("bot").updates.claim(1, wait=1.5)
            assert wakeups.listening and wakeups.listener_pid not in (None, pid)
            listening = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")
            assert [r["pid"] for r in listening] == [wakeups.listener_pid]
        finally:
            await admin.close()
        waiting_again = asyncio.create_task(waiter.account("bot").updates.claim(1, wait=LONG, owner="again"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await producer.account("bot").updates.enqueue(DurableUpdate(b"2", id="two"))
        assert [u.id for u in await asyncio.wait_for(waiting_again, LONG + 5)] == ["two"]
        assert time.monotonic() - started < BOUND < waiting.LISTENING_POLL  # woken, not polled


async def test_store_close_closes_the_listener_connection(pg_url: str) -> None:
    store = await tgpersist.open_store(pg_url)
    await store.account("bot").updates.claim(1, wait=0.2)
    pid = store._db.wakeups.listener_pid
    assert pid is not None
    await store.close()
    admin = await _admin(pg_url)
    try:
        for _ in range(50):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                break
            await asyncio.sleep(0.05)
        assert await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0
    finally:
        await admin.close()


async def test_behind_a_transaction_pooler_waiters_poll_without_listening(pg_url: str) -> None:
    engine = tgpersist.create_engine(pg_url)
    engines.mark_behind_pooler(engine)
    try:
        async with tgpersist.Store(engine, queue_policy=QueuePolicy(poll_interval=0.1)) as store:
            await store.check_schema()
            async with await tgpersist.open_store(pg_url) as producer:
                task = await _waiting(store)
                await producer.account("bot").updates.enqueue(DurableUpdate(b"p", id="pooled"))
                started = time.monotonic()
                assert [u.id for u in await asyncio.wait_for(task, LONG + 5)] == ["pooled"]
                assert time.monotonic() - started < BOUND
            assert not store._db.wakeups.listening and store._db.wakeups.listener_pid is None
    finally:
        await engine.dispose()


# -- the trigger's revision --------------------------------------------------------------------------
NOTIFY_REVISION = "0005_queue_notify"


async def _triggers(url: str, schema: str = "public") -> list[str]:
    admin = await _admin(url)
    try:
        rows = await admin.fetch(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = $1",
            schema,
        )
        return sorted(r["tgname"] for r in rows)
    finally:
        await admin.close()


async def test_the_notify_revision_goes_down_and_up(backend: str, db_url: str) -> None:
    await migrate.upgrade(db_url)
    assert await migrate.current(db_url) == (NOTIFY_REVISION,)
    if backend == "postgresql":
        assert await _triggers(db_url) == ["tgpersist_durable_updates_notify"]
    await migrate.downgrade(db_url, "0004_aiogram_namespaces")
    assert await migrate.current(db_url) == ("0004_aiogram_namespaces",)
    if backend == "postgresql":
        assert await _triggers(db_url) == []
        admin = await _admin(db_url)
        try:
            assert await admin.fetchval("SELECT count(*) FROM pg_proc WHERE proname LIKE 'tgpersist_%'") == 0
        finally:
            await admin.close()
    await migrate.upgrade(db_url)
    await migrate.check(db_url)  # the models still match: the trigger is no model drift


async def test_a_schema_and_prefix_placement_listens_on_its_own_queue(pg_url: str) -> None:
    placement = {"prefix": "bot_", "schema": "tg"}
    async with (
        await tgpersist.open_store(pg_url, queue_policy=NO_POLLING, **placement) as store,
        await tgpersist.open_store(pg_url, **placement) as producer,
    ):
        assert await _triggers(pg_url, "tg") == ["bot_durable_updates_notify"]
        task = await _waiting(store)
        started = time.monotonic()
        await producer.account("bot").updates.enqueue(DurableUpdate(b"placed", id="placed"))
        assert [u.id for u in await asyncio.wait_for(task, LONG + 5)] == ["placed"]
        assert time.monotonic() - started < BOUND
