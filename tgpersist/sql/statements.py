"""Statements whose SQL differs between SQLite and PostgreSQL: upserts, the database clock, row locks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Double, Table, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert


def insert(table: Table, dialect: str) -> Insert:
    """The dialect's own INSERT construct, which knows ON CONFLICT."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(table: Table, dialect: str, keys: Sequence[str], update: Iterable[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET each of `update` to the incoming value."""
    stmt = insert(table, dialect)
    excluded = stmt.excluded  # type: ignore[attr-defined]
    columns = {name: excluded[name] for name in update}
    if not columns:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined,no-any-return]
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=columns)  # type: ignore[attr-defined,no-any-return]


def insert_ignore(table: Table, dialect: str, keys: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO NOTHING."""
    return insert(table, dialect).on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined,no-any-return]


def db_epoch(dialect: str) -> ColumnElement[float]:
    """The database server's clock as Unix seconds, so expiry never depends on a client's clock."""
    if dialect == "postgresql":
        return func.extract("epoch", func.clock_timestamp()).cast(Double)
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Double)


def claim_locks_rows(dialect: str) -> bool:
    """Whether a claim's inner SELECT should use FOR UPDATE SKIP LOCKED (SQLite serialises writers)."""
    return dialect == "postgresql"


def driver_value(column: ColumnElement[Any], value: Any, sa_dialect: Dialect) -> Any:
    """`value` as the driver takes it for `column` (its type's bind processing), for raw statements."""
    process = column.type.dialect_impl(sa_dialect).bind_processor(sa_dialect)
    return value if process is None or value is None else process(value)
