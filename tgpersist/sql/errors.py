"""Which driver errors mean what: retry the transaction, or a missing parent row."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

#: SQLSTATEs after which re-running the whole transaction is the documented fix.
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


def is_retryable(error: BaseException) -> bool:
    """A serialisation failure or deadlock (PostgreSQL), or a busy/locked database (SQLite)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def is_missing_parent(error: BaseException) -> bool:
    """A foreign-key violation: the row's session does not exist (any more)."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()
