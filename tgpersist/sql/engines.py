"""Engines as tgpersist needs them: supported dialects, SQLite connection hooks (pragmas, an explicit
`BEGIN IMMEDIATE` for write transactions, foreign keys per connection), `:memory:` pooling, and the
safety settings every engine of ours gets (hidden parameters, redacted logs, private SQLite files).
"""

from __future__ import annotations

import logging
import socket
import ssl
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from tgpersist.errors import DatabaseUnavailable, UnsupportedDatabase
from tgpersist.sql import pooler_settings, session_settings, urls
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
#: Execution option: seconds this connection's next SQLite transaction may wait for another writer
#: (default `SQLITE_BUSY_TIMEOUT_MS`); a unit of work with a deadline sets what is left of it.
BUSY_TIMEOUT = "tgpersist_busy_timeout"
#: Seconds a new connection may take before the database counts as unreachable (`DatabaseUnavailable`).
DEFAULT_CONNECT_TIMEOUT = 10.0

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


def create_engine(
    url: str | URL, *, connect_timeout: float | None = None, **engine_options: Any
) -> AsyncEngine:
    """An `AsyncEngine` for `url` as users paste it (see `tgpersist.sql.urls`), configured as tgpersist
    needs it (see `configure_engine`).

    A new PostgreSQL connection gives up after `connect_timeout` seconds (the keyword, else the URL's
    `connect_timeout`, else `DEFAULT_CONNECT_TIMEOUT`). No ping per checkout (it costs a round trip on
    every call, doubling a one-row read): a connection that died while idle fails on its first
    statement, before anything was committed, and `Database.run` re-runs the unit on a new one
    (SQLAlchemy then replaces every pooled connection older than the failure).
    """
    target = urls.translate(url)
    backend = target.url.get_backend_name()
    # Bound parameters and result rows include auth keys and api hashes: keep them out of echo/DEBUG
    # logs and exception messages. Our engines log as `sqlalchemy.engine.Engine.tgpersist`.
    engine_options.setdefault("hide_parameters", True)
    engine_options.setdefault("logging_name", LOGGING_NAME)
    if backend == "sqlite" and target.url.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        engine_options.setdefault("poolclass", StaticPool)
        engine_options.setdefault("connect_args", {"check_same_thread": False})
    elif "poolclass" not in engine_options:
        engine_options.setdefault("pool_size", POOL_SIZE)
        engine_options.setdefault("max_overflow", MAX_OVERFLOW)
    if backend == "postgresql":
        given = engine_options.get("connect_args", {})
        connect_args = {**target.connect_args, **given}
        if target.pooler:
            connect_args.update(urls.pooler_connect_args(connect_args))
        # The keyword wins, then the caller's own connect_args, then the URL's connect_timeout.
        if connect_timeout is not None:
            connect_args["timeout"] = connect_timeout
        elif "timeout" not in given:
            connect_args["timeout"] = (
                target.connect_timeout if target.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
            )
        engine_options["connect_args"] = connect_args
    engine = create_async_engine(target.url, **engine_options)
    configure_engine(engine)
    if backend == "postgresql":
        event.listen(engine.sync_engine, "do_connect", _connect_postgresql)
        if not target.pooler:
            session_settings.install(engine, engine_options["connect_args"].get("server_settings", {}))
    if target.pooler:
        mark_behind_pooler(engine)
    if target.transaction_settings:
        pooler_settings.install(engine, target.transaction_settings)
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


def _connect_postgresql(
    dialect: Any, record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Connect as SQLAlchemy would; a network, TLS or timeout failure (raised by asyncpg as a bare
    `OSError`, which SQLAlchemy passes on unwrapped) becomes `DatabaseUnavailable` naming host and port."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as error:
        host, port = cparams.get("host"), cparams.get("port") or 5432
        problem = error.strerror or str(error)
        if isinstance(error, TimeoutError):
            problem = "timed out"
        elif isinstance(error, ConnectionRefusedError):
            problem = "connection refused"
        elif isinstance(error, socket.gaierror):
            problem = f"cannot resolve the host name ({problem})"
        elif isinstance(error, ssl.SSLError):
            problem = f"TLS: {getattr(error, 'verify_message', None) or error.reason or error}"
        raise DatabaseUnavailable(str(host) if host else None, int(port), problem) from error


def address_of(engine: AsyncEngine) -> tuple[str | None, int | None]:
    """Where `engine` connects, for error messages: (host, port), or (file, None) for SQLite."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return (url.database or ":memory:"), None
    return (url.host or "localhost"), (url.port or 5432)


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


def pool_capacity(engine: AsyncEngine) -> int | None:
    """How many connections `engine`'s pool hands out at most (`pool_size` + `max_overflow`); None
    for no limit (e.g. `NullPool`, or a negative `max_overflow`)."""
    pool = engine.sync_engine.pool
    if isinstance(pool, StaticPool):
        return 1
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)  # QueuePool's; it has no public reader
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None
    return int(size()) + overflow


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
    busy_ms = int(options[BUSY_TIMEOUT] * 1000) if BUSY_TIMEOUT in options else SQLITE_BUSY_TIMEOUT_MS
    if info.get(BUSY_TIMEOUT, SQLITE_BUSY_TIMEOUT_MS) != busy_ms:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(busy_ms, 1)}")
        info[BUSY_TIMEOUT] = busy_ms
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
