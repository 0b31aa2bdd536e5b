"""`PinnedConnection`: one pool connection held open, for code that talks to its driver directly
(the single-statement SQLite reader, the group-commit writer), and driver errors as SQLAlchemy's."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class PinnedConnection:
    """A pool connection checked out once and kept, with its driver (e.g. aiosqlite) connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self.driver: Any = None  # None until `open`, and again after `close`
        #: SQLAlchemy's DB-API adapter around `driver` (it translates the driver's errors).
        self.adapted: Any = None
        #: The pool record's `info` of the held connection (what the engine's hooks noted about it).
        self.info: dict[Any, Any] = {}
        self._opening = asyncio.Lock()

    async def open(self) -> Any:
        """The driver connection, checking one out of the pool first if none is held."""
        async with self._opening:
            if self.driver is None:
                conn = await self._engine.connect()
                try:
                    raw = await conn.get_raw_connection()
                    self.driver, self.adapted = raw.driver_connection, raw.dbapi_connection
                    self.info = raw.info
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            return self.driver

    async def call(self, call: Callable[[], Awaitable[Any]], sql: str, params: tuple[Any, ...]) -> Any:
        """`call()`, a driver call running `sql` on the held connection; its errors as SQLAlchemy's.

        A closed connection (aiosqlite's `ValueError("Connection closed")` or "no active connection",
        raised before the call is queued; sqlite3's "Cannot operate on a closed database") is dropped
        and becomes a `DBAPIError` with `connection_invalidated` set, as SQLAlchemy's own aiosqlite
        adapter reports it: `Database` then re-runs the unit on a fresh connection (closing a SQLite
        connection rolls back its open transaction) or raises `DatabaseUnavailable`."""
        try:
            return await call()
        except ValueError as error:
            failure: sqlite3.Error = sqlite3.OperationalError(str(error))  # as SQLAlchemy's adapter does
            if not self.is_closed(failure):
                raise
        except sqlite3.Error as error:
            if not self.is_closed(error):
                raise sqlite_error(sql, params, error) from error
            failure = error
        await self.close(invalidate=True)
        raise sqlite_error(sql, params, failure, connection_invalidated=True)

    def is_closed(self, error: sqlite3.Error) -> bool:
        """Whether `error` says the connection is closed, in SQLAlchemy's aiosqlite dialect's words."""
        return self._engine.dialect.is_disconnect(error, None, None)  # type: ignore[arg-type]

    async def close(self, *, invalidate: bool = False) -> None:
        """Give the connection back to the pool (dropping it from the pool if it broke)."""
        conn, driver, self._conn, self.driver, self.adapted = self._conn, self.driver, None, None, None
        if invalidate and getattr(driver, "_running", True) is False:
            # aiosqlite's worker thread was stopped (its sqlite3 connection closed with it): its
            # close() would queue work for that thread and wait forever, so it is told none is left.
            driver._connection = None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    await conn.invalidate()
                await conn.close()


def sqlite_error(
    sql: str, params: tuple[Any, ...], error: sqlite3.Error, *, connection_invalidated: bool = False
) -> DBAPIError:
    """A driver error as SQLAlchemy raises it (so retry, missing-parent and lost-connection checks
    read it alike); `connection_invalidated`: the connection was found closed and dropped."""
    wrapped = DBAPIError.instance(
        sql, params, error, sqlite3.Error, hide_parameters=True, connection_invalidated=connection_invalidated
    )
    assert isinstance(wrapped, DBAPIError)  # a driver error always becomes one
    return wrapped
