"""`GroupCommit`: concurrent small writes of one store, coalesced into one transaction.

While one batch commits, the next gathers; a call that finds nothing in flight starts its own
transaction at once (no timer). Each call still gets its own answer, fails on its own and returns only
once its transaction committed:

- the whole batch runs in one transaction (`Database.run`, or `Database.run_held` on a connection
  the writer holds), re-run whole on a serialisation failure, deadlock or busy database, and on a
  fresh connection when the held one was found closed (or lost) before COMMIT went out;
- if it fails otherwise, it runs once more with every call in a SAVEPOINT of its own, so that a bad
  call fails alone and its neighbours commit;
- a fenced call (lease token) runs only while the session row carries its token, else `LeaseLost`;
- on PostgreSQL two lanes (held connections) may each commit a batch at once, of calls that commute
  only (see `_take`); SQLite, one writer at a time, has one lane.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import String, bindparam, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tgpersist.database import Database
from tgpersist.errors import ConstraintViolation, DatabaseUnavailable, LeaseLost
from tgpersist.models import Models
from tgpersist.sql import engines, errors, pooler_settings, statements
from tgpersist.sql.held import ConnectionExecutor, Executor, HeldSqlite
from tgpersist.sql.held_postgres import HeldPostgres
from tgpersist.sql.reads import CompiledRead
from tgpersist.writes.kind import Account, Call, Kind

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


@dataclass
class Stats:
    """What the writer did: committed batches, the calls in them, the largest one, isolated re-runs."""

    batches: int = 0
    calls: int = 0
    largest: int = 0
    isolated: int = 0


class _Sessions:
    """The session-row statements every batch may need: create if missing, read the lease token."""

    def __init__(self, models: Models, db: Database) -> None:
        table = models.table(models.Session)
        sa_dialect = db.engine.dialect
        name = bindparam("name", type_=String)
        now = bindparam("now", type_=table.c.created_at.type)
        create = statements.insert_ignore(table, db.dialect, ["name"]).values(
            name=name, test_mode=False, created_at=now, updated_at=now
        )
        self.create = CompiledRead(create, sa_dialect)
        token = select(table.c.lease_token).where(table.c.name == name).with_for_update()
        self.token = CompiledRead(token, sa_dialect)


class GroupCommit:
    """The batch writer of one `Database` (one per `Store`); see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sessions = _Sessions(db.models, db)
        # Connections held for writes, transactions sent as raw driver calls (see `held_writers`):
        # one lane per connection, or one lane that checks a connection out per batch.
        self._lanes: list[HeldSqlite | HeldPostgres | None] = held_writers(db)
        #: Lanes committing a batch now: lane -> whether that batch commutes (see `_commutes`).
        self._busy: dict[int, bool] = {}
        self._flushers: dict[int, asyncio.Task[None]] = {}
        self._pending: list[Call[Any, Any]] = []
        self._leading = False  # a lone caller is committing its own call (on lane 0)
        self.stats = Stats()

    @property
    def _held(self) -> HeldSqlite | HeldPostgres | None:
        """The first lane's held connection (None: each batch checks one out)."""
        return self._lanes[0]

    @property
    def in_flight(self) -> bool:
        """Whether a batch is being committed (calls arriving now gather for the next one)."""
        return bool(self._flushers) or self._leading

    @property
    def gathering(self) -> int:
        """How many calls wait for the next batch."""
        return len(self._pending)

    async def submit(
        self,
        scope: Account,
        kind: Kind[A, R],
        args: A,
        *,
        fence: int | None = None,
        committed: Callable[[R], None] | None = None,
    ) -> R:
        """Run one call through the writer; its answer once its transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        call = Call(scope, kind, args, fence, future, committed)
        if self._db.in_unit_of_work():
            # Inside another unit of work, which holds the write turn the writer would wait for.
            await self._commit([call], alone=True)
        elif not self._flushers and not self._leading:
            # Nothing in flight: the caller commits its own call at once, in its own task (no
            # timer, no hand-off); calls that arrive meanwhile gather for a flusher started after.
            self._leading = True
            try:
                await self._commit([call])
            finally:
                self._leading = False
                self._start_flusher()
        else:
            self._pending.append(call)
            self._start_flusher()
        return await future

    def _start_flusher(self, lane: int = 0) -> None:
        if self._pending and lane not in self._flushers and not self._leading:
            # A fresh context: the flusher must not inherit the caller's turns (see Database.run).
            self._flushers[lane] = asyncio.get_running_loop().create_task(
                self._flush(lane), name=f"tgpersist group commit {lane}", context=contextvars.Context()
            )

    async def close(self) -> None:
        """Let the batches in flight finish, then give back the held connections."""
        while self._flushers or self._leading:
            if self._flushers:
                await asyncio.shield(next(iter(self._flushers.values())))
            else:
                await asyncio.sleep(0.001)
        for held in self._lanes:
            if held is not None:
                await held.close()

    async def _flush(self, lane: int) -> None:
        try:
            while True:
                if not self._pending:
                    # One turn of the loop (not a timer) for the callers just answered: their next
                    # calls join the next batch instead of each committing alone.
                    await asyncio.sleep(0)
                    if not self._pending:
                        return
                taken = self._take(lane)
                if taken is None:
                    return  # the lanes still busy take what is pending when they are done
                batch, commutes = taken
                if batch:
                    self._busy[lane] = commutes
                    try:
                        await self._commit(batch, lane=lane)
                    finally:
                        del self._busy[lane]
        finally:
            del self._flushers[lane]

    def _take(self, lane: int) -> tuple[list[Call[Any, Any]], bool] | None:
        """The next batch for `lane` and whether all its calls commute: every pending call, or half of
        them when another lane is free to commit the other half at the same time (calls that commute
        only); None when `lane` must wait.

        Speed trick (PostgreSQL, two lanes): while one batch executes on the server, the callers of
        the other are answered and gather for the next, so the client's and the server's work
        overlap instead of taking turns (measured: see `held_writers`). Batches in flight together
        hold only calls that commute (`_commutes`); any other call waits until every lane is idle.
        """
        pending = [call for call in self._pending if not call.future.done()]  # cancelled callers
        commutes = all(_commutes(call) for call in pending)
        if self._busy and not (commutes and all(self._busy.values())):
            self._pending = pending
            return None
        free = [other for other in range(len(self._lanes)) if other != lane and other not in self._flushers]
        if self._busy or not free or not commutes or len(pending) < 2:
            self._pending = []
            return pending, commutes
        half = (len(pending) + 1) // 2
        self._pending = pending[half:]
        self._start_flusher(free[0])
        return pending[:half], commutes

    async def _commit(self, batch: list[Call[Any, Any]], *, alone: bool = False, lane: int = 0) -> None:
        """Commit `batch` (on `lane`), then answer every call (or fail it with its own error)."""
        held = None if alone else self._lanes[lane]
        try:
            try:
                outcomes = await self._transaction(batch, held, isolate=False)
            except Exception as error:
                if len(batch) == 1 or not _isolatable(error):
                    raise
                self.stats.isolated += 1
                outcomes = await self._transaction(batch, held, isolate=True)
        except Exception as error:
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(error)
            return
        except BaseException:  # the writer itself is cancelled (loop shutting down)
            for call in batch:
                call.future.cancel()
            raise
        self.stats.batches += 1
        self.stats.calls += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        for call, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                if call.fence is None and call.kind.creates_rows:
                    call.scope.session_known = True
                if call.committed is not None:
                    try:
                        call.committed(outcome)
                    except Exception:  # bookkeeping only: the write itself is durable
                        log.exception("after-commit callback of a %s call failed", type(call.kind).__name__)
        for call, outcome in zip(batch, outcomes, strict=True):
            if call.future.done():
                continue
            if isinstance(outcome, BaseException):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)

    async def _transaction(
        self, batch: list[Call[Any, Any]], held: HeldSqlite | HeldPostgres | None, *, isolate: bool
    ) -> list[Any]:
        """Each call's answer or error, after one committed transaction (re-run once if the session
        row of an account went missing meanwhile, as `Scope.write` does)."""
        try:
            return await self._run(lambda ex: self._body(ex, batch, isolate), held, _statements(batch))
        except (IntegrityError, ConstraintViolation) as error:
            if not errors.is_missing_parent(error):
                raise
            for call in batch:
                call.scope.session_known = False
            return await self._run(lambda ex: self._body(ex, batch, isolate), held, 2)

    async def _run(
        self, body: Callable[[Executor], Any], held: HeldSqlite | HeldPostgres | None, statements: int
    ) -> list[Any]:
        if held is None:

            async def work(conn: AsyncConnection) -> list[Any]:
                return await body(ConnectionExecutor(conn))  # type: ignore[no-any-return]

            return await self._db.run(work, write=True)
        return await self._db.run_held(lambda attempt: held.transaction(body, attempt, statements=statements))

    async def _body(self, ex: Executor, batch: Sequence[Call[Any, Any]], isolate: bool) -> list[Any]:
        outcomes: list[Any] = [None] * len(batch)
        live = await self._check_fences(ex, batch, outcomes)
        await self._ensure_sessions(ex, [batch[i] for i in live])
        groups: dict[Hashable, list[int]] = {}
        for index in live:
            groups.setdefault(batch[index].kind.group, []).append(index)
        # Kinds in one fixed order (`Kind.order`): batches of concurrent processes that write to
        # several tables lock them in the same order.
        for indexes in sorted(groups.values(), key=lambda group: batch[group[0]].kind.order):
            calls = [batch[i] for i in indexes]
            kind = calls[0].kind
            if not isolate:
                for index, answer in zip(indexes, await kind.apply(ex, calls), strict=True):
                    outcomes[index] = answer
                continue
            for index, call in zip(indexes, calls, strict=True):
                try:
                    async with ex.savepoint():
                        outcomes[index] = (await kind.apply(ex, [call]))[0]
                except Exception as error:
                    if errors.is_retryable(error) or not _isolatable(error):
                        raise  # the whole batch is re-run (or fails) as one
                    # A refused row fails its own call, as a typed error naming no value.
                    outcomes[index] = errors.public_error(error) if isinstance(error, DBAPIError) else error
        return outcomes

    async def _check_fences(
        self, ex: Executor, batch: Sequence[Call[Any, Any]], outcomes: list[Any]
    ) -> list[int]:
        """Indexes of the calls that may run; a fenced call whose token the session row no longer
        carries gets `LeaseLost`. The row stays locked until commit (FOR UPDATE; SQLite's write lock)."""
        tokens: dict[tuple[str, int], bool] = {}
        live = []
        for index, call in enumerate(batch):
            if call.fence is not None:
                key = (call.scope.name, call.fence)
                if key not in tokens:
                    rows = await ex.rows(self._sessions.token, {"name": key[0]})
                    tokens[key] = bool(rows) and rows[0][0] == key[1]
                if not tokens[key]:
                    outcomes[index] = LeaseLost(*key)
                    continue
            live.append(index)
        return live

    async def _ensure_sessions(self, ex: Executor, calls: Sequence[Call[Any, Any]]) -> None:
        """Create the session rows that rows of unfenced inserting calls will reference."""
        names = {
            c.scope.name
            for c in calls
            if c.kind.creates_rows and c.fence is None and not c.scope.session_known
        }
        now = self._db.clock.now()
        for name in sorted(names):
            await ex.rows(self._sessions.create, {"name": name, "now": now})


def held_writers(db: Database) -> list[HeldSqlite | HeldPostgres | None]:
    """The writer's lanes: the connection each holds (None: none held, each batch checks one out).

    None for in-memory SQLite (one shared connection), with per-transaction settings (they travel in
    a transaction of the engine's), or when the pool has fewer than three connections (the writer and
    the SQLite reader hold one each; one stays free). SQLite has one writer at a time: one lane.
    PostgreSQL gets a second lane when the pool has four or more: 64 callers of `remember` measured
    about 35 µs per call with two lanes, 50 µs with one (2 cores, client and server on one machine).
    """
    engine = db.engine
    capacity = engines.pool_capacity(engine)
    if engines.single_connection(engine) or pooler_settings.settings_of(engine):
        return [None]
    if capacity is not None and capacity < 3:
        return [None]
    if db.dialect == "sqlite":
        return [HeldSqlite(engine)]
    lanes = 1 if capacity is not None and capacity < 4 else 2
    return [HeldPostgres(engine, db.connect_timeout) for _ in range(lanes)]


def _commutes(call: Call[Any, Any]) -> bool:
    """Whether `call` may commit in a batch that runs beside another of this writer's: a kind whose
    rows each batch locks in one key order (`Kind.commutes`), no lease token to check (its FOR UPDATE
    would make batches wait on the session row), nothing to do after the commit (hot state must see
    commits in their order)."""
    return call.kind.commutes and call.fence is None and call.committed is None


def _statements(batch: Sequence[Call[Any, Any]]) -> int:
    """1 if the batch runs one statement: calls of one kind that it writes in one statement, with no
    fence to check and no session row to create (see `HeldSqlite.transaction`); else 2 ("more")."""
    kind = batch[0].kind
    for call in batch:
        if call.kind.group != kind.group or call.fence is not None:
            return 2
        if call.kind.creates_rows and not call.scope.session_known:
            return 2
    return 1 if kind.one_statement(batch) else 2


def _isolatable(error: BaseException) -> bool:
    """Whether re-running the batch call by call can tell the bad call from the good ones (not when
    the database is gone, or the outcome of a COMMIT is unknown)."""
    if isinstance(error, DatabaseUnavailable):
        return False
    return not (isinstance(error, DBAPIError) and error.connection_invalidated)
