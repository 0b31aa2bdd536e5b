"""Pools sized for the work: 64 concurrent callers open no more connections than the pool holds, and
`pool_size`/`max_overflow` pass through `open_store` to the engine."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist.sql import engines
from tgpersist.testing.pools import PoolWatch

CALLERS = 64


async def _hammer(store: tgpersist.Store) -> tuple[int, int]:
    """64 concurrent callers, each remembering and reading keys; (connections opened, most in use)."""
    watch = PoolWatch(store.engine)
    updates = store.account("bot").updates

    async def caller(index: int) -> None:
        for i in range(5):
            assert await updates.remember(f"k{index}:{i}") is True
            assert await updates.seen(f"k{index}:{i}") is True

    await asyncio.gather(*(caller(c) for c in range(CALLERS)))
    assert await updates.remember("k0:0") is False
    return watch.opened, watch.peak


async def _backends(url: str) -> int:
    """How many server processes serve the database of `url` now (PostgreSQL)."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    try:
        return int(
            await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", parsed.database)
        )
    finally:
        await admin.close()


async def test_sixty_four_callers_stay_within_the_default_pool(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url) as store:
        assert store.engine.sync_engine.pool.size() == engines.POOL_SIZE  # type: ignore[attr-defined]
        opened, peak = await _hammer(store)
        assert 1 <= peak <= engines.POOL_SIZE
        assert opened <= engines.POOL_SIZE  # nothing opened, closed and opened again
        if backend == "postgresql":
            assert await _backends(db_url) <= engines.POOL_SIZE


async def test_pool_size_and_max_overflow_pass_through_open_store(backend: str, db_url: str) -> None:
    async with await tgpersist.open_store(db_url, pool_size=3, max_overflow=0) as store:
        pool = store.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 0)  # type: ignore[attr-defined]
        opened, peak = await _hammer(store)
        assert peak <= 3 and opened <= 3
        if backend == "postgresql":
            assert await _backends(db_url) <= 3


def test_an_engine_of_ones_own_pool_class_keeps_it() -> None:
    from sqlalchemy.pool import NullPool

    engine = tgpersist.create_engine("postgresql+asyncpg://u@127.0.0.1:1/db", poolclass=NullPool)
    assert isinstance(engine.sync_engine.pool, NullPool)
    with pytest.raises(TypeError):  # SQLAlchemy refuses pool sizes for a pool class without them
        tgpersist.create_engine("postgresql+asyncpg://u@127.0.0.1:1/db", poolclass=NullPool, pool_size=3)


async def test_a_pool_of_two_keeps_the_writer_from_holding_a_connection(backend: str, db_url: str) -> None:
    """The group-commit writer holds a connection of its own only if the pool has three or more (the
    SQLite reader holds one too); with fewer, every batch checks one out and gives it back."""
    async with await tgpersist.open_store(db_url, pool_size=2, max_overflow=0) as store:
        assert store.writer._held is None
        opened, peak = await _hammer(store)
        assert peak <= 2 and opened <= 2
    async with await tgpersist.open_store(db_url) as store:
        assert store.writer._held is not None
        assert engines.pool_capacity(store.engine) == engines.POOL_SIZE
