"""Dedup-key writes for the group-commit writer: `remember` and `forget`, each set-based."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import String, bindparam, delete
from sqlalchemy.sql.dml import UpdateBase

from tgpersist.sql import statements
from tgpersist.sql.held import Executor
from tgpersist.writes.kind import Call, Kind, chunks, first_per_key

RememberCall = Call[tuple[str, timedelta], bool]
ForgetCall = Call[str, bool]


def _key(call: Call[Any, bool]) -> tuple[str, str]:
    key = call.args[0] if isinstance(call.args, tuple) else call.args
    return call.scope.name, key


def _by_key(row: tuple[Any, ...]) -> tuple[Any, Any]:
    return row[0], row[1]


class Remember(Kind[tuple[str, timedelta], bool]):
    """All pending `remember(key, ttl)` in one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired
    RETURNING`: a key comes back only for the row inserted (or taken over once expired), so exactly
    one caller of a key, in any process, is told it is new. Repeats of a key in one batch are not."""

    commutes = True
    creates_rows = True
    row_columns = ("s", "k", "e")

    def rows_statement(self, rows: int) -> UpdateBase:
        t = self.table
        expires = t.c.expires_at.type
        stmt = statements.insert(t, self.sa_dialect.name).values(
            [
                {
                    "session_name": bindparam(f"s{i}", type_=String),
                    "key": bindparam(f"k{i}", type_=String),
                    "expires_at": bindparam(f"e{i}", type_=expires),
                }
                for i in range(rows)
            ]
        )
        return stmt.on_conflict_do_update(  # type: ignore[attr-defined,no-any-return]
            index_elements=["session_name", "key"],
            set_={"expires_at": stmt.excluded.expires_at},  # type: ignore[attr-defined]
            where=t.c.expires_at <= bindparam("now", type_=expires),
        ).returning(t.c.session_name, t.c.key)

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return True

    async def apply(self, ex: Executor, calls: Sequence[RememberCall]) -> list[bool]:
        now = calls[0].scope.now()  # per attempt: a re-run transaction judges expiry afresh
        first = first_per_key(calls, _key)
        rows = [(c.scope.name, c.args[0], now + c.args[1]) for c in (calls[i] for i in first.values())]
        new: set[Any] = set()
        rows.sort(key=_by_key)  # one global lock order: concurrent batches cannot deadlock
        for part in chunks(rows, self.chunk_rows(3)):
            new.update(await self.for_rows(len(part)).run(ex, part, {"now": now}))
        return [first[_key(c)] == i and _key(c) in new for i, c in enumerate(calls)]


class Forget(Kind[str, bool]):
    """All pending `forget(key)` of an account in one `DELETE ... WHERE key IN (...) RETURNING`."""

    commutes = True
    row_columns = ("k",)

    def rows_statement(self, rows: int) -> UpdateBase:
        t = self.table
        keys = [bindparam(f"k{i}", type_=String) for i in range(rows)]
        return (
            delete(t)
            .where(t.c.session_name == bindparam("s", type_=String), t.c.key.in_(keys))
            .returning(t.c.key)
        )

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return len({c.scope.name for c in calls}) == 1

    async def apply(self, ex: Executor, calls: Sequence[ForgetCall]) -> list[bool]:
        first = first_per_key(calls, _key)
        by_account: dict[str, list[str]] = {}
        for index in first.values():
            by_account.setdefault(calls[index].scope.name, []).append(calls[index].args)
        deleted: set[tuple[str, str]] = set()
        for session, keys in sorted(by_account.items()):
            for part in chunks(sorted(keys), self.chunk_rows(1)):
                found = await self.for_rows(len(part)).run(ex, [(key,) for key in part], {"s": session})
                deleted.update((session, row[0]) for row in found)
        return [first[_key(c)] == i and _key(c) in deleted for i, c in enumerate(calls)]
