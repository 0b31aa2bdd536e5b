"""Fixtures shared by every test: each backend (SQLite, PostgreSQL) and a fresh database per test.

`--backend sqlite|postgresql|all` picks backends (default all). PostgreSQL comes from
`TGPERSIST_TEST_POSTGRES_URL` or a throwaway server started here; if it cannot start, tests fail.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine.url import make_url

import tgpersist
from tgpersist.testing.postgres import server_url

BACKENDS = ("sqlite", "postgresql")

# Property-based tests: a few seconds each by default; `--hypothesis-profile=long` for a deeper run.
# Examples share a function-scoped store on purpose (each one cleans up or uses fresh names).
_HYPOTHESIS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,  # no .hypothesis directory left in the worktree or on CI
}
settings.register_profile("tgpersist", max_examples=25, **_HYPOTHESIS)
settings.register_profile("long", max_examples=1000, **_HYPOTHESIS)
settings.load_profile("tgpersist")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backend", default="all", choices=(*BACKENDS, "all"), help="database backends to test")


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--backend")
    return list(BACKENDS) if chosen == "all" else [chosen]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with server_url() as url:
        yield url


class Databases:
    """Creates empty databases on demand (SQLite files, or PostgreSQL databases on the test server)."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.request = request
        self.created: list[str] = []

    async def new(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_path / name}.db"
        server = make_url(self.request.getfixturevalue("postgres_server"))
        conn = await asyncpg.connect(**_asyncpg_args(server))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self.created:
            return
        server = make_url(self.request.getfixturevalue("postgres_server"))
        conn = await asyncpg.connect(**_asyncpg_args(server))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _asyncpg_args(url: object) -> dict[str, object]:
    u = make_url(str(url)) if not hasattr(url, "host") else url
    return {
        "host": u.host,  # type: ignore[attr-defined]
        "port": u.port,  # type: ignore[attr-defined]
        "user": u.username,  # type: ignore[attr-defined]
        "password": u.password,  # type: ignore[attr-defined]
        "database": u.database or "postgres",  # type: ignore[attr-defined]
    }


@pytest.fixture
async def databases(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Databases]:
    dbs = Databases(backend, tmp_path, request)
    yield dbs
    await dbs.drop_all()


@pytest.fixture
async def db_url(databases: Databases) -> str:
    """The URL of a fresh, empty database on the backend under test."""
    return await databases.new()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[tgpersist.Store]:
    """A store on a fresh database, migrated to head."""
    async with await tgpersist.open_store(db_url) as store:
        yield store
