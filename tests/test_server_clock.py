"""The store's clock (`tgpersist.sql.server_clock`): on PostgreSQL the server's time, sampled when the
store first reaches the database and again in the background while in use; on SQLite the host's."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist import Session
from tgpersist.clock import utcnow
from tgpersist.sql import server_clock


async def database_now(backend: str, url: str) -> datetime:
    """What the database says the time is (SQLite has no clock of its own: the host's)."""
    if backend == "sqlite":
        return utcnow()
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        value: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return value
    finally:
        await conn.close()


async def reads_database_clock(clock: server_clock.ServerClock, backend: str, url: str) -> bool:
    """Whether the database's time, read meanwhile on a connection of its own, falls between two reads
    of `clock` (give or take 0.3 s: the sample's error is at most half its round trip)."""
    slack = timedelta(seconds=0.3)
    before = clock.now()
    database = await database_now(backend, url)
    after = clock.now()
    return before - slack <= database <= after + slack


async def test_a_store_reads_the_databases_clock_from_open_on(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        clock = store._db.clock
        assert clock.sampled
        assert await reads_database_clock(clock, backend, db_url)


async def test_an_embedded_store_samples_at_its_first_unit_of_work(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url):
        pass  # migrated
    engine = tgpersist.create_engine(db_url)
    try:
        async with tgpersist.Store(engine) as store:
            clock = store._db.clock
            assert clock.sampled is (backend == "sqlite")  # SQLite: the host's clock is the database's
            await store.account("bot").session.save(Session("bot", dc_id=2))  # a transaction of ours
            assert clock.sampled
            assert await reads_database_clock(clock, backend, db_url)
    finally:
        await engine.dispose()


async def test_an_old_sample_is_replaced_in_the_background(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        clock = store._db.clock
        if backend == "sqlite":
            assert abs(clock.now() - utcnow()) < timedelta(seconds=0.1)
            assert clock._resampling is None  # nothing to sample
            return
        # A sample an hour off and older than RESAMPLE: read once more, and a new one is taken.
        wrong = await database_now(backend, db_url) - timedelta(hours=1)
        clock._anchor = (wrong, time.monotonic() - server_clock.RESAMPLE - 1)
        assert abs(clock.now() - wrong) < timedelta(seconds=server_clock.RESAMPLE + 10)
        for _ in range(200):
            if await reads_database_clock(clock, backend, db_url):
                break
            await asyncio.sleep(0.05)
        assert await reads_database_clock(clock, backend, db_url)
