"""`Kind`: one sort of small write (remember, ack, save_state...) as the group-commit writer runs it.

A kind runs all pending calls of its sort in one go (`apply`), set-based where it can: one multi-row
statement for them all. Calls that are concurrent have no order between them, so any order a kind
picks is one the callers could have seen; a kind only has to answer each call as if the calls had run
one after another in some order (for example: of two `remember`s of one key, the first may be new,
the second is not). Set-based kinds write rows in key order (but `Enqueue`, whose order is the
queue's): one global lock order, so that the batches of concurrent processes cannot deadlock on each
other's rows (PostgreSQL).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase

from tgpersist.sql.held import Executor
from tgpersist.sql.reads import CompiledRead
from tgpersist.writes.rows import RowsStatement

if TYPE_CHECKING:
    import asyncio

A = TypeVar("A")
R = TypeVar("R")

#: Rows per multi-row statement: far below SQLite's 32,766 and PostgreSQL's 32,767 parameters.
CHUNK_PARAMETERS = 2000


class Account(Protocol):
    """What a call needs of its account's `Scope`: the session name, whether its row is known, and
    the database's time (`now`)."""

    name: str
    session_known: bool

    def now(self) -> datetime: ...


@dataclass(eq=False, slots=True)
class Call(Generic[A, R]):
    """One pending call: its account, arguments, lease token (fenced writes) and the caller's future."""

    scope: Account
    kind: Kind[A, R]
    args: A
    fence: int | None
    future: asyncio.Future[R]
    #: Called with the call's answer once its transaction committed, before the caller resumes.
    committed: Callable[[R], None] | None = None


class Kind(abc.ABC, Generic[A, R]):
    """A sort of write on one table; `apply` answers a list of its calls in one transaction."""

    #: Whether the rows it writes need the account's session row to exist (inserts do; deletes don't).
    creates_rows = False
    #: Whether two batches of it may commit at once (PostgreSQL's two lanes): its calls answer the
    #: same whatever batch commits first, and it locks its rows in key order.
    commutes = False

    def __init__(self, table: Table, sa_dialect: Dialect) -> None:
        self.table = table
        self.sa_dialect = sa_dialect
        self._shapes: dict[Hashable, CompiledRead] = {}
        self._rows: dict[int, RowsStatement] = {}
        #: Calls whose kinds share this run together (the same sort on the same table, any account).
        self.group: Hashable = (type(self), table.fullname)
        #: Where its calls run in a batch: kinds in this order, one global lock order across tables.
        self.order = (table.fullname, type(self).__name__)

    @abc.abstractmethod
    async def apply(self, ex: Executor, calls: Sequence[Call[A, R]]) -> list[R]:
        """Each call's answer, in order, after running them all on `ex` (inside one transaction)."""

    def one_statement(self, calls: Sequence[Call[A, R]]) -> bool:
        """Whether `apply(calls)` runs exactly one statement (it may then run outside a transaction)."""
        return False

    #: The per-row columns of `rows_statement` (its binds are `<column><i>`).
    row_columns: tuple[str, ...] = ()

    def for_rows(self, rows: int) -> RowsStatement:
        """The multi-row statement for `rows` rows (`rows_statement`), compiled once per row count."""
        statement = self._rows.get(rows)
        if statement is None:
            statement = self._rows[rows] = RowsStatement(
                self.rows_statement(rows), self.sa_dialect, self.row_columns, rows
            )
        return statement

    def rows_statement(self, rows: int) -> UpdateBase:
        """The statement for `rows` rows, for kinds that write many rows in one statement."""
        raise NotImplementedError(f"{type(self).__name__} has no multi-row statement")

    def compiled(self, shape: Hashable, build: Callable[[], UpdateBase]) -> CompiledRead:
        """The statement of `shape` (say, a row count), compiled once per kind and reused."""
        statement = self._shapes.get(shape)
        if statement is None:
            statement = self._shapes[shape] = CompiledRead(build(), self.sa_dialect)
        return statement

    def chunk_rows(self, columns: int) -> int:
        return max(1, CHUNK_PARAMETERS // columns)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def first_per_key(calls: Sequence[Call[A, R]], key: Callable[[Call[A, R]], Hashable]) -> dict[Hashable, int]:
    """For each distinct key, the index of the first call that has it."""
    first: dict[Hashable, int] = {}
    for index, call in enumerate(calls):
        first.setdefault(key(call), index)
    return first


def last_per_key(calls: Sequence[Call[A, R]], key: Callable[[Call[A, R]], Hashable]) -> dict[Hashable, int]:
    """For each distinct key, the index of the last call that has it (replacing writes: last one wins)."""
    return {key(call): index for index, call in enumerate(calls)}
