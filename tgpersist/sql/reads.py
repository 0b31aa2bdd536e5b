"""Hot reads: SELECTs compiled once, run outside a transaction where a lone statement is atomic."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

from tgpersist.sql import pooler_settings
from tgpersist.sql.engines import single_connection
from tgpersist.sql.pinned import PinnedConnection


class CompiledRead:
    """A SELECT (or a write with RETURNING) compiled once for one dialect: its SQL text, the order of
    its parameters and the conversion of its result columns, so that a hot statement skips
    SQLAlchemy's per-call statement work.

    Parameters are `bindparam(name)`s given by name at each call, or values fixed in the statement.
    """

    def __init__(self, stmt: Select[Any] | UpdateBase, sa_dialect: Dialect) -> None:
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
            for index, column in enumerate(stmt.exported_columns)
            if (process := column.type.dialect_impl(sa_dialect).result_processor(sa_dialect, None))
        ]

    @property
    def binds(self) -> list[tuple[str, Any, Any]]:
        """(name, fixed value, bind processor or None) of each parameter, in positional order."""
        return self._binds

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
        self._pinned = PinnedConnection(engine)

    async def fetch(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        # A connection closed under us is dropped and reported as lost: `Database.fetch` re-runs the
        # read on a fresh one, then raises `DatabaseUnavailable`.
        driver = self._pinned.driver or await self._pinned.open()
        return await self._pinned.call(lambda: driver.execute_fetchall(sql, params), sql, params)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._pinned.close()


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
    connection may be inside another coroutine's transaction (reads must then take turns), and for
    an engine with per-transaction settings (`pooler_settings`)."""
    if single_connection(engine) or pooler_settings.settings_of(engine):
        return None  # in pooler mode, settings of the URL need a transaction to travel in
    if engine.dialect.name == "sqlite":
        return _SqliteReader(engine)
    return _AutocommitReader(engine)
