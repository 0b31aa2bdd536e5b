"""PgBouncer 1.18 in front of the test PostgreSQL server, in transaction and in session pooling mode.

Session-scoped: one PgBouncer per mode for the whole run; each test gets fresh databases on the server
(created directly) and reaches them through the pooler. PostgreSQL-only: deselected by --backend sqlite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine.url import make_url

from tests.conftest import Databases, selected_backends
from tgpersist.testing.pgbouncer import temporary_pgbouncer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "postgresql" in selected_backends(config):
        return
    chosen = [item for item in items if HERE not in Path(item.path).parents]
    config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
    items[:] = chosen


@pytest.fixture(scope="session")
def transaction_pooler(postgres_server: str) -> Iterator[str]:
    """URL (`?pgbouncer=true`) of a transaction-pooling PgBouncer in front of the test server."""
    with temporary_pgbouncer(postgres_server, pool_mode="transaction") as url:
        yield url


@pytest.fixture(scope="session")
def session_pooler(postgres_server: str) -> Iterator[str]:
    """URL of a session-pooling PgBouncer in front of the test server (no parameter: the defaults)."""
    with temporary_pgbouncer(postgres_server, pool_mode="session") as url:
        yield url


def through(pooler: str, direct: str) -> str:
    """`direct`'s database, reached through `pooler` (with the pooler URL's parameters)."""
    return make_url(pooler).set(database=make_url(direct).database).render_as_string(hide_password=False)


class PooledDatabases:
    """Fresh databases on the server, each returned as its URL through the pooler."""

    def __init__(self, databases: Databases, pooler: str) -> None:
        self.databases = databases
        self.pooler = pooler

    async def new(self) -> str:
        return through(self.pooler, await self.databases.new())


@pytest.fixture
async def pg_databases(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Databases]:
    dbs = Databases("postgresql", tmp_path, request)
    yield dbs
    await dbs.drop_all()


@pytest.fixture
async def pooled(pg_databases: Databases, transaction_pooler: str) -> PooledDatabases:
    """Fresh databases through the transaction-pooling PgBouncer."""
    return PooledDatabases(pg_databases, transaction_pooler)


@pytest.fixture
async def pooled_url(pooled: PooledDatabases) -> str:
    """A fresh, empty database through the transaction-pooling PgBouncer (`?pgbouncer=true`)."""
    return await pooled.new()
