"""Helpers shared by the adapter tests: raw access to the test database, behind the store's back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import update
from sqlalchemy.engine.url import make_url

import tgpersist

#: The advisory lock key the PostgreSQL write blocker holds.
BLOCK_KEY = 424242
#: How many 10 ms polls a test waits for the database to report a blocked writer.
MAX_POLLS = 1000


async def pg_connect(db_url: str) -> asyncpg.Connection:
    url = make_url(db_url)
    return await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )


async def steal_lease(store: tgpersist.Store, name: str, owner: str = "thief") -> None:
    """What another owner does once our lease has expired: take the session row's lease over."""
    sessions = store.models.table(store.models.Session)
    stmt = (
        update(sessions)
        .where(sessions.c.name == name)
        .values(lease_owner=owner, lease_token=sessions.c.lease_token + 1, lease_expires=4e9)
    )
    async with store.engine.begin() as conn:
        await conn.execute(stmt)


class WriteBlocker:
    """Makes the database stall every write to the peers table until `release()`.

    PostgreSQL: a trigger waits for an advisory lock that this test holds. SQLite: this test holds the
    database's write lock (`BEGIN IMMEDIATE` on its own connection), so a writer waits in its thread.
    """

    def __init__(self, backend: str, db_url: str, prefix: str = "tgpersist_") -> None:
        self.backend = backend
        self.db_url = db_url
        self.table = f"{prefix}peers"
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def block(self) -> None:
        if self.backend == "postgresql":
            self._pg = conn = await pg_connect(self.db_url)
            await conn.execute(
                "CREATE FUNCTION tgpersist_test_stall() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM pg_advisory_xact_lock({BLOCK_KEY}); RETURN NEW; END $$"
            )
            await conn.execute(
                f"CREATE TRIGGER tgpersist_test_stall BEFORE INSERT OR UPDATE ON {self.table} "
                "FOR EACH ROW EXECUTE FUNCTION tgpersist_test_stall()"
            )
            await conn.execute(f"SELECT pg_advisory_lock({BLOCK_KEY})")
        else:
            path = make_url(self.db_url).database
            assert path is not None
            self._sqlite = sqlite3.connect(path, isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")

    async def stalled_writers(self) -> int:
        """How many database sessions wait on our lock now (PostgreSQL only; SQLite cannot tell)."""
        assert self._pg is not None
        return int(
            await self._pg.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                f"AND objid = {BLOCK_KEY}"
            )
        )

    async def wait_until_stalled(self, writing: object) -> None:
        """Poll (bounded) until a write is stuck in the database: `writing()` says one is in flight."""
        for _ in range(MAX_POLLS):
            in_flight = bool(writing())  # type: ignore[operator]
            if in_flight and (self.backend != "postgresql" or await self.stalled_writers() > 0):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the write never reached the database")

    async def release(self) -> None:
        if self._pg is not None:
            await self._pg.execute(f"SELECT pg_advisory_unlock({BLOCK_KEY})")
            await self._pg.execute(f"DROP TRIGGER tgpersist_test_stall ON {self.table}")
            await self._pg.close()
            self._pg = None
        if self._sqlite is not None:
            self._sqlite.execute("COMMIT")
            self._sqlite.close()
            self._sqlite = None


@asynccontextmanager
async def stalled_writes(backend: str, db_url: str) -> AsyncIterator[WriteBlocker]:
    blocker = WriteBlocker(backend, db_url)
    await blocker.block()
    try:
        yield blocker
    finally:
        await blocker.release()
