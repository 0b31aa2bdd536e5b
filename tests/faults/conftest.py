"""Fixtures for fault tests: a fresh PostgreSQL database and a `FaultProxy` in front of its server.

Network faults need a network database, so these tests run on PostgreSQL only (not parametrised by
`backend`); the SQLite side of each behaviour is tested beside them with the `backend` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine.url import make_url

from tests.conftest import Databases
from tgpersist.testing.faults import FaultProxy


@pytest.fixture
async def pg_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, empty database on the session's PostgreSQL test server."""
    dbs = Databases("postgresql", tmp_path, request)
    yield await dbs.new()
    await dbs.drop_all()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[FaultProxy]:
    """A proxy in front of the server holding `pg_url`; `proxy.url_for(pg_url)` reaches it through it."""
    target = make_url(pg_url)
    with FaultProxy(str(target.host), int(target.port or 5432)) as running:
        yield running
