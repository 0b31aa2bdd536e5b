"""`GroupCommit`: concurrent small writes of one store, coalesced into one transaction.

While one batch commits, the next gathers; a call that finds nothing in flight starts its own
transaction at once (no timer). Each call still gets its own answer, fails on its own and returns only
once its transaction committed:

- the whole batch runs in one transaction (`Database.run`, or `Database.run_held` on the SQLite
  connection the writer holds), re-run whole on a serialisation failure, deadlock or busy database,
  and on a fresh connection when the held one was found closed (or lost) before COMMIT went out;
- if it fails otherwise, it runs once more with every call in a SAVEPOINT of its own, so that a bad
  call fails alone and its neighbours commit;
- a fenced call (lease token) runs only while the session row carries its token, else `LeaseLost`.
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

from tgpersist.clock import utcnow
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
        # One connection held for writes, transactions sent as raw driver calls (see `held_writer`).
        self._held = held_writer(db)
        self._pending: list[Call[Any, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._leading = False  # a lone caller is committing its own call
        self.stats = Stats()

    @property
    def in_flight(self) -> bool:
        """Whether a batch is being committed (calls arriving now gather for the next one)."""
        return self._flusher is not None or self._leading

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
        elif self._flusher is None and not self._leading:
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

    def _start_flusher(self) -> None:
        if self._pending and self._flusher is None and not self._leading:
            # A fresh context: the flusher must not inherit the caller's turns (see Database.run).
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="tgpersist group commit", context=contextvars.Context()
            )

    async def close(self) -> None:
        """Let the batches in flight finish, then give back the held connection."""
        while self._flusher is not None or self._leading:
            if self._flusher is not None:
                await asyncio.shield(self._flusher)
            else:
                await asyncio.sleep(0.001)
        if self._held is not None:
            await self._held.close()

    async def _flush(self) -> None:
        try:
            while True:
                if not self._pending:
                    # One turn of the loop (not a timer) for the callers just answered: their next
                    # calls join the next batch instead of each committing alone.
                    await asyncio.sleep(0)
                    if not self._pending:
                        return
                batch = [call for call in self._pending if not call.future.done()]  # cancelled callers
                self._pending = []
                if batch:
                    await self._commit(batch)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[Call[Any, Any]], *, alone: bool = False) -> None:
        """Commit `batch`, then answer every call (or fail it with its own error)."""
        try:
            try:
                outcomes = await self._transaction(batch, isolate=False, alone=alone)
            except Exception as error:
                if len(batch) == 1 or not _isolatable(error):
                    raise
                self.stats.isolated += 1
                outcomes = await self._transaction(batch, isolate=True, alone=alone)
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

    async def _transaction(self, batch: list[Call[Any, Any]], *, isolate: bool, alone: bool) -> list[Any]:
        """Each call's answer or error, after one committed transaction (re-run once if the session
        row of an account went missing meanwhile, as `Scope.write` does)."""
        try:
            return await self._run(lambda ex: self._body(ex, batch, isolate), alone, _statements(batch))
        except (IntegrityError, ConstraintViolation) as error:
            if not errors.is_missing_parent(error):
                raise
            for call in batch:
                call.scope.session_known = False
            return await self._run(lambda ex: self._body(ex, batch, isolate), alone, 2)

    async def _run(self, body: Callable[[Executor], Any], alone: bool, statements: int) -> list[Any]:
        held = self._held
        if held is None or alone:

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
        now = utcnow()
        for name in sorted(names):
            await ex.rows(self._sessions.create, {"name": name, "now": now})


def held_writer(db: Database) -> HeldSqlite | HeldPostgres | None:
    """The connection the writer holds: none for in-memory SQLite (one shared connection), with
    per-transaction settings (they travel in a transaction of the engine's), or when the pool has
    fewer than three connections (the writer and the SQLite reader hold one each; one stays free)."""
    engine = db.engine
    if engines.single_connection(engine) or pooler_settings.settings_of(engine):
        return None
    capacity = engines.pool_capacity(engine)
    if capacity is not None and capacity < 3:
        return None
    return HeldSqlite(engine) if db.dialect == "sqlite" else HeldPostgres(engine)


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
