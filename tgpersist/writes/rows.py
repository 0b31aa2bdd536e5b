"""`RowsStatement`: a multi-row statement whose parameters are built straight from row tuples.

For a batch of 64 enqueues that is 512 parameters: naming each (`payload17`) in a dict and looking it
up again cost more than the statement's own work in SQLite, and so did converting the same timestamp
three times per row. Here each column's values go through its bind processor once per distinct value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase

from tgpersist.sql.held import Executor
from tgpersist.sql.reads import CompiledRead


class RowsStatement:
    """`stmt` over `rows` rows, its per-row binds named `<column><i>` (row by row), compiled once;
    any other bind is shared by all rows and given by name."""

    def __init__(self, stmt: UpdateBase, sa_dialect: Dialect, columns: Sequence[str], rows: int) -> None:
        self.compiled = CompiledRead(stmt, sa_dialect)
        binds = self.compiled.binds
        keys = [key for key, _, _ in binds]
        first_row = {f"{c}0": index for index, c in enumerate(columns)}
        start = min(keys.index(key) for key in first_row)
        # The statement's column order (a multi-row INSERT lists columns in table order).
        self._order = [first_row[key] for key in keys[start : start + len(columns)]]
        ordered = [columns[j] for j in self._order]
        block = [f"{c}{i}" for i in range(rows) for c in ordered]
        if keys[start : start + len(block)] != block:
            raise ValueError("the per-row parameters are not in row order")
        self._before = binds[:start]
        self._after = binds[start + len(block) :]
        self._processors = [process for _, _, process in binds[start : start + len(columns)]]
        if self._order == sorted(self._order):
            self._order = []  # already in the statement's order

    def params(self, rows: Iterable[Sequence[Any]], shared: dict[str, Any]) -> tuple[Any, ...]:
        out = [_convert(shared.get(key, fixed), process) for key, fixed, process in self._before]
        if self._order:
            order = self._order
            rows = [[row[j] for j in order] for row in rows]
        if not any(self._processors):
            for row in rows:
                out.extend(row)
        else:
            # Column by column (list comprehensions run far faster than a loop per value), then
            # back to row order.
            by_column = zip(zip(*rows, strict=True), self._processors, strict=True)
            columns = [_converted(column, process) for column, process in by_column]
            out.extend(value for row in zip(*columns, strict=True) for value in row)
        out += [_convert(shared.get(key, fixed), process) for key, fixed, process in self._after]
        return tuple(out)

    async def run(
        self, ex: Executor, rows: Sequence[Sequence[Any]], shared: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The (converted) rows the statement returns for these rows."""
        compiled = self.compiled
        return compiled.rows(await ex.raw(compiled.sql, self.params(rows, shared or {})))


def _converted(column: Sequence[Any], process: Callable[[Any], Any] | None) -> Sequence[Any]:
    """A column's values as the driver takes them, each distinct value converted once."""
    if process is None:
        return column
    try:
        once = {value: process(value) for value in set(column) if value is not None}
    except TypeError:  # an unhashable value: convert each alone
        return [_convert(value, process) for value in column]
    return [None if value is None else once[value] for value in column]


def _convert(value: Any, process: Callable[[Any], Any] | None) -> Any:
    return value if process is None or value is None else process(value)
