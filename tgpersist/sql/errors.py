"""Which driver errors mean what: retry the transaction, a missing parent row, a refused value
(`public_error`: the typed error that leaves tgpersist instead of the driver's, whose text may hold
row values), a lost connection or an unreachable database (asyncpg, aiosqlite/sqlite3 and the raw
socket errors a connect attempt raises)."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections import Counter

from sqlalchemy.exc import DBAPIError

from tgpersist.errors import ConstraintViolation, DatabaseRejected, DataRejected

#: SQLSTATEs after which re-running the whole transaction is the documented fix, as `retry_cause`
#: names them.
_CAUSES = {"40001": "serialization_failure", "40P01": "deadlock", "55P03": "lock_not_available"}

#: SQLSTATEs of a connection that is gone or refused: class 08 and the server shutting down/starting.
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")
#: asyncpg's and SQLAlchemy's words for a connection that died under it.
_DISCONNECT_WORDS = ("connection was closed", "connection is closed", "connection has been released")
#: sqlite3's words for a database file that is gone, moved or no longer writable.
_SQLITE_FILE_WORDS = ("readonly database", "disk i/o error", "unable to open database", "no such file")

#: Transactions this process re-ran, by cause: the SQLSTATE (40P01 is a deadlock), or "locked" for
#: a busy SQLite database. Read by tests and benchmarks; never reset by tgpersist itself.
RETRIED: Counter[str] = Counter()


def count_retry(error: BaseException) -> str:
    """Record that a transaction is re-run after `error`; returns the cause as `RETRIED` counts it."""
    cause = sqlstate(error) or "locked"
    RETRIED[cause] += 1
    return cause


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's, also when SQLAlchemy's adapter wraps it); None
    for SQLite and for anything that is not a driver error."""
    return _sqlstate(getattr(error, "orig", None))


def is_unique_violation(error: BaseException) -> bool:
    """A unique constraint violation on PostgreSQL (SQLSTATE 23505)."""
    return isinstance(error, DBAPIError) and sqlstate(error) == "23505"


def is_retryable(error: BaseException) -> bool:
    """A serialisation failure or deadlock (PostgreSQL), or a busy/locked database (SQLite)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if _sqlstate(orig) in _CAUSES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def retry_cause(error: DBAPIError) -> str:
    """A short, stable name for why a retryable error happened (a log field and metric attribute)."""
    cause = _CAUSES.get(_sqlstate(error.orig) or "")
    if cause is not None:
        return cause
    return "database_busy" if "busy" in str(error.orig).lower() else "database_locked"


def _sqlstate(orig: object) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's, wrapped by SQLAlchemy's adapter, sits on `__cause__`)."""
    found = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return found if isinstance(found, str) else None


def is_missing_parent(error: BaseException) -> bool:
    """A foreign-key violation: the row's session does not exist (any more)."""
    if isinstance(error, ConstraintViolation):
        return error.kind == "foreign_key"
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()


#: PostgreSQL integrity SQLSTATEs (class 23) and the kind of constraint each one means.
_CONSTRAINT_KINDS = {
    "23502": "not_null",
    "23503": "foreign_key",
    "23505": "unique",
    "23514": "check",
    "23P01": "exclusion",
}
#: PostgreSQL data exceptions (class 22): what went wrong, in words that carry no value.
_DATA_PROBLEMS = {
    "22001": "text too long for its column",
    "22003": "number out of range",
    "22007": "malformed date or time",
    "22008": "date or time out of range",
    "22021": "invalid byte sequence for the encoding",
    "22P02": "malformed value for its type",
    "22P05": "text the encoding cannot hold",
}
_SQLITE_KINDS = {"CHECK": "check", "UNIQUE": "unique", "NOT NULL": "not_null", "FOREIGN KEY": "foreign_key"}
_SQLITE_CONSTRAINT = re.compile(r"(CHECK|UNIQUE|NOT NULL|FOREIGN KEY) constraint failed(?::\s*(\S+))?")
_STATEMENT_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+([\w.\"]+)", re.IGNORECASE)


def public_error(error: DBAPIError) -> BaseException:
    """What tgpersist raises for `error`: a `ConstraintViolation` or `DataRejected` naming only table,
    constraint or column when the database refused a row or value, else `error` itself. Either way
    `error.params` (raw values) is cleared when its engine hides parameters."""
    if error.hide_parameters:
        error.params = None
    return _rejection(error) or error


def _rejection(error: DBAPIError) -> DatabaseRejected | None:
    orig = error.orig
    driver = getattr(orig, "__cause__", None) or orig  # asyncpg's own exception behind the adapter
    sqlstate = getattr(driver, "sqlstate", None) or getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        table = getattr(driver, "table_name", None) or _table_of(error.statement)
        if sqlstate in _CONSTRAINT_KINDS:
            constraint = getattr(driver, "constraint_name", None)
            return ConstraintViolation(table, constraint, _CONSTRAINT_KINDS[sqlstate], error)
        if sqlstate.startswith("22"):
            problem = _DATA_PROBLEMS.get(sqlstate, f"invalid data (SQLSTATE {sqlstate})")
            return DataRejected(table, getattr(driver, "column_name", None), problem, error)
        return None
    if isinstance(orig, sqlite3.IntegrityError):
        found = _SQLITE_CONSTRAINT.search(str(orig))
        kind = _SQLITE_KINDS[found.group(1)] if found else "integrity"
        named = found.group(2) if found else None
        table, _, column = (named or "").partition(".")
        if column:  # UNIQUE/NOT NULL name table.column; CHECK names the constraint
            return ConstraintViolation(table, column, kind, error)
        return ConstraintViolation(_table_of(error.statement), named, kind, error)
    if isinstance(orig, sqlite3.DataError):
        return DataRejected(_table_of(error.statement), None, str(orig).splitlines()[0][:100], error)
    return None


def _table_of(statement: str | None) -> str | None:
    """The table an INSERT, UPDATE or DELETE writes to."""
    found = _STATEMENT_TABLE.match(statement or "")
    return found.group(1).replace('"', "") if found else None


# -- lost connections and unreachable databases --------------------------------------------------


def _orig(error: BaseException) -> BaseException | None:
    return error.orig if isinstance(error, DBAPIError) else None


def is_disconnect(error: BaseException) -> bool:
    """The connection died under a statement (server restarted, route reset, connection terminated)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        state = _sqlstate(error.orig)
        if state is not None and state.startswith(_CONNECTION_SQLSTATES):
            return True
        return any(word in str(error.orig).lower() for word in _DISCONNECT_WORDS)
    return isinstance(error, ConnectionError)


def is_unreachable(error: BaseException) -> bool:
    """A connection could not be made: refused, unresolvable, timed out, or the server not accepting."""
    if isinstance(error, DBAPIError):
        state = _sqlstate(error.orig)
        return state is not None and state.startswith(("08001", "08004", "08006", "57P03"))
    return isinstance(error, OSError | asyncio.TimeoutError) and not isinstance(error, ConnectionResetError)


def is_sqlite_file_gone(error: BaseException) -> bool:
    """SQLite could not write (or open) its file: deleted or moved while open, read-only, disk failing."""
    orig = _orig(error)
    if orig is None or type(orig).__module__.split(".")[0] not in ("sqlite3", "aiosqlite"):
        return False
    return any(word in str(orig).lower() for word in _SQLITE_FILE_WORDS)


def problem_of(error: BaseException) -> str:
    """A short description of a connection failure that carries no SQL, parameters or password."""
    orig = _orig(error) or error
    if isinstance(orig, asyncio.TimeoutError):
        return "timed out"
    if isinstance(orig, OSError) and (orig.errno or orig.strerror):
        return (os.strerror(orig.errno) if orig.errno else str(orig.strerror)).lower()
    first = str(orig).splitlines()[0] if str(orig) else ""
    name = type(orig).__name__
    # Driver messages about connections name no secrets; keep them short anyway.
    return f"{name}: {first[:200]}" if first else name
