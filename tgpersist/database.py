"""Transactions for the repositories: on tgpersist's own engine, or inside a host's `AsyncSession`.

Each repository call is one unit of work, a coroutine function of a connection. `Database.run` gives it
one transaction and re-runs it whole on a serialisation failure, deadlock or busy SQLite database.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from tgpersist import dialect
from tgpersist.models import Models

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

log = logging.getLogger(__name__)


class Database:
    """Runs units of work in their own transactions on an engine, retrying transient conflicts."""

    def __init__(self, engine: AsyncEngine, models: Models, *, retries: int = 8) -> None:
        self.engine = engine
        self.models = models
        self.dialect = dialect.name_of(engine)
        self.retries = retries
        self._writer = engine.execution_options(**{dialect.WRITE: True})
        # One shared connection (in-memory SQLite): transactions must take turns on it.
        self._turns = asyncio.Lock() if dialect.single_connection(engine) else None

    async def run(self, work: Work[T], *, write: bool) -> T:
        engine = self._writer if write else self.engine
        attempt = 0
        while True:
            try:
                if self._turns is None:
                    async with engine.begin() as conn:
                        return await work(conn)
                async with self._turns, engine.begin() as conn:
                    return await work(conn)
            except DBAPIError as error:
                if attempt >= self.retries or not dialect.is_retryable(error):
                    raise
                attempt += 1
                delay = min(0.5, 0.005 * 2**attempt) * (0.5 + random.random())
                log.debug("retrying transaction after %s (attempt %d)", type(error.orig).__name__, attempt)
                await asyncio.sleep(delay)


class JoinedDatabase(Database):
    """Runs units of work inside a host's session and transaction, which the host commits or rolls back.

    Writes run in a SAVEPOINT so that a failed one leaves the host's transaction usable and unchanged.
    """

    def __init__(self, session: AsyncSession, base: Database) -> None:
        super().__init__(base.engine, base.models, retries=0)
        self.session = session

    async def run(self, work: Work[T], *, write: bool) -> T:
        conn = await self.session.connection()
        if not write:
            return await work(conn)
        async with conn.begin_nested():
            return await work(conn)
