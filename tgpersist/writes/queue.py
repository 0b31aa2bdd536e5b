"""Durable-queue writes for the group-commit writer: `enqueue` and `ack` set-based, `fail` and
`extend_lease` one statement pair (or one statement) per call inside the shared transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, String, bindparam, delete, literal, select, update

from tgpersist.domain import UpdateStatus
from tgpersist.sql import statements
from tgpersist.sql.held import Executor
from tgpersist.writes.kind import Call, Kind, chunks

#: The columns an enqueued row is inserted with.
ENQUEUED = ("session_name", "id", "payload", "status", "attempts", "created_at", "updated_at", "available_at")

#: One row per update, its values in the order of ENQUEUED.
EnqueueCall = Call[list[tuple[Any, ...]], int]
AckCall = Call[list[str], list[str]]
#: update id, owner (None: anyone's), error message, explicit retry delay, backoff(attempts) -> delay
R = TypeVar("R")

FailArgs = tuple[str, str | None, str, timedelta | None, Callable[[int], timedelta], int]
#: update id, owner, lease length
ExtendArgs = tuple[str, str, timedelta]


class Enqueue(Kind[list[tuple[Any, ...]], int]):
    """All pending updates in one `INSERT ... ON CONFLICT DO NOTHING RETURNING`; an id already queued
    (or enqueued by an earlier call of the batch) is not new."""

    creates_rows = True
    row_columns = ENQUEUED

    def rows_statement(self, rows: int) -> Any:
        t = self.table
        values = [{c: bindparam(f"{c}{i}", type_=t.c[c].type) for c in ENQUEUED} for i in range(rows)]
        stmt = statements.insert_ignore(t, self.sa_dialect.name, ["session_name", "id"])
        return stmt.values(values).returning(t.c.session_name, t.c.id)

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return sum(len(c.args) for c in calls) <= self.chunk_rows(len(ENQUEUED))

    async def apply(self, ex: Executor, calls: Sequence[EnqueueCall]) -> list[int]:
        owner: dict[tuple[str, str], int] = {}
        rows = []
        for index, call in enumerate(calls):
            for row in call.args:
                key = (row[0], row[1])
                if key not in owner:
                    owner[key] = index
                    rows.append(row)
        new: set[Any] = set()
        # Not sorted by key, unlike the other kinds: rows keep the callers' order, which is the
        # queue's order (`seq`). Two processes enqueueing the same ids in opposite orders at once may
        # deadlock on PostgreSQL; that is re-run as a whole, like any deadlock.
        for part in chunks(rows, self.chunk_rows(len(ENQUEUED))):
            new.update(await self.for_rows(len(part)).run(ex, part))
        counts = [0] * len(calls)
        for key in new:
            counts[owner[key]] += 1
        return counts


class Ack(Kind[list[str], list[str]]):
    """All pending acks of an account in one `DELETE ... WHERE id IN (...) RETURNING id`; an id goes
    to the first call of the batch that acked it."""

    commutes = True
    row_columns = ("i",)

    def rows_statement(self, rows: int) -> Any:
        t = self.table
        ids = [bindparam(f"i{i}", type_=String) for i in range(rows)]
        session = bindparam("s", type_=String)
        return delete(t).where(t.c.session_name == session, t.c.id.in_(ids)).returning(t.c.id)

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return len({c.scope.name for c in calls}) == 1 and sum(len(c.args) for c in calls) <= self.chunk_rows(
            1
        )

    async def apply(self, ex: Executor, calls: Sequence[AckCall]) -> list[list[str]]:
        owner: dict[tuple[str, str], int] = {}
        by_account: dict[str, list[str]] = {}
        for index, call in enumerate(calls):
            for update_id in call.args:
                if (call.scope.name, update_id) not in owner:
                    owner[call.scope.name, update_id] = index
                    by_account.setdefault(call.scope.name, []).append(update_id)
        answers: list[list[str]] = [[] for _ in calls]
        for session, ids in sorted(by_account.items()):
            for part in chunks(sorted(ids), self.chunk_rows(1)):
                statement = self.for_rows(len(part))
                for (update_id,) in await statement.run(ex, [(v,) for v in part], {"s": session}):
                    answers[owner[session, update_id]].append(update_id)
        return [sorted(ids) for ids in answers]


class _Leased(Kind[Any, R]):
    """Shared conditions of the per-update statements: the row's key, and that `owner` holds it."""

    def key(self) -> tuple[ColumnElement[bool], ...]:
        t = self.table
        return (t.c.session_name == bindparam("s", type_=String), t.c.id == bindparam("i", type_=String))

    def held(self) -> tuple[ColumnElement[bool], ...]:
        t = self.table
        return (
            t.c.status == UpdateStatus.PENDING.value,
            t.c.lease_owner == bindparam("o", type_=String),
            t.c.lease_expires_at > bindparam("now", type_=t.c.lease_expires_at.type),
        )


class Fail(_Leased[tuple[bool, int | None]]):
    """`fail`: read the attempts (locking the row on PostgreSQL), then keep the error and either
    schedule a retry after the backoff or dead-letter the update. Answers (failed, the attempts of an
    update that became a dead letter, else None)."""

    def _read(self, owned: bool) -> Any:
        stmt = select(self.table.c.attempts).where(*self.key(), *(self.held() if owned else ()))
        return stmt.with_for_update() if statements.claim_locks_rows(self.sa_dialect.name) else stmt

    def _write(self) -> Any:
        t = self.table
        values = {
            c: bindparam(c, type_=t.c[c].type) for c in ("last_error", "updated_at", "available_at", "status")
        }
        return (
            update(t)
            .where(*self.key())
            .values(lease_owner=None, lease_expires_at=None, **values)
            .returning(literal(1, Integer))
        )

    async def apply(
        self, ex: Executor, calls: Sequence[Call[FailArgs, tuple[bool, int | None]]]
    ) -> list[tuple[bool, int | None]]:
        answers: list[tuple[bool, int | None]] = []
        for call in calls:
            update_id, owner, message, explicit, backoff, max_attempts = call.args
            now = call.scope.now()
            values: dict[str, Any] = {"s": call.scope.name, "i": update_id, "o": owner, "now": now}
            owned = owner is not None
            read = self.compiled(("read", owned), functools.partial(self._read, owned))
            rows = await ex.rows(read, values)
            if not rows:
                answers.append((False, None))
                continue
            attempts = rows[0][0]
            dead = attempts >= max_attempts
            values.update(
                last_error=message,
                updated_at=now,
                available_at=now + (explicit if explicit is not None else backoff(attempts)),
                status=(UpdateStatus.DEAD if dead else UpdateStatus.PENDING).value,
            )
            written = bool(await ex.rows(self.compiled("write", self._write), values))
            answers.append((written, attempts if written and dead else None))
        return answers


class ExtendLease(_Leased[bool]):
    """`extend_lease`: one conditional UPDATE per call (the owner must still hold the update)."""

    def _statement(self) -> Any:
        t = self.table
        until = bindparam("until", type_=t.c.lease_expires_at.type)
        return (
            update(t)
            .where(*self.key(), *self.held())
            .values(
                lease_expires_at=until,
                available_at=until,
                updated_at=bindparam("at", type_=t.c.updated_at.type),
            )
            .returning(literal(1, Integer))
        )

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return len(calls) == 1

    async def apply(self, ex: Executor, calls: Sequence[Call[ExtendArgs, bool]]) -> list[bool]:
        statement = self.compiled("extend", self._statement)
        answers = []
        for call in calls:
            update_id, owner, length = call.args
            now = call.scope.now()
            values = {"s": call.scope.name, "i": update_id, "o": owner, "now": now, "at": now}
            values["until"] = now + length
            answers.append(bool(await ex.rows(statement, values)))
        return answers
