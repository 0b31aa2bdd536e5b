"""`HeldPostgres`: the group-commit writer's PostgreSQL connection, held open, its transactions sent as
raw asyncpg calls (`BEGIN`, each statement as one `fetch`, `COMMIT`; a lone statement on its own).

Speed trick: a batch skips the pool checkout and return, SQLAlchemy's cursor and result objects and
its statement cache; asyncpg's own statement cache prepares each batch statement once per connection.
Measured here with 64 callers of `remember`: about 50 instead of 60-70 µs per call (2 cores; noisy).
Driver errors leave as SQLAlchemy raises them (`DBAPIError` around its asyncpg adapter's error), so
retries, lost connections and refused rows are told apart as on any other connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tgpersist.sql.held import Executor, LoneStatement, RawTransaction
from tgpersist.sql.pinned import PinnedConnection
from tgpersist.sql.watchdog import Attempt

T = TypeVar("T")


class HeldPostgres(RawTransaction):
    """One pool connection of a PostgreSQL engine, held for the writer's transactions (READ COMMITTED,
    the server's default, unless the engine was created with another `isolation_level`)."""

    def __init__(self, engine: AsyncEngine, connect_timeout: float | None = None) -> None:
        self._pinned = PinnedConnection(engine)
        #: Bounds taking a connection (a full pool's wait included), as for every checkout of ours.
        self._connect_timeout = connect_timeout
        sync = engine.sync_engine
        self._error_base: type[Exception] = sync.dialect.loaded_dbapi.Error
        self._hide_parameters = sync.hide_parameters
        level = getattr(sync.dialect, "isolation_level", None)
        self._adapted: Any = None
        self._begin = f"BEGIN ISOLATION LEVEL {level}" if level and level != "AUTOCOMMIT" else "BEGIN"

    async def transaction(
        self, body: Callable[[Executor], Awaitable[T]], attempt: Attempt, *, statements: int = 2
    ) -> T:
        """`body(self)` between BEGIN and COMMIT, rolled back if anything fails (a body of one
        statement, `statements=1`, runs as that statement's own transaction: one round trip).
        `attempt.committing` is set once the COMMIT (or the lone statement) may have reached the server."""
        driver = self._pinned.driver
        if driver is not None and (driver.is_closed() or driver.is_in_transaction()):
            await self._drop()  # closed while idle, or left inside a transaction by a cancelled batch
        if self._pinned.driver is None:
            async with asyncio.timeout(attempt.connect_limit(self._connect_timeout)):
                await self._pinned.open()
            self._adapted = self._pinned.adapted  # kept after a drop: it translates the last errors
        if statements == 1:
            return await body(LoneStatement(lambda sql, params: self._lone(sql, params, attempt)))
        await self.control(self._begin)
        try:
            result = await body(self)
            await self.final(lambda d: d.execute("COMMIT"), "COMMIT", (), attempt)
        except Exception:
            await self._roll_back()
            raise
        except BaseException:  # cancelled mid-transaction: nothing may be awaited on the socket now
            await self._drop()
            raise
        return result

    async def raw(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        return await self._call(lambda d: d.fetch(sql, *params), sql, params)  # type: ignore[no-any-return]

    async def control(self, sql: str) -> None:
        await self._call(lambda d: d.execute(sql), sql, ())  # the simple protocol: no prepare

    async def final(
        self, call: Callable[[Any], Awaitable[Any]], sql: str, params: tuple[Any, ...], attempt: Attempt
    ) -> Any:
        """The call that ends the transaction: from here on a lost connection leaves its outcome
        unknown, unless asyncpg found the connection closed before it sent anything."""
        if self._pinned.driver is not None and not self._pinned.driver.is_closed():
            attempt.committing = True
        return await self._call(call, sql, params)

    async def _lone(self, sql: str, params: tuple[Any, ...], attempt: Attempt) -> Sequence[Sequence[Any]]:
        return await self.final(lambda d: d.fetch(sql, *params), sql, params, attempt)  # type: ignore[no-any-return]

    async def _call(self, call: Callable[[Any], Awaitable[Any]], sql: str, params: tuple[Any, ...]) -> Any:
        """`call(driver)`; a driver error as the `DBAPIError` SQLAlchemy would raise, the connection
        dropped (and the error marked `connection_invalidated`) when it is closed."""
        driver = self._pinned.driver
        if driver is None or driver.is_closed():
            await self._drop()
            closed = asyncpg.ConnectionDoesNotExistError("connection is closed")
            raise self._wrapped(closed, sql, params, True)
        try:
            return await call(driver)
        except Exception as error:
            closed = driver.is_closed()
            if closed:
                await self._drop()
            elif not isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise  # not the driver's (a bug of ours, say): as it is
            raise self._wrapped(error, sql, params, closed) from error

    def _wrapped(self, error: Exception, sql: str, params: tuple[Any, ...], closed: bool) -> DBAPIError:
        """`error` as translated by SQLAlchemy's asyncpg adapter (its SQLSTATE kept), in a `DBAPIError`."""
        if not isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
            # A socket error asyncpg let through on a connection now closed: reported as a lost one.
            error = asyncpg.ConnectionDoesNotExistError(f"connection was closed ({type(error).__name__})")
        translated: Exception = error
        try:
            self._adapted._handle_exception(error)  # raises the translated error
        except Exception as raised:
            translated = raised
        wrapped = DBAPIError.instance(
            sql,
            params,
            translated,
            self._error_base,
            hide_parameters=self._hide_parameters,
            connection_invalidated=closed,
        )
        assert isinstance(wrapped, DBAPIError)  # a DB-API error always becomes one
        return wrapped

    async def _roll_back(self) -> None:
        """End a failed transaction: ROLLBACK, or drop the connection if even that fails."""
        driver = self._pinned.driver
        if driver is None:
            return
        try:
            await driver.execute("ROLLBACK")
        except Exception:
            await self._drop()

    async def _drop(self) -> None:
        """Close the held connection at once (no goodbye on a socket that may hang) and forget it."""
        driver = self._pinned.driver
        if driver is not None and not driver.is_closed():
            driver.terminate()
        await self._pinned.close(invalidate=True)

    @property
    def driver(self) -> Any:
        """The held asyncpg connection; None until the next transaction opens one."""
        return self._pinned.driver

    async def close(self) -> None:
        """Give the held connection back to the pool."""
        await self._pinned.close()
