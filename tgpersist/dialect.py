"""Everything that differs between SQLite and PostgreSQL lives here, and nowhere else.

- engine set-up: SQLite pragmas, explicit `BEGIN IMMEDIATE` for write transactions, `:memory:` pooling;
- upserts and insert-if-absent through each dialect's `insert().on_conflict_*`;
- row locking for queue claims, the database clock, and which errors mean "retry the transaction";
- safety: our engines keep bound parameters and result rows (auth keys, api hashes) out of logs and
  error messages, aiosqlite's debug log shows no statement arguments, and a SQLite file we create is
  private to its owner (0600).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import operator
import os
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, Double, Table, event, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert

from tgpersist.errors import UnsupportedDatabase

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

log = logging.getLogger(__name__)

#: SQLAlchemy's engine logger; ours is `ENGINE_LOGGER.LOGGING_NAME`, where result rows are hidden.
ENGINE_LOGGER = "sqlalchemy.engine.Engine"
LOGGING_NAME = "tgpersist"


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
    engine = create_async_engine(parsed, **engine_options)
    configure_engine(engine)
    if engine.sync_engine.logging_name:
        _add_filter(logging.getLogger(f"{ENGINE_LOGGER}.{engine.sync_engine.logging_name}"), _HiddenRows)
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
    _guard_sqlite_file(sync_engine)
    _add_filter(logging.getLogger("aiosqlite"), _HiddenArguments)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; None for an in-memory or URI-style (`file:...`) database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def create_private_file(path: str) -> bool:
    """Create `path` empty with mode 0600 if it does not exist (SQLite then uses it); True if created.

    SQLite gives its -wal, -shm and -journal files the mode of the database file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False  # it exists, or cannot be created: SQLite reports the latter in its own words
    os.close(fd)
    return True


def warn_if_exposed(path: str) -> bool:
    """Log a warning (naming only the path) if other users may read or write the file; True if so."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode) or not mode & 0o066:
        return False
    log.warning(
        "SQLite database %s is readable or writable by other users (mode %03o); it holds auth keys: "
        "restrict it with `chmod 600`",
        path,
        stat.S_IMODE(mode),
    )
    return True


def _guard_sqlite_file(engine: Engine) -> None:
    path = sqlite_file(engine.url)
    if path is None:
        return
    checked = False

    def before_connect(*_: Any) -> None:
        nonlocal checked
        if not create_private_file(path) and not checked:
            warn_if_exposed(path)
        checked = True

    event.listen(engine, "do_connect", before_connect)


class _HiddenArguments(logging.Filter):
    """aiosqlite logs each call it runs, arguments (SQL parameters) included: show only the call's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_call_name(arg) for arg in record.args)
        return True


def _call_name(arg: object) -> object:
    if isinstance(arg, functools.partial):
        name = getattr(arg.func, "__qualname__", type(arg.func).__name__)
        return f"{name}(<arguments hidden>)"
    return arg


class _HiddenRows(logging.Filter):
    """SQLAlchemy logs each result row at DEBUG (echo="debug"); rows hold auth keys and api hashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.endswith("Row %r"):
            record.args = ("<hidden by tgpersist: rows may hold auth keys>",)
        return True


def _add_filter(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


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


# -- hot paths: bulk writes and single-statement reads ----------------------------------------------


def driver_value(column: ColumnElement[Any], value: Any, sa_dialect: Dialect) -> Any:
    """`value` as the driver takes it for `column` (its type's bind processing), for raw statements."""
    process = column.type.dialect_impl(sa_dialect).bind_processor(sa_dialect)
    return value if process is None or value is None else process(value)


@functools.lru_cache(maxsize=512)
def _bound_values(shape: tuple[bool, ...]) -> Callable[[Sequence[tuple[Any, ...]]], Iterable[Any]]:
    """For rows of one NULL shape: their values that are not None, flattened in order (C-level
    `itemgetter`s, about twice as fast as filtering every value)."""
    keep = [i for i, is_null in enumerate(shape) if not is_null]
    if not keep:
        return lambda rows: ()
    getter = operator.itemgetter(*keep)
    if len(keep) == 1:
        return lambda rows: map(getter, rows)
    return lambda rows: chain.from_iterable(map(getter, rows))


class BulkUpsert:
    """`INSERT ... ON CONFLICT (keys) DO UPDATE` of many rows in a few driver calls, without per-row
    objects. Rows are tuples in `columns` order holding driver-ready values (see `driver_value`); the
    `shared` columns take one value for the whole batch, given once. A batch must not repeat a key.

    SQLite: multi-row `VALUES` statements (measured 1.3-2x faster than `executemany` of one row), one
    `executemany` per group of rows with the same NULL columns: a NULL is written as a literal rather
    than bound (binding None costs sqlite3 ~0.3 us, six times an int), shared values as numbered
    parameters bound once. The `stable` columns (indexed keys that rarely change, such as usernames)
    are first left out of the update, so that their indexes are not rewritten for rows where they did
    not change; only if some row's did, the batch is written again with every column.

    PostgreSQL: one statement over column arrays, `INSERT ... SELECT * FROM unnest($1::type[], ...)`,
    a single round trip; from `COPY_ROWS` rows on, binary COPY into a temporary table and one
    `INSERT ... SELECT` from it (measured faster than unnest and executemany at 10k rows and more,
    slower for small batches: see benchmarks/). PostgreSQL skips index updates for unchanged values
    by itself (HOT updates), so `stable` changes nothing there.
    """

    #: PostgreSQL batches from this size on go through COPY.
    COPY_ROWS = 2000
    #: SQLite rows per multi-row statement (bound parameters stay under SQLite's limit).
    SQLITE_ROWS = 200

    def __init__(
        self,
        table: Table,
        sa_dialect: Dialect,
        columns: Sequence[str],
        keys: Sequence[str],
        update: Sequence[str],
        *,
        shared: Sequence[str] = (),
        stable: Sequence[str] = (),
    ) -> None:
        quote = sa_dialect.identifier_preparer.quote
        self.arrays = sa_dialect.name == "postgresql"
        self.columns = (*shared, *columns)
        self.width = len(columns)
        names = ", ".join(quote(c) for c in self.columns)
        target = sa_dialect.identifier_preparer.format_table(table)
        conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) "

        def action(columns: Sequence[str]) -> str:
            if not columns:
                return "DO NOTHING"
            return "DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns)

        self._insert = f"INSERT INTO {target} ({names}) "
        self._target = target
        if self.arrays:
            # Shared values are scalar parameters $1..$k; the per-row columns follow as arrays.
            def cast(number: int, column: str, suffix: str = "") -> str:
                return f"${number}::{table.c[column].type.compile(dialect=sa_dialect)}{suffix}"

            scalars = [cast(i, c) for i, c in enumerate(shared, 1)]
            arrays = [cast(i, c, "[]") for i, c in enumerate(columns, len(shared) + 1)]
            per_row = ", ".join(quote(c) for c in columns)
            head = f"{self._insert}SELECT {''.join(f'{v}, ' for v in scalars)}"
            self.sql = f"{head}* FROM unnest({', '.join(arrays)}){conflict}{action(update)}"
            # The COPY table holds the per-row columns only (no constraints: CREATE ... AS).
            self._copy_table = f"SELECT {per_row} FROM {target}"
            self._from_copy = f"{head}{per_row} FROM {{source}}{conflict}{action(update)}"
            self._per_row = tuple(columns)
            return
        self.sql = f"{self._insert}VALUES ({', '.join('?' for _ in self.columns)}){conflict}{action(update)}"
        self._shared = len(shared)
        self._conflict = conflict + action(update)
        self._guarded = ""
        if any(c in stable for c in update) and any(c not in stable for c in update):
            unchanged = " AND ".join(f"{quote(c)} IS excluded.{quote(c)}" for c in stable)
            self._guarded = f"{conflict}{action([c for c in update if c not in stable])} WHERE {unchanged}"
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
        self._rows = max(1, min(self.SQLITE_ROWS, (limit - len(shared)) // max(1, self.width)))
        self._nones = (None,) * self.width
        self._texts: dict[tuple[str, tuple[bool, ...], int], str] = {}

    async def execute(
        self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]], shared: Sequence[Any] = ()
    ) -> None:
        if not rows:
            return
        if not self.arrays:
            await self._sqlite(conn, rows, list(shared))
            return
        if len(rows) >= self.COPY_ROWS:
            await self._copy(conn, rows, tuple(shared))
        else:
            arrays = (list(column) for column in zip(*rows, strict=True))
            await conn.exec_driver_sql(self.sql, (*shared, *arrays))

    async def _sqlite(
        self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]], shared: list[Any]
    ) -> None:
        groups: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
        is_ = operator.is_
        nones = self._nones
        for row in rows:
            shape = tuple(map(is_, row, nones))
            group = groups.get(shape)
            if group is None:
                groups[shape] = [row]
            else:
                group.append(row)
        if self._guarded and await self._write(conn, groups, shared, self._guarded) == len(rows):
            return  # no row changed a stable column
        await self._write(conn, groups, shared, self._conflict)

    async def _write(
        self,
        conn: AsyncConnection,
        groups: dict[tuple[bool, ...], list[tuple[Any, ...]]],
        shared: list[Any],
        conflict: str,
    ) -> int:
        """Every group through multi-row statements; the number of rows inserted or updated."""
        written = 0
        size = self._rows
        for shape, group in groups.items():
            bound = _bound_values(shape)
            full = len(group) - len(group) % size
            batches = [(*shared, *bound(group[k : k + size])) for k in range(0, full, size)]
            if batches:
                result = await conn.exec_driver_sql(self._text(conflict, shape, size), batches)
                written += result.rowcount
            if full < len(group):
                rest = group[full:]
                result = await conn.exec_driver_sql(
                    self._text(conflict, shape, len(rest)), (*shared, *bound(rest))
                )
                written += result.rowcount
        return written

    def _text(self, conflict: str, shape: tuple[bool, ...], count: int) -> str:
        """The statement for `count` rows of one NULL shape: `?1`.. are the shared values."""
        key = (conflict, shape, count)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= 512:  # bounded: rows of unusual shapes must not grow it forever
                self._texts.clear()
            shared = [f"?{i}" for i in range(1, self._shared + 1)]
            number = self._shared
            tuples = []
            for _ in range(count):
                values = list(shared)
                for is_null in shape:
                    if is_null:
                        values.append("NULL")
                    else:
                        number += 1
                        values.append(f"?{number}")
                tuples.append(f"({', '.join(values)})")
            text = self._texts[key] = f"{self._insert}VALUES {', '.join(tuples)}{conflict}"
        return text

    async def _copy(
        self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]], shared: tuple[Any, ...]
    ) -> None:
        # A temporary table private to this transaction (dropped here, or at the latest on commit, so
        # that two batches in one host transaction do not collide); COPY is asyncpg's binary protocol.
        # CREATE goes through SQLAlchemy, which begins the transaction on asyncpg if nothing else has
        # yet (else ON COMMIT DROP would drop the table at once). The rest goes straight to asyncpg:
        # SQLAlchemy would prepare and cache each as a named statement, although each names a new table.
        # The shared values travel once, as parameters of the INSERT, not in every copied row.
        source = f"tgpersist_bulk_{uuid.uuid4().hex[:12]}"
        await conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {source} ON COMMIT DROP AS {self._copy_table} WITH NO DATA"
        )
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.copy_records_to_table(source, records=rows, columns=self._per_row)
        await driver.execute(self._from_copy.format(source=source), *shared)
        await driver.execute(f"DROP TABLE {source}")


class BulkDelete:
    """Delete the rows of one scope whose `column` is any of many values, in one driver call; with
    `clear`, set those columns to NULL in such rows instead.

    SQLite: `executemany` of `scope = ? AND column = ?` (an index probe per value); PostgreSQL: one
    statement with `column = ANY($2::type[])`.
    """

    def __init__(
        self, table: Table, sa_dialect: Dialect, scope: str, column: str, *, clear: Sequence[str] = ()
    ) -> None:
        quote = sa_dialect.identifier_preparer.quote
        self.arrays = sa_dialect.name == "postgresql"
        target = sa_dialect.identifier_preparer.format_table(table)
        if self.arrays:
            cast = table.c[column].type.compile(dialect=sa_dialect)
            match = f"{quote(scope)} = $1 AND {quote(column)} = ANY($2::{cast}[])"
        else:
            match = f"{quote(scope)} = ? AND {quote(column)} = ?"
        if clear:
            nulls = ", ".join(f"{quote(c)} = NULL" for c in clear)
            self.sql = f"UPDATE {target} SET {nulls} WHERE {match}"
        else:
            self.sql = f"DELETE FROM {target} WHERE {match}"

    async def execute(self, conn: AsyncConnection, scope: Any, values: Sequence[Any]) -> None:
        if not values:
            return
        if self.arrays:
            await conn.exec_driver_sql(self.sql, (scope, list(values)))
        else:
            await conn.exec_driver_sql(self.sql, [(scope, value) for value in values])


@contextlib.asynccontextmanager
async def retry_point(conn: AsyncConnection) -> AsyncIterator[None]:
    """A block whose failure leaves the transaction usable, so that the caller can fix what failed
    and run it again: SQLite undoes just the failed statement by itself; PostgreSQL aborts the whole
    transaction on an error, so the block runs in a SAVEPOINT there."""
    if conn.dialect.name == "sqlite":
        yield
    else:
        async with conn.begin_nested():
            yield


class CompiledRead:
    """A SELECT compiled once for one dialect: its SQL text, the order of its parameters and the
    conversion of its result columns, so that a hot read skips SQLAlchemy's per-call statement work.

    Parameters are `bindparam(name)`s given by name at each call, or values fixed in the statement.
    """

    def __init__(self, stmt: Select[Any], sa_dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=sa_dialect)
        if compiled.post_compile_params:
            raise ValueError("expanding (IN) parameters are not supported by CompiledRead")
        self.sql = compiled.string
        self._binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(sa_dialect).bind_processor(sa_dialect)
            self._binds.append((bind.key, bind.value, process))
        self._results = [
            (index, process)
            for index, column in enumerate(stmt.selected_columns)
            if (process := column.type.dialect_impl(sa_dialect).result_processor(sa_dialect, None))
        ]

    def params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for key, fixed, process in self._binds:
            value = values.get(key, fixed)
            out.append(value if process is None or value is None else process(value))
        return tuple(out)

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        if not self._results:
            return [tuple(row) for row in raw]
        converted = []
        for row in raw:
            values = list(row)
            for index, process in self._results:
                value = values[index]
                if value is not None:
                    values[index] = process(value)
            converted.append(tuple(values))
        return converted


class Reader(abc.ABC):
    """Runs single-statement reads outside a transaction: a lone SELECT is atomic by itself, so the
    BEGIN and COMMIT/ROLLBACK round trips of a read transaction buy nothing."""

    @abc.abstractmethod
    async def fetch(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        """The raw rows of `sql` (driver values: see `CompiledRead.rows`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Give back whatever connection the reader holds."""


class _SqliteReader(Reader):
    """Reads on one held pool connection, each a single aiosqlite thread hop (`execute_fetchall`).

    The connection is in autocommit mode (see `_sqlite_connect`), so each SELECT reads the latest
    committed state (WAL) and leaves no transaction open. Concurrent reads queue on its thread.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._opening = asyncio.Lock()

    async def _open(self) -> Any:
        async with self._opening:
            if self._driver is None:
                conn = await self._engine.connect()
                try:
                    self._driver = (await conn.get_raw_connection()).driver_connection
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            return self._driver

    async def fetch(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        for attempt in (1, 2):
            driver = self._driver if self._driver is not None else await self._open()
            try:
                return await driver.execute_fetchall(sql, params)  # type: ignore[no-any-return]
            except sqlite3.Error as error:
                raise DBAPIError.instance(sql, params, error, sqlite3.Error, hide_parameters=True) from error
            except ValueError:  # "Connection closed" under us: drop it from the pool, reconnect once
                await self.close(invalidate=True)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self, *, invalidate: bool = False) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    await conn.invalidate()
                await conn.close()


class _AutocommitReader(Reader):
    """PostgreSQL: an AUTOCOMMIT connection from the pool, so asyncpg sends only the statement."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def fetch(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        async with self._engine.connect() as conn:
            return (await conn.exec_driver_sql(sql, params)).all()

    async def close(self) -> None:
        """Nothing held: each read checks a connection out of the pool and back."""


def reader_for(engine: AsyncEngine) -> Reader | None:
    """The single-statement reader for `engine`; None for in-memory SQLite, whose one shared
    connection may be inside another coroutine's transaction (reads must then take turns)."""
    if single_connection(engine):
        return None
    if engine.dialect.name == "sqlite":
        return _SqliteReader(engine)
    return _AutocommitReader(engine)
