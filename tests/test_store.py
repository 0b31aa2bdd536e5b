"""Store and open_store: embedding an engine, in-memory SQLite, unsupported URLs, account scoping."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

import tgpersist
from tgpersist import InvalidArgument, Peer, PeerType, Session, UnsupportedDatabase


async def test_in_memory_sqlite_is_one_shared_database() -> None:
    async with await tgpersist.open_store("sqlite+aiosqlite:///:memory:") as store:
        await store.account("a").session.save(Session("a", dc_id=1))
        results = await asyncio.gather(
            *(store.account(f"n{i}").peers.save(Peer(i + 1, PeerType.USER, i)) for i in range(10))
        )
        assert results == [None] * 10
        assert await store.list_sessions() == sorted(["a", *(f"n{i}" for i in range(10))])
        assert (await store.account("a").session.load()) == Session("a", dc_id=1)


async def test_store_on_host_engine_does_not_dispose_it(db_url: str) -> None:
    await (await tgpersist.open_store(db_url)).close()  # migrate
    engine = tgpersist.create_engine(db_url)
    try:
        async with tgpersist.Store(engine) as store:
            await store.account("x").session.save(Session("x"))
        async with engine.connect() as conn:  # still usable after the store closed
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        async with tgpersist.Store(async_sessionmaker(engine)) as store:
            assert await store.list_sessions() == ["x"]
    finally:
        await engine.dispose()


async def test_open_store_disposes_its_engine(db_url: str) -> None:
    store = await tgpersist.open_store(db_url)
    pool = store.engine.pool
    await store.account("x").session.save(Session("x"))
    await store.close()
    assert pool.checkedout() == 0


def test_bad_binds_are_rejected() -> None:
    with pytest.raises(InvalidArgument) as info:
        tgpersist.Store("sqlite:///x.db")  # type: ignore[arg-type]
    assert info.value.field == "bind"
    with pytest.raises(InvalidArgument) as info:
        tgpersist.Store(tgpersist.create_engine("sqlite+aiosqlite:///:memory:"), prefix="Bad-Prefix")
    assert info.value.field == "prefix"


async def test_unsupported_database_url() -> None:
    with pytest.raises(UnsupportedDatabase):
        await tgpersist.open_store("mysql+aiomysql://u@h/db")


async def test_account_objects_are_reused(store: tgpersist.Store) -> None:
    assert store.account("a") is store.account("a")
    assert store.account("a") is not store.account("b")
    assert repr(store.account("a")) == "Account('a')"


async def test_sqlite_connections_are_configured(tmp_path: object) -> None:
    async with (
        await tgpersist.open_store(f"sqlite+aiosqlite:///{tmp_path}/p.db") as store,
        store.engine.connect() as conn,
    ):
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 30000
