"""Engines as tgpersist needs them: supported dialects, SQLite connection hooks (pragmas, an explicit
`BEGIN IMMEDIATE` for write transactions, foreign keys per connection), `:memory:` pooling, and the
safety settings every engine of ours gets (hidden parameters, redacted logs, private SQLite files).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from tgpersist.errors import UnsupportedDatabase
from tgpersist.sql.files import guard_sqlite_file
from tgpersist.sql.redaction import ENGINE_LOGGER, LOGGING_NAME, HiddenArguments, HiddenRows, add_filter

SUPPORTED = ("sqlite", "postgresql")

#: Execution option: this connection's transactions write (SQLite then takes the write lock up front).
WRITE = "tgpersist_write"
#: Execution option: SQLite foreign-key enforcement for this connection (off during batch migrations).
FOREIGN_KEYS = "tgpersist_foreign_keys"

#: Execution options for a connection that runs migrations (ours or a host's, on an engine set up by
#: `configure_engine`): SQLite takes the write lock up front and leaves foreign keys off, so that a
#: batch migration's table copy does not cascade deletes into the tables that refer to it.
MIGRATION_OPTIONS = {WRITE: True, FOREIGN_KEYS: False}

SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Default pool of an engine of ours (`pool_size`/`max_overflow` given to `create_engine` or
#: `open_store` win): connections kept open, and none opened beyond them. SQLAlchemy's own default
#: (5 + 10 overflow, each overflow connection closed after its one use) made 64 concurrent callers
#: open ~330 connections per 5,000 calls; with a fixed pool, callers beyond it queue for a
#: connection (`pool_timeout`, 30 s) instead. See benchmarks/pools.py and the README's pool sizing.
POOL_SIZE = 10
MAX_OVERFLOW = 0


def name_of(bind: AsyncEngine | Engine | Connection) -> str:
    name = bind.dialect.name
    if name not in SUPPORTED:
        raise UnsupportedDatabase(
            f"dialect {name!r} is not supported (use sqlite+aiosqlite or postgresql+asyncpg)"
        )
    return name


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """An `AsyncEngine` for `url`, configured as tgpersist needs it (see `configure_engine`)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise UnsupportedDatabase(f"{backend!r} databases are not supported (use sqlite or postgresql)")
    # Bound parameters and result rows include auth keys and api hashes: keep them out of echo/DEBUG
    # logs and exception messages. Our engines log as `sqlalchemy.engine.Engine.tgpersist`.
    engine_options.setdefault("hide_parameters", True)
    engine_options.setdefault("logging_name", LOGGING_NAME)
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        engine_options.setdefault("poolclass", StaticPool)
        engine_options.setdefault("connect_args", {"check_same_thread": False})
    elif "poolclass" not in engine_options:
        engine_options.setdefault("pool_size", POOL_SIZE)
        engine_options.setdefault("max_overflow", MAX_OVERFLOW)
    engine = create_async_engine(parsed, **engine_options)
    configure_engine(engine)
    if engine.sync_engine.logging_name:
        add_filter(logging.getLogger(f"{ENGINE_LOGGER}.{engine.sync_engine.logging_name}"), HiddenRows)
    return engine


#: Engines that reach PostgreSQL through a transaction-pooling proxy (PgBouncer, Supavisor): no
#: session-level state (LISTEN, session advisory locks, named prepared statements) may be relied on.
_POOLED: weakref.WeakSet[Engine] = weakref.WeakSet()


def mark_behind_pooler(engine: AsyncEngine) -> None:
    """Record that `engine` talks to a transaction pooler (set by `create_engine` for `?pgbouncer=true`)."""
    _POOLED.add(engine.sync_engine)


def behind_pooler(engine: AsyncEngine) -> bool:
    """Whether `engine` talks to PostgreSQL through a transaction pooler (see `mark_behind_pooler`)."""
    return engine.sync_engine in _POOLED


def configure_engine(engine: AsyncEngine) -> None:
    """Install the SQLite connection hooks on `engine` (idempotent; nothing to do on PostgreSQL).

    Call it right after creating an engine of your own, before its first connection, when you embed.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or event.contains(sync_engine, "connect", _sqlite_connect):
        return
    event.listen(sync_engine, "connect", _sqlite_connect)
    event.listen(sync_engine, "begin", _sqlite_begin)
    guard_sqlite_file(sync_engine)
    add_filter(logging.getLogger("aiosqlite"), HiddenArguments)


def single_connection(engine: AsyncEngine) -> bool:
    """Whether every checkout shares one connection (in-memory SQLite), so transactions must not overlap."""
    return isinstance(engine.sync_engine.pool, StaticPool)


def _sqlite_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Take transaction control away from pysqlite (it would otherwise BEGIN lazily, in deferred mode);
    # `_sqlite_begin` emits the BEGIN we want. WAL cannot be switched on inside a transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA secure_delete = ON")  # overwritten auth keys do not linger in free space
    cursor.close()
    record.info[FOREIGN_KEYS] = True


def _sqlite_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    info = conn.connection.info
    want_fk = bool(options.get(FOREIGN_KEYS, True))
    if info.get(FOREIGN_KEYS, True) != want_fk:
        # Only effective outside a transaction, which is exactly where we are.
        conn.exec_driver_sql(f"PRAGMA foreign_keys = {'ON' if want_fk else 'OFF'}")
        info[FOREIGN_KEYS] = want_fk
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE) else "BEGIN")


async def compact_sqlite(engine: AsyncEngine) -> bool:
    """SQLite: VACUUM and truncate the WAL, so overwritten values (say, auth keys just encrypted) are gone
    from the database files; False (nothing done) on PostgreSQL, whose old row versions need VACUUM FULL.
    """
    if engine.dialect.name != "sqlite":
        return False
    async with engine.connect() as conn:
        # On the driver connection: VACUUM cannot run inside the BEGIN our hook would emit.
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        for sql in ("VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
            cursor = await driver.execute(sql)
            await cursor.close()
    return True
