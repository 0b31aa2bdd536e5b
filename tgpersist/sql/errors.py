"""Which driver errors mean what: retry the transaction, or a missing parent row."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.exc import DBAPIError

#: SQLSTATEs after which re-running the whole transaction is the documented fix.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


#: Transactions this process re-ran, by cause: the SQLSTATE (40P01 is a deadlock), or "locked" for
#: a busy SQLite database. Read by tests and benchmarks; never reset by tgpersist itself.
RETRIED: Counter[str] = Counter()


def count_retry(error: BaseException) -> str:
    """Record that a transaction is re-run after `error`; returns the cause as `RETRIED` counts it."""
    cause = sqlstate(error) or "locked"
    RETRIED[cause] += 1
    return cause


def is_retryable(error: BaseException) -> bool:
    """A serialisation failure or deadlock (PostgreSQL), or a busy/locked database (SQLite)."""
    if not isinstance(error, DBAPIError):
        return False
    if sqlstate(error) in _RETRY_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's, also when SQLAlchemy's adapter wraps it); None
    for SQLite and for anything that is not a driver error."""
    orig = getattr(error, "orig", None)
    found = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return found if isinstance(found, str) else None


def is_unique_violation(error: BaseException) -> bool:
    """A unique constraint violation on PostgreSQL (SQLSTATE 23505)."""
    return isinstance(error, DBAPIError) and sqlstate(error) == "23505"


def is_missing_parent(error: BaseException) -> bool:
    """A foreign-key violation: the row's session does not exist (any more)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()
