"""Transactions for the repositories: on tgpersist's own engine, or inside a host's `AsyncSession`.

Each repository call is one unit of work, a coroutine function of a connection. `Database.run` gives it
one transaction and re-runs it whole on a serialisation failure, deadlock or busy SQLite database.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from tgpersist.models import Models
from tgpersist.peer_cache import PeerCaches
from tgpersist.sql import engines, errors, notify, reads

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

log = logging.getLogger(__name__)

#: The databases whose turn (see `Database.run`) the running unit of work holds.
_taking_turns: ContextVar[frozenset[Database]] = ContextVar("tgpersist_taking_turns", default=frozenset())


class Database:
    """Runs units of work in their own transactions on an engine, retrying transient conflicts."""

    def __init__(self, engine: AsyncEngine, models: Models, *, retries: int = 8) -> None:
        self.engine = engine
        self.models = models
        self.dialect = engines.name_of(engine)
        self.retries = retries
        self._writer = engine.execution_options(**{engines.WRITE: True})
        # One shared connection (in-memory SQLite): transactions must take turns on it.
        self._turns = asyncio.Lock() if engines.single_connection(engine) else None
        # SQLite file: write transactions of this process queue here, first come first served. SQLite's
        # own lock is taken by polling (busy timeout), which lets a steady stream of writers starve one
        # (a lease renewal, say) for seconds; between processes that polling remains.
        self._write_turns = asyncio.Lock() if self._turns is None and self.dialect == "sqlite" else None
        #: Single-statement reads without a transaction (None: they go through `run`).
        self._reader = reads.reader_for(engine)
        #: The peer cache of every account on this database (replaced by `Store` with its settings).
        self.peer_caches = PeerCaches()
        #: The host's session whose transaction every unit joins (`JoinedDatabase`); None: our own.
        self.host_session: AsyncSession | None = None
        #: What wakes this database's queue waiters (`claim(..., wait=)`): enqueues, NOTIFY.
        self.wakeups = notify.Wakeups(engine, models.table(models.DurableUpdate).name)

    async def run(self, work: Work[T], *, write: bool) -> T:
        """`work` in one transaction (`BEGIN IMMEDIATE` on SQLite when `write`), re-run whole if retryable."""
        engine = self._writer if write else self.engine

        turns = self._turns or (self._write_turns if write else None)
        if turns is not None and self in _taking_turns.get():
            turns = None  # nested in a unit of work that already has its turn (it would wait for itself)

        async def once() -> T:
            if turns is None:
                async with engine.begin() as conn:
                    return await work(conn)
            async with turns:
                entered = _taking_turns.set(_taking_turns.get() | {self})
                try:
                    async with engine.begin() as conn:
                        return await work(conn)
                finally:
                    _taking_turns.reset(entered)

        return await self._retrying(once)

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """Call `attempt_once` until it succeeds, at most `retries` more times after a retryable error,
        sleeping a jittered, exponentially growing delay (5 ms doubling, capped at 0.5 s) in between."""
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except DBAPIError as error:
                if attempt >= self.retries or not errors.is_retryable(error):
                    raise
                attempt += 1
                delay = min(0.5, 0.005 * 2**attempt) * (0.5 + random.random())
                cause = errors.count_retry(error)
                log.debug(
                    "retrying transaction after %s (%s, attempt %d)",
                    type(error.orig).__name__,
                    cause,
                    attempt,
                )
                await asyncio.sleep(delay)

    async def fetch(self, query: reads.CompiledRead, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of one SELECT, read outside a transaction where the dialect allows (a lone
        statement is atomic): on SQLite one thread hop instead of BEGIN, SELECT, fetch and COMMIT."""
        params = query.params(values)
        if self._reader is None:

            async def work(conn: AsyncConnection) -> list[Any]:
                return list(await conn.exec_driver_sql(query.sql, params))

            return query.rows(await self.run(work, write=False))
        reader = self._reader
        return query.rows(await self._retrying(lambda: reader.fetch(query.sql, params)))

    async def close(self) -> None:
        """Give back the connections held for single-statement reads and for LISTEN (the engine
        itself stays open)."""
        try:
            await self.wakeups.close()
        finally:
            if self._reader is not None:
                await self._reader.close()


class JoinedDatabase(Database):
    """Runs units of work inside a host's session and transaction, which the host commits or rolls back.

    Writes run in a SAVEPOINT (`AsyncSession.begin_nested`, which first flushes the host's pending ORM
    changes, keeping program order), so a failed one leaves the host's transaction usable and unchanged.
    Nothing is retried here: only the host can re-run its whole transaction.
    """

    def __init__(self, session: AsyncSession, base: Database) -> None:
        super().__init__(base.engine, base.models, retries=0)
        self.session = self.host_session = session
        self._reader = None  # reads must see the host's transaction
        self.peer_caches = base.peer_caches
        self.wakeups = base.wakeups

    async def run(self, work: Work[T], *, write: bool) -> T:
        if not write:
            return await work(await self.session.connection())
        async with self.session.begin_nested():
            return await work(await self.session.connection())
