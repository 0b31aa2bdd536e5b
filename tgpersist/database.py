"""Transactions for the repositories: on tgpersist's own engine, or inside a host's `AsyncSession`.

Each repository call is one unit of work, a coroutine function of a connection. `Database.run` gives it
one transaction and re-runs it whole on a serialisation failure, deadlock or busy SQLite database, and
on a connection that died before COMMIT was sent. A connection that died after COMMIT was sent, a
database that cannot be reached within the connect timeout, and a unit that overran its own `timeout`
raise `DatabaseUnavailable` (never the driver's exception, which may carry connection details).
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

from tgpersist import metrics
from tgpersist.errors import DatabaseUnavailable
from tgpersist.models import Models
from tgpersist.peer_cache import PeerCaches
from tgpersist.sql import engines, errors, notify, reads
from tgpersist.sql.server_clock import ServerClock
from tgpersist.sql.watchdog import Attempt, Watchdog

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

log = logging.getLogger(__name__)

#: How many times a unit whose connection died before COMMIT is re-run on a new connection.
RECONNECTS = 2
#: Seconds a background sample of the database clock may take in all.
CLOCK_SAMPLE_TIMEOUT = 10.0

#: The databases whose turn (see `Database.run`) the running unit of work holds.
_taking_turns: ContextVar[frozenset[Database]] = ContextVar("tgpersist_taking_turns", default=frozenset())


class Database:
    """Runs units of work in their own transactions on an engine, retrying transient conflicts."""

    def __init__(
        self,
        engine: AsyncEngine,
        models: Models,
        *,
        retries: int = 8,
        connect_timeout: float | None = engines.DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.models = models
        self.dialect = engines.name_of(engine)
        self.retries = retries
        #: Seconds a connection checkout (pool wait, ping, connect) may take; None: unbounded.
        self.connect_timeout = connect_timeout
        self.host, self.port = engines.address_of(engine)
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
        #: "Now" for what rows mean (availability, leases, expiry): the server's clock on PostgreSQL.
        self.clock = ServerClock(self._sample_clock if self.dialect == "postgresql" else None)

    async def _sample_clock(self, sample: Work[None]) -> None:
        await self.run(sample, write=False, timeout=CLOCK_SAMPLE_TIMEOUT)

    async def run(self, work: Work[T], *, write: bool, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """`work` in one transaction (`BEGIN IMMEDIATE` on SQLite when `write`), re-run whole if retryable.

        `timeout` bounds the whole call (waiting for a connection and every retry included): when it
        passes, the connection is cut and `DatabaseUnavailable` raised (`outcome_unknown` once COMMIT
        was sent), so a hung server or a frozen route never holds the caller longer.
        """
        engine = self._writer if write else self.engine

        turns = self._turns or (self._write_turns if write else None)
        if turns is not None and self in _taking_turns.get():
            turns = None  # nested in a unit of work that already has its turn (it would wait for itself)

        async def once(attempt: Attempt) -> T:
            if turns is None:
                return await self._transaction(engine, work, attempt)
            async with turns:
                entered = _taking_turns.set(_taking_turns.get() | {self})
                try:
                    return await self._transaction(engine, work, attempt)
                finally:
                    _taking_turns.reset(entered)

        return await self._retrying(once, timeout)

    async def run_held(self, transaction: Callable[[Attempt], Awaitable[T]]) -> T:
        """A write transaction that the caller runs itself (the group-commit writer: its own BEGIN and
        COMMIT on a SQLite connection it holds, or one statement in autocommit mode): in this
        process's write turn, and re-run whole if retryable, as `run` does. The caller sets
        `attempt.committing` once its COMMIT (or lone statement) may have gone out: a connection lost
        before that is re-run on a new one, after it is `DatabaseUnavailable(outcome_unknown=True)`."""
        turns = self._turns or self._write_turns

        async def once(attempt: Attempt) -> T:
            if turns is None:
                return await transaction(attempt)
            async with turns:
                return await transaction(attempt)

        return await self._retrying(once, None)

    def in_unit_of_work(self) -> bool:
        """Whether the running code is inside one of this database's units of work (holding its turn)."""
        return self in _taking_turns.get()

    async def _transaction(self, engine: AsyncEngine, work: Work[T], attempt: Attempt) -> T:
        """One try of `work`: a bounded checkout, then BEGIN, the work and COMMIT under the watchdog."""
        # A SQLite checkout opens a local file at most: only a deadline of the unit's own bounds it.
        connect_timeout = self.connect_timeout if self.dialect != "sqlite" else None
        async with asyncio.timeout(attempt.connect_limit(connect_timeout)):
            conn = await engine.connect().start()
        left = attempt.left()
        if left is not None and self.dialect == "sqlite":  # wait for other writers no longer than that
            await conn.execution_options(**{engines.BUSY_TIMEOUT: left})
        try:
            async with Watchdog(conn, attempt), conn.begin():
                if not self.clock.sampled:  # a store's first unit of work samples the clock
                    await self.clock.sample(conn)
                result = await work(conn)
                attempt.committing = True
            return result
        finally:
            await conn.close()

    async def _retrying(self, attempt_once: Callable[[Attempt], Awaitable[T]], budget: float | None) -> T:
        """Call `attempt_once` until it succeeds, at most `retries` more times after a retryable error,
        sleeping a jittered, exponentially growing delay (5 ms doubling, capped at 0.5 s) in between.

        A connection lost before COMMIT is re-run on a new one (`RECONNECTS` times); everything that
        means the database is out of reach becomes `DatabaseUnavailable`, raised outside the `except`
        so that no driver exception rides along in `__context__`.
        """
        retried = reconnected = 0
        attempt = Attempt(budget)
        while True:
            failure: BaseException | None = None
            try:
                if attempt.deadline is None:  # the common case: skip the timer
                    return await attempt_once(attempt)
                async with asyncio.timeout_at(attempt.deadline):
                    return await attempt_once(attempt)
            except DBAPIError as error:
                if errors.is_retryable(error) and retried < self.retries and not attempt.expired:
                    retried += 1
                    delay = min(0.5, 0.005 * 2**retried) * (0.5 + random.random())
                    errors.count_retry(error)
                    cause = errors.retry_cause(error)
                    log.debug(
                        "retrying transaction after %s (attempt %d)",
                        cause,
                        retried,
                        extra={"cause": cause, "attempt": retried},
                    )
                    metrics.add("tgpersist.transaction.retries", cause=cause)
                    await asyncio.sleep(delay)
                    attempt = attempt.again()
                    continue
                if not self._lost_connection(error, attempt):
                    failure = errors.public_error(error)
                    if failure is error:
                        raise
                    # A refused row: raised below, outside this handler, so the driver error (whose
                    # text may hold row values) is not its context.
                elif attempt.expired or attempt.committing or reconnected >= RECONNECTS:
                    failure = self._unavailable(error, attempt)
                else:
                    reconnected += 1
                    await asyncio.sleep(0.05 * reconnected)
                    log.info("connection to %s lost before COMMIT; running the transaction again", self.where)
                    attempt = attempt.again()
                    continue
            except (OSError, TimeoutError) as error:
                if not (errors.is_unreachable(error) or errors.is_disconnect(error)):
                    raise
                failure = self._unavailable(error, attempt)
            except DatabaseUnavailable as error:  # from a connect or checkout hook: re-raised clean
                failure = DatabaseUnavailable(
                    error.host, error.port, error.problem, outcome_unknown=error.outcome_unknown
                )
            raise failure from None

    def _lost_connection(self, error: DBAPIError, attempt: Attempt) -> bool:
        return (
            attempt.expired
            or errors.is_disconnect(error)
            or errors.is_unreachable(error)
            or errors.is_sqlite_file_gone(error)
        )

    @property
    def where(self) -> str:
        """host:port (or the SQLite file) for messages; never credentials."""
        return f"{self.host}:{self.port}" if self.port is not None else str(self.host)

    def _unavailable(self, error: BaseException, attempt: Attempt) -> DatabaseUnavailable:
        if attempt.expired:
            problem = f"no answer within {attempt.timeout or 0:.1f}s"
        elif isinstance(error, TimeoutError):
            problem = f"no connection within {self.connect_timeout:g}s"
        elif errors.is_sqlite_file_gone(error):
            problem = (
                "the SQLite file was deleted, moved or made read-only (" + errors.problem_of(error) + ")"
            )
        else:
            problem = errors.problem_of(error)
        if attempt.committing:
            problem += "; COMMIT was sent, so the outcome is unknown"
        log.warning("database at %s is unavailable: %s", self.where, problem)
        return DatabaseUnavailable(self.host, self.port, problem, outcome_unknown=attempt.committing)

    async def fetch(self, query: reads.CompiledRead, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of one SELECT, read outside a transaction where the dialect allows (a lone
        statement is atomic): on SQLite one thread hop instead of BEGIN, SELECT, fetch and COMMIT."""
        params = query.params(values)
        if self._reader is None:

            async def work(conn: AsyncConnection) -> list[Any]:
                return list(await conn.exec_driver_sql(query.sql, params))

            return query.rows(await self.run(work, write=False))
        reader = self._reader
        return query.rows(await self._retrying(lambda _: reader.fetch(query.sql, params), None))

    async def close(self) -> None:
        """Give back the connections held for single-statement reads and for LISTEN (the engine
        itself stays open)."""
        try:
            await self.clock.close()
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
        super().__init__(base.engine, base.models, retries=0, connect_timeout=base.connect_timeout)
        self.session = self.host_session = session
        self._reader = None  # reads must see the host's transaction
        self.peer_caches = base.peer_caches
        self.wakeups = base.wakeups
        self.clock = base.clock

    async def run(self, work: Work[T], *, write: bool, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """`work` in the host's transaction (`timeout` is the host's business: its session, its limits).
        A refused row leaves as the same typed error as on our own engine."""
        try:
            if not write:
                return await work(await self.session.connection())
            async with self.session.begin_nested():
                return await work(await self.session.connection())
        except DBAPIError as error:
            public = errors.public_error(error)
            if public is error:
                raise
        raise public from None
