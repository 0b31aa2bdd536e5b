"""Connection settings from the URL on PostgreSQL. Behind PgBouncer, startup parameters other than the
few it knows are refused (as by hosted providers), so in pooler mode `options`/`search_path` travel
inside each transaction (`SET LOCAL`), and never stay behind on a server connection another client
gets. A Unix socket directory in `host=` reaches the server over its socket."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError

import tgpersist
from tests.hosted.conftest import PooledDatabases
from tgpersist import Session

OPTIONS = "options=-c%20statement_timeout%3D250ms%20-c%20lock_timeout%3D4s&application_name=tg-pooled"


async def settings(store: tgpersist.Store) -> tuple[str, ...]:
    async with store.engine.begin() as conn:
        row = await conn.exec_driver_sql(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('application_name')"
        )
        return tuple(row.one())


async def test_options_travel_inside_each_transaction(pooled: PooledDatabases) -> None:
    url = f"{await pooled.new()}&{OPTIONS}"
    async with await tgpersist.open_store(url) as store:
        await store.account("a").session.save(Session("a", dc_id=2))
        assert await store.account("a").session.load() is not None
        # Small writes too: the group-commit writer holds no connection and sends no lone statements
        # outside a transaction, so that the settings travel with every batch.
        assert store.writer._held is None
        assert await store.account("a").updates.remember("k") is True
        for _ in range(5):  # whichever server connection each transaction lands on
            assert await settings(store) == ("250ms", "4s", "tg-pooled")
        async with store.engine.begin() as conn:
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.exec_driver_sql("SELECT pg_sleep(5)")
    # Another client on the same pooler sees the server defaults: nothing was SET for the session.
    u = make_url(url)
    plain = await asyncpg.connect(
        host=u.host, port=u.port, user=u.username, database=u.database, statement_cache_size=0
    )
    try:
        for _ in range(5):
            assert await plain.fetchval("SELECT current_setting('statement_timeout')") == "0"
    finally:
        await plain.close()


async def test_options_as_startup_parameters_are_refused_by_the_pooler(pooled: PooledDatabases) -> None:
    """Why pooler mode sends them another way: without `pgbouncer=true` they are startup parameters."""
    url = (await pooled.new()).replace("pgbouncer=true", OPTIONS)
    with pytest.raises(tgpersist.DatabaseUnavailable, match="unsupported startup parameter"):
        await tgpersist.open_store(url)


async def test_a_unix_socket_directory_in_the_host_parameter(postgres_server: str) -> None:
    """`postgresql://user@:port/db?host=/socket/dir` (Cloud SQL's spelling, whose port is the default)
    reaches the server over its socket."""
    server = make_url(postgres_server)
    async with await tgpersist.open_store(postgres_server) as store, store.engine.connect() as conn:
        sockets = (await conn.exec_driver_sql("SHOW unix_socket_directories")).scalar_one().split(",")[0]
    url = f"postgresql://{server.username}@:{server.port}/{server.database}?host={sockets}"
    async with await tgpersist.open_store(url) as store, store.engine.connect() as conn:
        over = (await conn.exec_driver_sql("SELECT inet_client_addr() IS NULL")).scalar_one()
    assert over is True  # no client address: a Unix socket, not TCP


async def test_pooler_mode_sets_no_session_settings(pooled: PooledDatabases) -> None:
    """The idle-transaction timeout and keepalives that direct connections start with (see
    `tgpersist.sql.session_settings`) would stay on a server connection another client gets next."""
    async with await tgpersist.open_store(await pooled.new()) as store:
        assert await store.account("a").updates.remember("k") is True
        for _ in range(3):
            async with store.engine.begin() as conn:
                shown = await conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout")
                assert shown.scalar_one() == "0"
