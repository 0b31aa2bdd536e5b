"""Replacing writes for the group-commit writer: update state, channel pts and conversations, each
one multi-row upsert; of several writes of one row in a batch, the last one is the row's new value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Table, bindparam, delete, literal
from sqlalchemy.engine import Dialect

from tgpersist.sql import statements
from tgpersist.sql.held import Executor
from tgpersist.writes.kind import Call, Kind, chunks

#: The calls' rows (one dict per row, a call may have several).
RowsCall = Call[list[dict[str, Any]], None]


class Upsert(Kind[list[dict[str, Any]], None]):
    """`INSERT ... ON CONFLICT (keys) DO UPDATE SET updated columns` for every pending row at once."""

    creates_rows = True

    def __init__(
        self,
        table: Table,
        sa_dialect: Dialect,
        keys: Sequence[str],
        columns: Sequence[str],
        updated: Sequence[str],
    ) -> None:
        super().__init__(table, sa_dialect)
        self.keys, self.columns, self.updated = tuple(keys), tuple(columns), tuple(updated)
        self.row_columns = self.columns

    def rows_statement(self, rows: int) -> Any:
        t = self.table
        values = [{c: bindparam(f"{c}{i}", type_=t.c[c].type) for c in self.columns} for i in range(rows)]
        stmt = statements.insert(t, self.sa_dialect.name).values(values)
        excluded = stmt.excluded  # type: ignore[attr-defined]
        return stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=list(self.keys), set_={c: excluded[c] for c in self.updated}
        )

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return sum(len(c.args) for c in calls) <= self.chunk_rows(len(self.columns))

    async def apply(self, ex: Executor, calls: Sequence[RowsCall]) -> list[None]:
        last: dict[tuple[Any, ...], dict[str, Any]] = {}
        for call in calls:
            for row in call.args:
                key = tuple(row[k] for k in self.keys)
                last[key] = row
        ordered = [last[key] for key in sorted(last)]  # one global lock order (see Remember)
        for part in chunks(ordered, self.chunk_rows(len(self.columns))):
            await self.for_rows(len(part)).run(ex, [tuple(row[c] for c in self.columns) for row in part])
        return [None] * len(calls)


class DeleteRow(Kind[dict[str, Any], bool]):
    """Delete one row by its full key, per call (`DELETE ... WHERE key RETURNING`); True for the
    first call of the batch that deleted it."""

    def __init__(self, table: Table, sa_dialect: Dialect, keys: Sequence[str]) -> None:
        super().__init__(table, sa_dialect)
        self.keys = tuple(keys)

    def _statement(self) -> Any:
        t = self.table
        where = [t.c[k] == bindparam(k, type_=t.c[k].type) for k in self.keys]
        return delete(t).where(*where).returning(literal(1, Integer))

    def one_statement(self, calls: Sequence[Call[Any, Any]]) -> bool:
        return len(calls) == 1

    async def apply(self, ex: Executor, calls: Sequence[Call[dict[str, Any], bool]]) -> list[bool]:
        statement = self.compiled("delete", self._statement)
        done: set[tuple[Any, ...]] = set()
        answers = []
        for call in calls:
            key = tuple(call.args[k] for k in self.keys)
            answers.append(key not in done and bool(await ex.rows(statement, call.args)))
            done.add(key)
        return answers
