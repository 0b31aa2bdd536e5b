"""The group-commit writer's held PostgreSQL connection under real faults: terminated by the server
while idle, reset mid-transaction, cut under a lone statement. A batch runs again on a new connection
when nothing can have been committed (one True per dedup key, every row stored once), else its callers
get a clean `DatabaseUnavailable(outcome_unknown=True)`; never a raw asyncpg error."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine.url import make_url

import tgpersist
from tests.faults.test_connections import GUARD, assert_clean, terminate_backends, with_password
from tgpersist import DatabaseUnavailable, DurableUpdate
from tgpersist.sql.held_postgres import HeldPostgres
from tgpersist.testing.faults import FaultProxy

KEYS = 16


async def held_driver(store: tgpersist.Store) -> Any:
    """The asyncpg connection the writer holds, after one committed batch."""
    assert await store.account("bot").updates.remember("warm-up") is True
    held = store.writer._held
    assert isinstance(held, HeldPostgres)
    assert held.driver is not None
    return held.driver


async def stored(url: str, sql: str) -> list[Any]:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        return [row[0] for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def one_true_per_key(keys: list[str], answers: list[bool]) -> bool:
    wins = Counter(k for k, new in zip(keys, answers, strict=True) if new)
    return wins == Counter({k: 1 for k in set(keys)})


async def test_a_held_connection_terminated_while_idle_is_replaced_and_the_batch_runs(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await tgpersist.open_store(pg_url) as store:
        old = await held_driver(store)
        await terminate_backends(pg_url, old.get_server_pid())
        async with asyncio.timeout(GUARD):
            while not old.is_closed():  # noqa: ASYNC110 (asyncpg reads the server's goodbye)
                await asyncio.sleep(0.01)
        updates = store.account("bot").updates
        keys = [f"k{i % KEYS}" for i in range(64)]
        async with asyncio.timeout(GUARD):
            answers = await asyncio.gather(*(updates.remember(k) for k in keys))
        assert one_true_per_key(keys, answers)
        held = store.writer._held
        assert held is not None and held.driver is not None and held.driver is not old
    assert sorted(await stored(pg_url, "SELECT key FROM tgpersist_dedup_keys")) == sorted({*keys, "warm-up"})


async def test_a_connection_reset_inside_a_batch_runs_it_again_and_stores_each_row_once(
    pg_url: str, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    async with await tgpersist.open_store(proxy.url_for(pg_url), connect_timeout=2) as store:
        driver = await held_driver(store)
        cuts: list[str] = []

        def cut_after_begin(query: Any) -> None:
            if query.query == "BEGIN" and not cuts:
                cuts.append(query.query)
                proxy.cut()  # the batch's next statement meets a reset route
                proxy.restore()  # the re-run connects anew

        driver.add_query_logger(cut_after_begin)
        updates = store.account("bot").updates
        keys = [f"k{i % KEYS}" for i in range(32)]
        with caplog.at_level("INFO", logger="tgpersist.database"):
            async with asyncio.timeout(GUARD):
                # Two kinds in one batch: a transaction of several statements (BEGIN first).
                answers = await asyncio.gather(
                    updates.remember("lead"),
                    *(updates.remember(k) for k in keys),
                    *(updates.enqueue(DurableUpdate(b"p", id=f"u{i}")) for i in range(8)),
                )
        assert cuts == ["BEGIN"]
        assert answers[0] is True and one_true_per_key(keys, list(answers[1 : 1 + len(keys)]))
        assert any("lost before COMMIT" in r.getMessage() for r in caplog.records)
    assert sorted(await stored(pg_url, "SELECT id FROM tgpersist_durable_updates")) == sorted(
        f"u{i}" for i in range(8)
    )
    assert len(await stored(pg_url, "SELECT key FROM tgpersist_dedup_keys")) == len(set(keys)) + 2


async def test_a_lone_statement_cut_in_flight_is_outcome_unknown_and_clean(
    pg_url: str, proxy: FaultProxy
) -> None:
    url = with_password(proxy.url_for(pg_url))
    async with await tgpersist.open_store(url, connect_timeout=2) as store:
        await held_driver(store)
        updates = store.account("bot").updates
        proxy.pause()  # the statement goes out and no answer comes back
        pending = asyncio.ensure_future(updates.remember("in-flight"))
        await asyncio.sleep(0.2)
        assert not pending.done()
        proxy.cut()
        with pytest.raises(DatabaseUnavailable) as caught:
            await asyncio.wait_for(pending, GUARD)
        assert caught.value.outcome_unknown
        assert_clean(caught.value, proxy.port)
        proxy.restore()
        async with asyncio.timeout(GUARD):
            assert await updates.remember("after") is True  # on a new connection


async def test_the_writer_waits_for_a_full_pool_no_longer_than_the_connect_timeout(pg_url: str) -> None:
    async with await tgpersist.open_store(pg_url, pool_size=4, max_overflow=0, connect_timeout=0.5) as store:
        taken = [await store.engine.connect() for _ in range(4)]  # every connection of the pool
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DatabaseUnavailable) as caught:
                await asyncio.wait_for(store.account("bot").updates.remember("k"), GUARD)
            assert asyncio.get_running_loop().time() - started < 5  # not the pool's own 30 s
            assert caught.value.problem == "no connection within 0.5s" and not caught.value.outcome_unknown
            assert caught.value.__cause__ is None and caught.value.__context__ is None
        finally:
            for conn in taken:
                await conn.close()
        assert await store.account("bot").updates.remember("k") is True  # a connection is free again
