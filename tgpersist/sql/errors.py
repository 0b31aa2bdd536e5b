"""Which driver errors mean what: retry the transaction, or a missing parent row."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

#: SQLSTATEs after which re-running the whole transaction is the documented fix, as `retry_cause`
#: names them.
_CAUSES = {"40001": "serialization_failure", "40P01": "deadlock", "55P03": "lock_not_available"}


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
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23503":
        return True
    return "foreign key constraint" in str(orig).lower()
