"""Bulk writes of many rows in a few driver calls, and the retry point a batch can fail back to."""

from __future__ import annotations

import contextlib
import functools
import operator
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


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
