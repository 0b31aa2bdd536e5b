"""Everything that differs between SQLite and PostgreSQL lives here, and nowhere else.

- engine set-up: SQLite pragmas, explicit `BEGIN IMMEDIATE` for write transactions, `:memory:` pooling;
- upserts and insert-if-absent through each dialect's `insert().on_conflict_*`;
- row locking for queue claims, the database clock, and which errors mean "retry the transaction".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Double, Table, event, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.dml import Insert

from tgpersist.errors import UnsupportedDatabase

SUPPORTED = ("sqlite", "postgresql")

#: Execution option: this connection's transactions write (SQLite then takes the write lock up front).
WRITE = "tgpersist_write"
#: Execution option: SQLite foreign-key enforcement for this connection (off during batch migrations).
FOREIGN_KEYS = "tgpersist_foreign_keys"

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see a different empty database.
        engine_options.setdefault("poolclass", StaticPool)
        engine_options.setdefault("connect_args", {"check_same_thread": False})
    engine = create_async_engine(parsed, **engine_options)
    configure_engine(engine)
    return engine


def configure_engine(engine: AsyncEngine) -> None:
    """Install the SQLite connection hooks on `engine` (idempotent; nothing to do on PostgreSQL).

    Call it right after creating an engine of your own, before its first connection, when you embed.
    """
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or event.contains(sync_engine, "connect", _sqlite_connect):
        return
    event.listen(sync_engine, "connect", _sqlite_connect)
    event.listen(sync_engine, "begin", _sqlite_begin)


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


def insert(table: Table, dialect: str) -> Insert:
    """The dialect's own INSERT construct, which knows ON CONFLICT."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(table: Table, dialect: str, keys: Sequence[str], update: Iterable[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET each of `update` to the incoming value."""
    stmt = insert(table, dialect)
    excluded = stmt.excluded  # type: ignore[attr-defined]
    columns = {name: excluded[name] for name in update}
    if not columns:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined,no-any-return]
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=columns)  # type: ignore[attr-defined,no-any-return]


def insert_ignore(table: Table, dialect: str, keys: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO NOTHING."""
    return insert(table, dialect).on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined,no-any-return]


def db_epoch(dialect: str) -> ColumnElement[float]:
    """The database server's clock as Unix seconds, so expiry never depends on a client's clock."""
    if dialect == "postgresql":
        return func.extract("epoch", func.clock_timestamp()).cast(Double)
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Double)


def claim_locks_rows(dialect: str) -> bool:
    """Whether a claim's inner SELECT should use FOR UPDATE SKIP LOCKED (SQLite serialises writers)."""
    return dialect == "postgresql"


#: SQLSTATEs after which re-running the whole transaction is the documented fix.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


def is_retryable(error: BaseException) -> bool:
    """A serialisation failure or deadlock (PostgreSQL), or a busy/locked database (SQLite)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def is_missing_parent(error: BaseException) -> bool:
    """A foreign-key violation: the row's session does not exist (any more)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()
